//! Partner credentials: Basic passwords (argon2 hashes) and API keys (SHA-256 of a random key).

use diesel::prelude::*;

use super::schema::{credentials, partners, seen_certificates};
use super::{bump_generation, Conn, StorageError, StorageResult};
use crate::model::time::Micros;

/// A stored credential, without its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialInfo {
    pub id: String,
    pub partner: String,
    pub kind: String,
    pub label: Option<String>,
    pub created_at: Micros,
    pub expires_at: Option<Micros>,
    pub revoked_at: Option<Micros>,
}

/// A credential that may be used to log in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveCredential {
    pub id: String,
    pub partner_id: i64,
    pub partner: String,
    pub secret_hash: String,
    pub expires_at: Option<Micros>,
}

/// A new credential to store.
pub struct NewCredential<'a> {
    pub partner: &'a str,
    pub kind: &'a str,
    pub lookup: Option<&'a str>,
    pub secret_hash: &'a str,
    pub label: Option<&'a str>,
    pub now: Micros,
    pub expires_at: Option<Micros>,
}

pub fn add(c: &mut Conn, new: &NewCredential<'_>) -> StorageResult<String> {
    let partner_id = super::access::partner_id(c, new.partner)?;
    let id = uuid::Uuid::new_v4().to_string();
    diesel::insert_into(credentials::table)
        .values((
            credentials::id.eq(&id),
            credentials::partner_id.eq(partner_id),
            credentials::kind.eq(new.kind),
            credentials::lookup.eq(new.lookup),
            credentials::secret_hash.eq(new.secret_hash),
            credentials::label.eq(new.label),
            credentials::created_at.eq(new.now),
            credentials::expires_at.eq(new.expires_at),
        ))
        .execute(c)?;
    bump_generation(c)?;
    Ok(id)
}

pub fn list(c: &mut Conn, partner: &str) -> StorageResult<Vec<CredentialInfo>> {
    let partner_id = super::access::partner_id(c, partner)?;
    let rows: Vec<(String, String, Option<String>, i64, Option<i64>, Option<i64>)> = credentials::table
        .filter(credentials::partner_id.eq(partner_id))
        .select((
            credentials::id,
            credentials::kind,
            credentials::label,
            credentials::created_at,
            credentials::expires_at,
            credentials::revoked_at,
        ))
        .order(credentials::created_at)
        .load(c)?;
    Ok(rows
        .into_iter()
        .map(|(id, kind, label, created_at, expires_at, revoked_at)| CredentialInfo {
            id,
            partner: partner.to_owned(),
            kind,
            label,
            created_at,
            expires_at,
            revoked_at,
        })
        .collect())
}

/// Revokes a credential now. Running servers drop cached logins on their next policy refresh.
pub fn revoke(c: &mut Conn, id: &str, now: Micros) -> StorageResult<()> {
    let n = diesel::update(credentials::table.filter(credentials::id.eq(id)).filter(credentials::revoked_at.is_null()))
        .set(credentials::revoked_at.eq(now))
        .execute(c)?;
    if n == 0 {
        return Err(StorageError::NotFound);
    }
    bump_generation(c)?;
    Ok(())
}

/// Sets when a credential expires.
pub fn expire(c: &mut Conn, id: &str, at: Micros) -> StorageResult<()> {
    let n = diesel::update(credentials::table.filter(credentials::id.eq(id)))
        .set(credentials::expires_at.eq(at))
        .execute(c)?;
    if n == 0 {
        return Err(StorageError::NotFound);
    }
    bump_generation(c)?;
    Ok(())
}

fn is_active(revoked_at: Option<i64>, expires_at: Option<i64>, now: Micros) -> bool {
    revoked_at.is_none() && expires_at.is_none_or(|e| e > now)
}

/// The active API key with this lookup id, if any.
pub fn find_api_key(c: &mut Conn, lookup: &str, now: Micros) -> StorageResult<Option<ActiveCredential>> {
    let row: Option<(String, i64, String, String, Option<i64>, Option<i64>)> = credentials::table
        .inner_join(partners::table.on(partners::id.eq(credentials::partner_id)))
        .filter(credentials::kind.eq("api_key"))
        .filter(credentials::lookup.eq(lookup))
        .select(CRED_COLS)
        .first(c)
        .optional()?;
    Ok(row.and_then(into_active(now)))
}

