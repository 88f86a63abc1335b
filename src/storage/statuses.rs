//! Status resources of Add Objects requests, stored as JSON text and scoped to their submitter.

use diesel::prelude::*;

use super::schema::statuses;
use super::{Conn, StorageResult};
use crate::model::time::Micros;

/// Stores a status (inside the same transaction as the objects it describes).
pub fn insert(c: &mut Conn, id: &str, api_root_id: i64, partner_id: i64, now: Micros, body: &str) -> StorageResult<()> {
    diesel::insert_into(statuses::table)
        .values((
            statuses::id.eq(id),
            statuses::api_root_id.eq(api_root_id),
            statuses::partner_id.eq(partner_id),
            statuses::created_at.eq(now),
            statuses::body.eq(body),
        ))
        .execute(c)?;
    Ok(())
}

/// The status JSON text, if it exists in this API root, belongs to this partner and is newer
/// than `not_before`.
pub fn find(
    c: &mut Conn,
    id: &str,
    api_root_id: i64,
    partner_id: i64,
    not_before: Micros,
) -> StorageResult<Option<String>> {
    Ok(statuses::table
        .filter(statuses::id.eq(id))
        .filter(statuses::api_root_id.eq(api_root_id))
        .filter(statuses::partner_id.eq(partner_id))
        .filter(statuses::created_at.ge(not_before))
        .select(statuses::body)
        .first(c)
        .optional()?)
}

/// Deletes statuses created before `before`; returns how many.
pub fn purge(c: &mut Conn, before: Micros) -> StorageResult<usize> {
    Ok(diesel::delete(statuses::table.filter(statuses::created_at.lt(before))).execute(c)?)
}
