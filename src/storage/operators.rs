//! Console operators (accounts separate from partners) and their sessions. Sessions live in the
//! database so that every node behind a load balancer knows them; only the SHA-256 of a session
//! token is stored.

use diesel::prelude::*;

use super::schema::{console_sessions, operators};
use super::{Conn, StorageError, StorageResult};
use crate::model::time::Micros;

/// An operator account, without its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorInfo {
    pub id: i64,
    pub name: String,
    pub has_password: bool,
    /// `sha256:<hex>` of the operator's client certificate, if one is registered.
    pub certificate: Option<String>,
    pub created_at: Micros,
}

/// What a login needs to check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorLogin {
    pub id: i64,
    pub name: String,
    pub password_hash: Option<String>,
}

/// A live session: whose, its CSRF token, when it was last used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    pub operator_id: i64,
    pub operator: String,
    pub csrf: String,
    pub created_at: Micros,
    pub last_seen: Micros,
}

/// Adds an operator.
///
/// # Errors
/// `Conflict` when the name is taken; database failures.
pub fn add(
    c: &mut Conn,
    name: &str,
    password_hash: Option<&str>,
    certificate: Option<&str>,
    now: Micros,
) -> StorageResult<i64> {
    let taken: i64 = operators::table.filter(operators::name.eq(name)).count().get_result(c)?;
    if taken > 0 {
        return Err(StorageError::Conflict(format!("an operator named '{name}' exists already")));
    }
    if let Some(cert) = certificate {
        if let Some((_, holder)) = find_by_certificate(c, cert)? {
            return Err(StorageError::Conflict(format!("operator '{holder}' holds that certificate already")));
        }
    }
    diesel::insert_into(operators::table)
        .values((
            operators::name.eq(name),
            operators::password_hash.eq(password_hash),
            operators::certificate.eq(certificate),
            operators::created_at.eq(now),
        ))
        .execute(c)?;
    Ok(operators::table.filter(operators::name.eq(name)).select(operators::id).first(c)?)
}

/// Every operator, by name.
///
/// # Errors
/// Database failures.
pub fn list(c: &mut Conn) -> StorageResult<Vec<OperatorInfo>> {
    let rows: Vec<(i64, String, Option<String>, Option<String>, i64)> = operators::table
        .select((
            operators::id,
            operators::name,
            operators::password_hash,
            operators::certificate,
            operators::created_at,
        ))
        .order(operators::name.asc())
        .load(c)?;
    Ok(rows
        .into_iter()
        .map(|(id, name, hash, certificate, created_at)| OperatorInfo {
            id,
            name,
            has_password: hash.is_some(),
            certificate,
            created_at,
        })
        .collect())
}

/// Removes an operator and ends its sessions.
///
/// # Errors
/// `NotFound` for an unknown name; database failures.
pub fn remove(c: &mut Conn, name: &str) -> StorageResult<()> {
    let id: Option<i64> =
        operators::table.filter(operators::name.eq(name)).select(operators::id).first(c).optional()?;
    let id = id.ok_or(StorageError::NotFound)?;
    diesel::delete(console_sessions::table.filter(console_sessions::operator_id.eq(id))).execute(c)?;
    diesel::delete(operators::table.filter(operators::id.eq(id))).execute(c)?;
    Ok(())
}

/// The operator of that name, for a password login.
///
/// # Errors
/// Database failures.
pub fn find(c: &mut Conn, name: &str) -> StorageResult<Option<OperatorLogin>> {
    let row: Option<(i64, String, Option<String>)> = operators::table
        .filter(operators::name.eq(name))
        .select((operators::id, operators::name, operators::password_hash))
        .first(c)
        .optional()?;
    Ok(row.map(|(id, name, password_hash)| OperatorLogin { id, name, password_hash }))
}

/// The operator whose client certificate has this fingerprint.
///
/// # Errors
/// Database failures.
pub fn find_by_certificate(c: &mut Conn, fingerprint: &str) -> StorageResult<Option<(i64, String)>> {
    Ok(operators::table
        .filter(operators::certificate.eq(fingerprint))
        .select((operators::id, operators::name))
        .first(c)
        .optional()?)
}

/// Stores a new session.
///
/// # Errors
/// Database failures.
pub fn create_session(c: &mut Conn, token_hash: &str, operator_id: i64, csrf: &str, now: Micros) -> StorageResult<()> {
    diesel::insert_into(console_sessions::table)
        .values((
            console_sessions::token_hash.eq(token_hash),
            console_sessions::operator_id.eq(operator_id),
            console_sessions::csrf.eq(csrf),
            console_sessions::created_at.eq(now),
            console_sessions::last_seen.eq(now),
        ))
        .execute(c)?;
    Ok(())
}

/// The session of that token hash, with its operator.
///
/// # Errors
/// Database failures.
pub fn session(c: &mut Conn, token_hash: &str) -> StorageResult<Option<SessionRow>> {
    let row: Option<(i64, String, String, i64, i64)> = console_sessions::table
        .inner_join(operators::table)
        .filter(console_sessions::token_hash.eq(token_hash))
        .select((
            console_sessions::operator_id,
            operators::name,
            console_sessions::csrf,
            console_sessions::created_at,
            console_sessions::last_seen,
        ))
        .first(c)
        .optional()?;
    Ok(row.map(|(operator_id, operator, csrf, created_at, last_seen)| SessionRow {
        operator_id,
        operator,
        csrf,
        created_at,
        last_seen,
    }))
}

/// Marks a session as used now.
///
/// # Errors
/// Database failures.
pub fn touch_session(c: &mut Conn, token_hash: &str, now: Micros) -> StorageResult<()> {
    diesel::update(console_sessions::table.filter(console_sessions::token_hash.eq(token_hash)))
        .set(console_sessions::last_seen.eq(now))
        .execute(c)?;
    Ok(())
}

/// Ends a session; returns whether it existed.
///
/// # Errors
/// Database failures.
pub fn end_session(c: &mut Conn, token_hash: &str) -> StorageResult<bool> {
    Ok(diesel::delete(console_sessions::table.filter(console_sessions::token_hash.eq(token_hash))).execute(c)? > 0)
}

/// Removes the sessions idle since before `idle_before`, or created before `created_before`;
/// returns how many.
///
/// # Errors
/// Database failures.
pub fn purge_sessions(c: &mut Conn, idle_before: Micros, created_before: Micros) -> StorageResult<usize> {
    Ok(diesel::delete(
        console_sessions::table
            .filter(console_sessions::last_seen.lt(idle_before).or(console_sessions::created_at.lt(created_before))),
    )
    .execute(c)?)
}
