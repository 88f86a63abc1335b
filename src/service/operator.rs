//! Operator actions on the command line (and, later, the console): provisioning, credentials,
//! migrations. Each change and its audit record commit in one transaction.

use super::audit::{record_operator, Operator};
use crate::model::plan::Plan;
use crate::model::policy::Policy;
use crate::model::time::{format_taxii, Micros};
use crate::storage::credentials::{self, NewCredential};
use crate::storage::{self, Storage, StorageResult};

/// Makes the database match `policy` (see [`Plan::compute`]) and records the change list as an
/// operator action; with `dry_run`, only computes the plan.
///
/// # Errors
/// Database failures; nothing is applied then.
pub fn apply_policy(
    storage: &Storage,
    operator: &Operator,
    policy: &Policy,
    prune: bool,
    dry_run: bool,
) -> StorageResult<Plan> {
    let plan = |c: &mut storage::Conn| {
        let state = storage::access::load_state(c)?;
        Ok(Plan::compute(policy, &state, prune, &mut || uuid::Uuid::new_v4().to_string()))
    };
    if dry_run {
        return storage.read_blocking(plan);
    }
    storage.write_blocking(|c| {
        let plan = plan(c)?;
        if !plan.is_empty() {
            // A rebuilt feed's earlier versions leave it with a record in its chain, as any
            // withdrawal does, so that `audit recipients` still attributes what was served
            // from their old positions.
            let template = operator.record("apply", serde_json::json!({}));
            let mut withdrawn = |c: &mut storage::Conn, gone: &[storage::objects::Withdrawn]| {
                if gone.is_empty() {
                    return Ok(());
                }
                super::feeds::record_withdrawn(c, &template, gone)
            };
            let sink: Option<&mut storage::objects::WithdrawnSink<'_>> =
                if operator.audit { Some(&mut withdrawn) } else { None };
            storage::access::apply_plan(c, &plan, sink)?;
            let changes: Vec<String> = plan.changes.iter().map(ToString::to_string).collect();
            record_operator(c, operator, "apply", serde_json::json!({ "changes": changes, "prune": prune }))?;
        }
        Ok(plan)
    })
}

/// Adds a credential (password hash or API key digest) and records it; returns its id.
///
/// # Errors
/// `NotFound` for an unknown partner; database failures.
pub fn add_credential(storage: &Storage, operator: &Operator, new: &NewCredential<'_>) -> StorageResult<String> {
    storage.write_blocking(|c| {
        let id = credentials::add(c, new)?;
        let detail = serde_json::json!({
            "credential_id": id, "partner": new.partner, "kind": new.kind, "label": new.label,
            "expires_at": new.expires_at.map(format_taxii),
        });
        record_operator(c, operator, "credential_add", detail)?;
        Ok(id)
    })
}

/// Revokes a credential now, and records it.
///
/// # Errors
/// `NotFound` for an unknown or already revoked credential; database failures.
pub fn revoke_credential(storage: &Storage, operator: &Operator, id: &str, now: Micros) -> StorageResult<()> {
    storage.write_blocking(|c| {
        credentials::revoke(c, id, now)?;
        record_operator(c, operator, "credential_revoke", serde_json::json!({ "credential_id": id }))
    })
}

/// Sets when a credential expires, and records it.
///
/// # Errors
/// `NotFound` for an unknown credential; database failures.
pub fn expire_credential(storage: &Storage, operator: &Operator, id: &str, at: Micros) -> StorageResult<()> {
    storage.write_blocking(|c| {
        credentials::expire(c, id, at)?;
        record_operator(
            c,
            operator,
            "credential_expire",
            serde_json::json!({ "credential_id": id, "at": format_taxii(at) }),
        )
    })
}

/// Rotates the `next`-token key kept in the database: a new random key signs from now on, the
/// old one still verifies for `grace_seconds`. Records the action (with the key ids, never the
/// keys). Returns (old key id, new key id).
///
/// # Errors
/// Database failures.
pub fn rotate_key(
    storage: &Storage,
    operator: &Operator,
    grace_seconds: u64,
    now: Micros,
) -> StorageResult<(Option<String>, String)> {
    let new = crate::auth::random_secret_hex();
    let until = now.saturating_add(i64::try_from(grace_seconds.saturating_mul(1_000_000)).unwrap_or(i64::MAX));
    storage.write_blocking(|c| {
        let old = storage::load_keys(c)?.map(|k| k.current_id().to_owned());
        storage::rotate_keys(c, &new, until)?;
        let new_id = crate::model::cursor::KeyRing::new(new.as_bytes()).current_id().to_owned();
        let detail =
            serde_json::json!({ "old_key_id": old, "new_key_id": new_id, "previous_valid_until": format_taxii(until) });
        record_operator(c, operator, "rotate_key", detail)?;
        Ok((old, new_id))
    })
}

/// Records the migrations this process applied at start (if any).
///
/// # Errors
/// Database failures.
pub fn record_migrations(storage: &Storage, operator: &Operator) -> StorageResult<()> {
    let applied = storage.migrations_applied();
    if applied.is_empty() {
        return Ok(());
    }
    storage.write_blocking(|c| record_operator(c, operator, "migrate", serde_json::json!({ "applied": applied })))
}

/// Adds a console operator (with an argon2 password hash and/or a client certificate
/// fingerprint), and records it.
///
/// # Errors
/// `Conflict` when the name is taken; database failures.
pub fn add_operator(
    storage: &Storage,
    operator: &Operator,
    name: &str,
    password_hash: Option<&str>,
    certificate: Option<&str>,
    now: Micros,
) -> StorageResult<()> {
    storage.write_blocking(|c| {
        storage::operators::add(c, name, password_hash, certificate, now)?;
        let detail = serde_json::json!({
            "operator": name, "password": password_hash.is_some(), "certificate": certificate,
        });
        record_operator(c, operator, "operator_add", detail)
    })
}

/// Removes a console operator (ending its sessions), and records it.
///
/// # Errors
/// `NotFound` for an unknown name; database failures.
pub fn remove_operator(storage: &Storage, operator: &Operator, name: &str) -> StorageResult<()> {
    storage.write_blocking(|c| {
        storage::operators::remove(c, name)?;
        record_operator(c, operator, "operator_remove", serde_json::json!({ "operator": name }))
    })
}