/// The active passwords of a partner.
pub fn find_passwords(c: &mut Conn, partner: &str, now: Micros) -> StorageResult<Vec<ActiveCredential>> {
    let rows: Vec<(String, i64, String, String, Option<i64>, Option<i64>)> = credentials::table
        .inner_join(partners::table.on(partners::id.eq(credentials::partner_id)))
        .filter(credentials::kind.eq("password"))
        .filter(partners::name.eq(partner))
        .select(CRED_COLS)
        .load(c)?;
    Ok(rows.into_iter().filter_map(into_active(now)).collect())
}

type CredRow = (String, i64, String, String, Option<i64>, Option<i64>);

const CRED_COLS: (
    credentials::id,
    credentials::partner_id,
    partners::name,
    credentials::secret_hash,
    credentials::expires_at,
    credentials::revoked_at,
) = (
    credentials::id,
    credentials::partner_id,
    partners::name,
    credentials::secret_hash,
    credentials::expires_at,
    credentials::revoked_at,
);

fn into_active(now: Micros) -> impl Fn(CredRow) -> Option<ActiveCredential> {
    move |(id, partner_id, partner, secret_hash, expires_at, revoked_at)| {
        is_active(revoked_at, expires_at, now).then_some(ActiveCredential {
            id,
            partner_id,
            partner,
            secret_hash,
            expires_at,
        })
    }
}

/// Every partner's credentials (never their secrets), by partner name.
///
/// # Errors
/// Database failures.
pub fn list_all(c: &mut Conn) -> StorageResult<Vec<CredentialInfo>> {
    let rows: Vec<(String, String, String, Option<String>, i64, Option<i64>, Option<i64>)> = credentials::table
        .inner_join(partners::table.on(partners::id.eq(credentials::partner_id)))
        .select((
            credentials::id,
            partners::name,
            credentials::kind,
            credentials::label,
            credentials::created_at,
            credentials::expires_at,
            credentials::revoked_at,
        ))
        .order((partners::name.asc(), credentials::created_at.asc()))
        .load(c)?;
    Ok(rows
        .into_iter()
        .map(|(id, partner, kind, label, created_at, expires_at, revoked_at)| CredentialInfo {
            id,
            partner,
            kind,
            label,
            created_at,
            expires_at,
            revoked_at,
        })
        .collect())
}

/// A client certificate that authenticated a partner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenCertificate {
    pub fingerprint: String,
    pub partner: String,
    pub subject: String,
    pub not_after: Micros,
    pub first_seen: Micros,
    pub last_seen: Micros,
}

/// Notes that a certificate authenticated a partner now (first or again).
///
/// # Errors
/// Database failures.
pub fn note_certificate(
    c: &mut Conn,
    fingerprint: &str,
    partner_id: i64,
    subject: &str,
    not_after: Micros,
    now: Micros,
) -> StorageResult<()> {
    let n = diesel::update(seen_certificates::table.find(fingerprint))
        .set((seen_certificates::last_seen.eq(now), seen_certificates::partner_id.eq(partner_id)))
        .execute(c)?;
    if n == 0 {
        diesel::insert_into(seen_certificates::table)
            .values((
                seen_certificates::fingerprint.eq(fingerprint),
                seen_certificates::partner_id.eq(partner_id),
                seen_certificates::subject.eq(subject),
                seen_certificates::not_after.eq(not_after),
                seen_certificates::first_seen.eq(now),
                seen_certificates::last_seen.eq(now),
            ))
            .execute(c)?;
    }
    Ok(())
}

/// The certificates seen that expire before `before` (and have not expired before `after`),
/// soonest first.
///
/// # Errors
/// Database failures.
pub fn certificates_expiring(c: &mut Conn, after: Micros, before: Micros) -> StorageResult<Vec<SeenCertificate>> {
    let rows: Vec<(String, String, String, i64, i64, i64)> = seen_certificates::table
        .inner_join(partners::table.on(partners::id.eq(seen_certificates::partner_id)))
        .filter(seen_certificates::not_after.ge(after))
        .filter(seen_certificates::not_after.lt(before))
        .select((
            seen_certificates::fingerprint,
            partners::name,
            seen_certificates::subject,
            seen_certificates::not_after,
            seen_certificates::first_seen,
            seen_certificates::last_seen,
        ))
        .order(seen_certificates::not_after.asc())
        .load(c)?;
    Ok(rows
        .into_iter()
        .map(|(fingerprint, partner, subject, not_after, first_seen, last_seen)| SeenCertificate {
            fingerprint,
            partner,
            subject,
            not_after,
            first_seen,
            last_seen,
        })
        .collect())
}
