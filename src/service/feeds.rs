//! Feeds: retention of object versions per collection, and the expiry count of `valid_now`
//! derived collections. Run by every node's housekeeping (hourly) and by `concordia purge`.

use super::audit::{record_write, Operator, PurgedTrace, VersionTrace};
use crate::model::access::AccessView;
use crate::model::time::Micros;
use crate::storage::objects::Derived;
use crate::storage::{self, Storage, StorageError, StorageResult};

/// Versions removed per transaction (and per audit record).
const PURGE_BATCH: i64 = 1000;

/// What a retention purge removed from one collection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Purged {
    pub collection: String,
    pub title: String,
    pub versions: u64,
}

/// The derived collections a change to `source` reaches (see `AccessView::derived_of`).
pub fn derived_targets(view: &AccessView, source: &str) -> Vec<Derived> {
    view.derived_of(source)
        .into_iter()
        .map(|(d, bit)| Derived { id: d.id.clone(), key: d.key, bit, filter: d.feed.filter.clone() })
        .collect()
}

/// Removes, in every collection with `retention_days`, the versions added longer ago than that
/// (keeping the latest version of each object with `keep_latest`), and takes them out of the
/// derived collections they fed. Each batch is one transaction with its audit record
/// (`retention_purge`, in the collection's chain, naming every version removed).
///
/// # Errors
/// Database failures; what was purged before them stays purged.
pub fn purge_retention(storage: &Storage, by: &Operator, now: Micros) -> StorageResult<Vec<Purged>> {
    let mut view = storage.read_blocking(storage::access::load_view)?;
    let mut out = Vec::new();
    let ids: Vec<String> = view
        .collections
        .iter()
        .filter(|c| c.feed.retention_days.is_some() && !c.feed.is_derived())
        .map(|c| c.id.clone())
        .collect();
    for id in ids {
        let mut after = i64::MIN;
        let mut purged = 0u64;
        let mut title = String::new();
        while let Some(col) = view.collection(&id) {
            let Some(days) = col.feed.retention_days else { break };
            title.clone_from(&col.title);
            let cutoff = now.saturating_sub(days.micros());
            let (key, keep_latest, derived, generation) =
                (col.key, col.feed.keep_latest, derived_targets(&view, &id), view.feed_generation);
            let step = storage.write_blocking(|c| {
                let mut withdrawn = Vec::new();
                let (gone, last) = storage::objects::purge_before(
                    c,
                    key,
                    cutoff,
                    keep_latest,
                    after,
                    PURGE_BATCH,
                    &derived,
                    Some(generation),
                    &mut withdrawn,
                )?;
                if by.audit {
                    let mut cause = by.record("retention_purge", serde_json::Value::Null);
                    cause.collection_id = Some(id.clone());
                    record_withdrawn(c, &cause, &withdrawn)?;
                }
                if by.audit && !gone.is_empty() {
                    let versions: Vec<PurgedTrace> = gone
                        .iter()
                        .map(|(oid, facts, facets)| PurgedTrace {
                            id: oid.clone(),
                            trace: VersionTrace::of(facts.clone(), facets.clone()),
                        })
                        .collect();
                    let mut record = by.record(
                        "retention_purge",
                        serde_json::json!({ "retention_days": days.0, "keep_latest": keep_latest, "versions": versions }),
                    );
                    record.collection_id = Some(id.clone());
                    record.object_count = Some(i64::try_from(gone.len()).unwrap_or(i64::MAX));
                    record.status = Some(200);
                    record_write(c, &id, &record)?;
                }
                Ok((gone.len() as u64, last))
            });
            match step {
                Ok((n, last)) => {
                    purged += n;
                    match last {
                        Some(last) => after = last,
                        None => break,
                    }
                }
                // The policy changed (a derived collection may have appeared): reload, go on.
                Err(StorageError::StalePolicy) => view = storage.read_blocking(storage::access::load_view)?,
                Err(e) => return Err(e),
            }
        }
        if purged > 0 {
            tracing::info!(collection = %id, versions = purged, "retention purge");
        }
        out.push(Purged { collection: id, title, versions: purged });
    }
    Ok(out)
}

/// Records, in each derived collection's chain, the versions a change to one of its sources
/// took out of it or made visible through fewer sources (`feed_withdraw`, with the cause), so
/// that `audit recipients` still finds who was served them. `template` is the record of the
/// change (who, which request); each feed gets a copy with its own collection and versions.
///
/// # Errors
/// Database failures; the change is then rolled back with it.
pub fn record_withdrawn(
    c: &mut storage::Conn,
    template: &crate::model::audit::AuditRecord,
    withdrawn: &[storage::objects::Withdrawn],
) -> StorageResult<()> {
    let now = crate::model::time::now_micros();
    let mut by_feed: std::collections::BTreeMap<&str, Vec<PurgedTrace>> = std::collections::BTreeMap::new();
    for w in withdrawn {
        let mut trace = VersionTrace::of(w.facts.clone(), w.facets.clone());
        trace.deleted_at = w.removed.then_some(now);
        by_feed.entry(w.derived.as_str()).or_default().push(PurgedTrace { id: w.stix_id.clone(), trace });
    }
    for (feed, versions) in by_feed {
        let mut record = template.clone();
        record.detail = Some(
            serde_json::json!({ "cause": template.action, "source": template.collection_id, "versions": versions })
                .to_string(),
        );
        record.action = "feed_withdraw".into();
        record.collection_id = Some(feed.to_owned());
        record.object_count = Some(i64::try_from(versions.len()).unwrap_or(i64::MAX));
        record.status = Some(200);
        record.at = now;
        record_write(c, feed, &record)?;
    }
    Ok(())
}

/// In every `valid_now` derived collection, moves the versions that became valid since they
/// were written to new positions (see `storage::objects::activate`): an indicator written with
/// a future `valid_from` reaches pollers using `added_after` at the housekeeping after that time.
///
/// # Errors
/// Database failures.
pub fn activate_feeds(storage: &Storage, by: &Operator, view: &AccessView, now: Micros) -> StorageResult<usize> {
    let mut moved = 0;
    for col in view.collections.iter().filter(|c| c.feed.is_derived() && c.feed.filter.checks_validity()) {
        let feed = Derived { id: col.id.clone(), key: col.key, bit: 0, filter: col.feed.filter.clone() };
        let n = storage.write_blocking(|c| {
            let mut withdrawn = Vec::new();
            let n = storage::objects::activate(c, &feed, now, &mut withdrawn)?;
            if by.audit && !withdrawn.is_empty() {
                let mut cause = by.record("feed_activate", serde_json::Value::Null);
                cause.collection_id = Some(feed.id.clone());
                record_withdrawn(c, &cause, &withdrawn)?;
            }
            Ok(n)
        })?;
        if n > 0 {
            tracing::info!(collection = %col.id, versions = n, "versions that became valid moved to new positions");
        }
        moved += n;
    }
    Ok(moved)
}

/// For each derived collection that shows only objects valid now: how many of its versions
/// stopped being valid in `(from, to]` (for the `concordia_objects_expired_total` metric).
///
/// # Errors
/// Database failures.
pub fn expired_between(
    storage: &Storage,
    view: &AccessView,
    from: Micros,
    to: Micros,
) -> StorageResult<Vec<(String, i64)>> {
    let feeds: Vec<(String, i64)> = view
        .collections
        .iter()
        .filter(|c| c.feed.is_derived() && c.feed.filter.checks_validity())
        .map(|c| (c.id.clone(), c.key))
        .collect();
    storage.read_blocking(|c| {
        feeds.into_iter().map(|(id, key)| Ok((id, storage::objects::count_expired(c, key, from, to)?))).collect()
    })
}
