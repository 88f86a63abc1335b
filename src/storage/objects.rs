//! STIX object versions: batch insert with duplicate detection, keyset pages, delete.
//!
//! Every version keeps its JSON text exactly as received. `date_added` is assigned inside the
//! writing transaction as `max(now, last date_added in the collection + 1µs)`, so it is strictly
//! increasing and unique per collection and pages can key on it alone. The flags `is_last`,
//! `is_first`, `spec_latest` and `latest` are maintained in the same transaction, so the default
//! view (latest version, latest spec version) is an index range, never a scan.

use std::collections::{HashMap, HashSet};

use diesel::prelude::*;
use diesel::sql_types::Text;

use super::schema::{collection_clock, object_tags, objects};
use super::{AnyConnection, Conn, MultiBackend, StorageError, StorageResult};
use crate::model::feed::{confidence_tags, filter_tags, label_tag, tlp_rank, tlp_tags, FeedFilter, LABEL_SEPARATOR};
use crate::model::filter::{Filter, VersionSel};
use crate::model::stix::ObjectHead;
use crate::model::time::{format_taxii, stix_version_key, version_key_from_micros, Micros};

/// Ids per `IN (...)` list.
const LOOKUP_CHUNK: usize = 500;

/// One object ready to store: its indexed head and its JSON text as received.
#[derive(Debug, Clone)]
pub struct NewObject {
    pub head: ObjectHead,
    pub body: String,
}

/// What happened to one object of an envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Stored {
        version: String,
    },
    /// The same (id, version) was already in the collection (T-153): a success, stored once.
    Duplicate {
        version: String,
    },
}

#[derive(Insertable)]
#[diesel(table_name = objects, treat_none_as_default_value = false)]
struct NewRow<'a> {
    collection_key: i64,
    stix_id: &'a str,
    stix_type: &'a str,
    version: String,
    version_key: String,
    spec_version: &'a str,
    date_added: i64,
    is_last: i32,
    is_first: i32,
    last_any: i32,
    first_any: i32,
    spec_latest: i32,
    latest: i32,
    added_by: i64,
    body: &'a str,
    confidence: Option<i32>,
    created_by: Option<&'a str>,
    tlp: Option<i32>,
    labels: Option<String>,
    valid_from: Option<i64>,
    valid_until: Option<i64>,
    source_mask: i64,
    source_ref: Option<&'a str>,
    target_ref: Option<&'a str>,
}

/// A derived collection that a write to one of its sources feeds.
#[derive(Debug, Clone)]
pub struct Derived {
    /// The derived collection's id (for the audit records of what leaves it).
    pub id: String,
    /// The derived collection's key.
    pub key: i64,
    /// The source's bit in the derived collection's `source_mask`.
    pub bit: i64,
    pub filter: FeedFilter,
}

impl Derived {
    /// Whether a version written to the source enters the derived collection: the filter
    /// admits it, or it revokes an object the derived collection already holds (so that
    /// consumers polling with `added_after` learn of the revocation).
    fn admits(&self, head: &ObjectHead, in_feed: bool) -> bool {
        self.filter.admits(&head.stix_type, &head.facets) || (in_feed && head.facets.revoked)
    }
}

/// Highest `date_added` ever handed out in a collection, read inside the write transaction.
/// On PostgreSQL the collection's clock row is locked (`FOR UPDATE`) until the transaction ends:
/// writers to one collection take positions one after another and commit in that order, so a
/// reader paging by `date_added` can never pass a position whose transaction commits later.
/// Writers to different collections do not wait for each other.
/// The clock row exists for every collection (it holds the collection's key, see
/// `access::apply_plan`); a key without one is a broken invariant and fails the write.
fn last_date_added(c: &mut Conn, collection: i64) -> StorageResult<i64> {
    use diesel::dsl::max;
    let clock = collection_clock::table.find(collection).select(collection_clock::last_date_added);
    let clock: Option<i64> = match c {
        AnyConnection::Postgresql(pg) => clock.for_update().first(pg).optional()?,
        AnyConnection::Sqlite(_) => clock.first(c).optional()?,
    };
    let Some(clock) = clock else {
        return Err(StorageError::Conflict(format!("collection key {collection} has no clock row")));
    };
    let stored: Option<i64> =
        objects::table.filter(objects::collection_key.eq(collection)).select(max(objects::date_added)).first(c)?;
    Ok(stored.map_or(clock, |stored| stored.max(clock)))
}

/// Records the highest `date_added` handed out (callers only ever pass a higher value).
fn advance_clock(c: &mut Conn, collection: i64, last: i64) -> StorageResult<()> {
    diesel::update(collection_clock::table.find(collection))
        .set(collection_clock::last_date_added.eq(last))
        .execute(c)?;
    Ok(())
}

#[derive(Insertable)]
#[diesel(table_name = object_tags, treat_none_as_default_value = false)]
struct NewTag<'a> {
    collection_key: i64,
    tag: &'a str,
    date_added: i64,
    seq: i64,
}

/// A version's filter postings: its position, its seq, its posting keys.
type Posted = (i64, i64, Vec<String>);

/// The filter postings of a version from its stored facet columns (see `filter_tags`).
fn tags_of(f: &FacetCols) -> Vec<String> {
    filter_tags(f.0, f.2, f.3.as_deref())
}

/// Adds the filter postings (`object_tags`) of versions at their positions.
fn post_tags(c: &mut Conn, collection: i64, rows: &[Posted]) -> StorageResult<()> {
    let new: Vec<NewTag<'_>> = rows
        .iter()
        .flat_map(|(at, seq, tags)| {
            tags.iter().map(move |t| NewTag { collection_key: collection, tag: t, date_added: *at, seq: *seq })
        })
        .collect();
    insert_tags(c, &new, false)
}

/// Writes postings. SQLite: as the versions themselves, one prepared statement per row without
/// a statement journal, a posting already there kept. PostgreSQL: one COPY, or, with
/// `may_exist` (a backfill that may meet postings written since), inserts that skip those.
fn insert_tags(c: &mut Conn, new: &[NewTag<'_>], may_exist: bool) -> StorageResult<()> {
    match &mut *c {
        AnyConnection::Sqlite(c) => {
            for t in new {
                diesel::insert_or_ignore_into(object_tags::table).values(t).execute(c)?;
            }
        }
        AnyConnection::Postgresql(c) if may_exist => {
            for chunk in new.chunks(LOOKUP_CHUNK) {
                diesel::insert_into(object_tags::table).values(chunk).on_conflict_do_nothing().execute(c)?;
            }
        }
        AnyConnection::Postgresql(c) if !new.is_empty() => {
            diesel::copy_from(object_tags::table).from_insertable(new).execute(c)?;
        }
        AnyConnection::Postgresql(_) => {}
    }
    Ok(())
}

/// Removes the filter postings of versions that left their positions (deleted or moved).
fn unpost_tags(c: &mut Conn, collection: i64, rows: &[Posted]) -> StorageResult<()> {
    let mut by_tag: HashMap<&str, Vec<i64>> = HashMap::new();
    for (at, _, tags) in rows {
        for t in tags {
            by_tag.entry(t.as_str()).or_default().push(*at);
        }
    }
    for (tag, positions) in by_tag {
        for chunk in positions.chunks(LOOKUP_CHUNK) {
            diesel::delete(
                object_tags::table
                    .filter(object_tags::collection_key.eq(collection))
                    .filter(object_tags::tag.eq(tag))
                    .filter(object_tags::date_added.eq_any(chunk)),
            )
            .execute(c)?;
        }
    }
    Ok(())
}

/// The version index's key: the collection key as text, '/', the STIX id (which holds no '/').
///
/// Every lookup by id (an envelope's ids, one object, `match[id]`, the versions of an object)
/// is written against this expression, and only the version index holds it (migration
/// `version_index_by_expression`). Collection and id are one index column, so a lookup has a
/// single way to use the index: one probe per key. With the two as separate columns,
/// PostgreSQL could read the collection's whole range of the index (or of the position index)
/// and filter the ids there, which it did whenever its statistics said the collection was
/// nearly empty: a collection loaded since the last ANALYZE, next to a large one. Paging
/// queries use the plain `collection_key` column, which only the position, latest and type
/// indexes hold.
///
/// The separator is written into the SQL, never bound: a bound '/' would not match the index
/// expression in a generic plan. And it is a type of its own rather than `dsl::sql(…)`, because
/// diesel never caches a statement that holds raw SQL, and these are the hottest reads, which
/// PostgreSQL should parse and plan once per connection.
#[derive(Debug, Clone, Copy, diesel::query_builder::QueryId, diesel::expression::ValidGrouping)]
pub(super) struct ObjectKey;

impl Expression for ObjectKey {
    type SqlType = Text;
}

impl<DB: diesel::backend::Backend> diesel::query_builder::QueryFragment<DB> for ObjectKey {
    fn walk_ast<'b>(&'b self, mut out: diesel::query_builder::AstPass<'_, 'b, DB>) -> QueryResult<()> {
        out.push_sql("(CAST(\"objects\".\"collection_key\" AS TEXT) || '/' || \"objects\".\"stix_id\")");
        Ok(())
    }
}

impl AppearsOnTable<objects::table> for ObjectKey {}
impl SelectableExpression<objects::table> for ObjectKey {}

/// The version index key of one object of a collection.
fn object_key(collection: i64, stix_id: &str) -> String {
    format!("{collection}/{stix_id}")
}

fn key_is(collection: i64, stix_id: &str) -> diesel::dsl::Eq<ObjectKey, String> {
    ObjectKey.eq(object_key(collection, stix_id))
}

fn key_in<'i>(collection: i64, ids: impl IntoIterator<Item = &'i str>) -> diesel::dsl::EqAny<ObjectKey, Vec<String>> {
    ObjectKey.eq_any(ids.into_iter().map(|id| object_key(collection, id)).collect::<Vec<_>>())
}

/// `source_mask & bits <> 0`: the version came from one of the sources in `bits`.
#[derive(Debug, Clone, Copy, diesel::expression::ValidGrouping)]
pub(super) struct FromSources(i64);

impl diesel::query_builder::QueryId for FromSources {
    type QueryId = FromSources;
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl Expression for FromSources {
    type SqlType = diesel::sql_types::Bool;
}

impl<DB> diesel::query_builder::QueryFragment<DB> for FromSources
where
    DB: diesel::backend::Backend + diesel::sql_types::HasSqlType<diesel::sql_types::BigInt>,
    i64: diesel::serialize::ToSql<diesel::sql_types::BigInt, DB>,
{
    fn walk_ast<'b>(&'b self, mut out: diesel::query_builder::AstPass<'_, 'b, DB>) -> QueryResult<()> {
        out.push_sql("((\"objects\".\"source_mask\" & ");
        out.push_bind_param::<diesel::sql_types::BigInt, i64>(&self.0)?;
        out.push_sql(") <> 0)");
        Ok(())
    }
}

impl AppearsOnTable<objects::table> for FromSources {}
impl SelectableExpression<objects::table> for FromSources {}

/// No version of the same object that the reader can see (`source_mask & bits`) is newer, by
/// spec version, then version: the latest version of the latest spec version among the visible
/// ones. One probe of the version index per row.
#[derive(Debug, Clone, Copy, diesel::expression::ValidGrouping)]
pub(super) struct NewestVisible(i64);

impl diesel::query_builder::QueryId for NewestVisible {
    type QueryId = NewestVisible;
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl Expression for NewestVisible {
    type SqlType = diesel::sql_types::Bool;
}

impl<DB> diesel::query_builder::QueryFragment<DB> for NewestVisible
where
    DB: diesel::backend::Backend + diesel::sql_types::HasSqlType<diesel::sql_types::BigInt>,
    i64: diesel::serialize::ToSql<diesel::sql_types::BigInt, DB>,
{
    fn walk_ast<'b>(&'b self, mut out: diesel::query_builder::AstPass<'_, 'b, DB>) -> QueryResult<()> {
        out.push_sql(
            "(NOT EXISTS (SELECT 1 FROM \"objects\" AS \"newer\" \
             WHERE (CAST(\"newer\".\"collection_key\" AS TEXT) || '/' || \"newer\".\"stix_id\") = \
             (CAST(\"objects\".\"collection_key\" AS TEXT) || '/' || \"objects\".\"stix_id\") \
             AND ((\"newer\".\"source_mask\" & ",
        );
        out.push_bind_param::<diesel::sql_types::BigInt, i64>(&self.0)?;
        out.push_sql(
            ") <> 0) AND (\"newer\".\"spec_version\" > \"objects\".\"spec_version\" \
             OR (\"newer\".\"spec_version\" = \"objects\".\"spec_version\" \
             AND \"newer\".\"version_key\" > \"objects\".\"version_key\"))))",
        );
        Ok(())
    }
}

impl AppearsOnTable<objects::table> for NewestVisible {}
impl SelectableExpression<objects::table> for NewestVisible {}

/// Stores the objects of one envelope (call inside a write transaction), and feeds the new
/// versions to the derived collections of this source (`derived`, in ascending key order).
/// `feed_generation` is the feed generation the caller's view of `derived` comes from: if the
/// collections changed since, nothing is stored and the caller reloads and retries
/// ([`StorageError::StalePolicy`]). Returns one outcome per object, in order.
#[allow(clippy::too_many_arguments)]
pub fn insert(
    c: &mut Conn,
    collection: i64,
    added_by: i64,
    items: &[NewObject],
    now: Micros,
    derived: &[Derived],
    feed_generation: Option<i64>,
    withdrawn: &mut Vec<Withdrawn>,
) -> StorageResult<Vec<Outcome>> {
    // Lock the collection's clock first (PostgreSQL): everything read below is then stable
    // against other writers to this collection until the transaction ends. Then the clocks of
    // its derived collections, and only then compare the feed generation: a policy change that
    // rebuilds one of them holds its clock until it commits, so it is either committed (and
    // seen here: stale, retry with the new policy) or waits for this transaction.
    let t0 = std::time::Instant::now();
    let last = last_date_added(c, collection)?;
    check_feeds(c, derived, feed_generation)?;
    let all: Vec<&NewObject> = items.iter().collect();
    let outcomes = insert_rows(c, collection, added_by, &all, now, last, None, withdrawn)?;
    // The versions stored, with the version they were stored as (objects without a STIX
    // version are versioned by their date_added in the source: the derived copy keeps it).
    let stored: Vec<NewObject> = items
        .iter()
        .zip(&outcomes)
        .filter_map(|(item, o)| match o {
            Outcome::Stored { version } if item.head.version.is_none() => {
                let mut item = item.clone();
                item.head.version_key = stix_version_key(version);
                item.head.version = Some(version.clone());
                Some(item)
            }
            Outcome::Stored { .. } => Some(item.clone()),
            Outcome::Duplicate { .. } => None,
        })
        .collect();
    if !stored.is_empty() {
        let stored: Vec<&NewObject> = stored.iter().collect();
        for d in derived {
            let last = last_date_added(c, d.key)?;
            insert_rows(c, d.key, added_by, &stored, now, last, Some(d), withdrawn)?;
        }
    }
    tracing::trace!(elapsed_ms = t0.elapsed().as_secs_f64() * 1e3, "insert objects");
    Ok(outcomes)
}

/// Locks the clocks of a source's derived collections (after the source's, in ascending key
/// order), then checks that the feeds are those the caller's policy describes.
fn check_feeds(c: &mut Conn, derived: &[Derived], feed_generation: Option<i64>) -> StorageResult<()> {
    for d in derived {
        last_date_added(c, d.key)?;
    }
    if let Some(g) = feed_generation {
        if super::feed_generation(c)? != g {
            return Err(StorageError::StalePolicy);
        }
    }
    Ok(())
}

/// Stores versions in one collection whose clock the caller holds (`last`: its position).
/// With `feed` (a derived collection, fed by one of its sources), only the versions its filter
/// admits (see [`Derived::admits`]) are added; a version it already holds with exactly the same
/// text gets the source's bit in its `source_mask` and moves to a new position, so that the
/// readers of that source who poll with `added_after` see it (its old position goes to
/// `withdrawn`, for the audit trail). A version it holds with another text (two sources sent
/// different objects under one id and version) is left as it is: readers of this source are
/// never served the other source's text.
#[allow(clippy::too_many_arguments)]
fn insert_rows(
    c: &mut Conn,
    collection: i64,
    added_by: i64,
    items: &[&NewObject],
    now: Micros,
    last: i64,
    feed: Option<&Derived>,
    withdrawn: &mut Vec<Withdrawn>,
) -> StorageResult<Vec<Outcome>> {
    let bit = feed.map_or(0, |d| d.bit);
    // Versions already stored for the ids of this envelope: id -> [(version_key, spec, version, mask)].
    let mut ids: Vec<&str> = items.iter().map(|o| o.head.id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    let mut existing: HashMap<String, Vec<(String, String, String, i64)>> = HashMap::new();
    for chunk in ids.chunks(LOOKUP_CHUNK) {
        let rows: Vec<(String, String, String, String, i64)> = stored_versions(collection, chunk).load(c)?;
        for (id, key, spec, version, mask) in rows {
            existing.entry(id).or_default().push((key, spec, version, mask));
        }
    }

    let mut next = now.max(last + 1);
    let mut outcomes = Vec::with_capacity(items.len());
    let mut rows: Vec<NewRow<'_>> = Vec::with_capacity(items.len());
    let mut seen: HashMap<&str, Vec<(String, String, String, i64)>> = HashMap::new();
    let mut needs_recompute: HashSet<&str> = HashSet::new();
    // (id, version key, spec, text) of stored versions that may gain the source's bit.
    let mut gain_bit: Vec<(&str, String, String, &str)> = Vec::new();
    for item in items {
        let h = &item.head;
        let stored = existing.get(&h.id);
        let batch = seen.get(h.id.as_str());
        let prior = stored.into_iter().chain(batch).flatten();
        if feed.is_some_and(|d| !d.admits(h, prior.clone().next().is_some())) {
            continue;
        }
        let (version, key) = match (&h.version, &h.version_key) {
            (Some(v), Some(k)) => (v.clone(), k.clone()),
            _ => {
                // No modified/created: the object is immutable; its first stored copy is its version.
                if let Some((k, s, v, mask)) = prior.clone().next() {
                    if bit != 0 && mask & bit == 0 {
                        gain_bit.push((h.id.as_str(), k.clone(), s.clone(), item.body.as_str()));
                    }
                    outcomes.push(Outcome::Duplicate { version: v.clone() });
                    continue;
                }
                (format_taxii(next), version_key_from_micros(next))
            }
        };
        if let Some((k, s, _, mask)) = prior.clone().find(|(k, s, _, _)| *k == key && *s == h.spec_version) {
            if bit != 0 && mask & bit == 0 {
                gain_bit.push((h.id.as_str(), k.clone(), s.clone(), item.body.as_str()));
            }
            outcomes.push(Outcome::Duplicate { version });
            continue;
        }
        let fresh = stored.is_none() && batch.is_none();
        if !fresh {
            needs_recompute.insert(h.id.as_str());
        }
        let flag = i32::from(fresh);
        seen.entry(h.id.as_str()).or_default().push((key.clone(), h.spec_version.clone(), version.clone(), bit));
        let f = &h.facets;
        rows.push(NewRow {
            collection_key: collection,
            stix_id: &h.id,
            stix_type: &h.stix_type,
            version: version.clone(),
            version_key: key,
            spec_version: &h.spec_version,
            date_added: next,
            is_last: flag,
            is_first: flag,
            last_any: flag,
            first_any: flag,
            spec_latest: flag,
            latest: flag,
            added_by,
            body: &item.body,
            confidence: f.confidence,
            created_by: f.created_by.as_deref(),
            tlp: f.tlp.map(tlp_rank),
            labels: f.labels_column(),
            valid_from: f.valid_from,
            valid_until: f.valid_until,
            source_mask: bit,
            source_ref: f.source_ref.as_deref(),
            target_ref: f.target_ref.as_deref(),
        });
        next += 1;
        outcomes.push(Outcome::Stored { version });
    }
    // An id first seen in this batch and then again: its first row was inserted as "fresh" with
    // all flags set; the recompute below fixes it.
    let (first_added, last_added, count) =
        (rows.first().map(|r| r.date_added), rows.last().map(|r| r.date_added), rows.len());
    let tags: HashMap<i64, Vec<String>> =
        rows.iter().map(|r| (r.date_added, filter_tags(r.confidence, r.tlp, r.labels.as_deref()))).collect();
    let inserted = match &mut *c {
        // On SQLite: one prepared single-row statement, run per row (a multi-row INSERT is
        // parsed and compiled anew for every envelope), with `OR IGNORE`, which spares a
        // statement journal (a copy of every page the INSERT touches, kept so that a failing
        // constraint could undo just this statement).
        AnyConnection::Sqlite(c) => {
            let mut n = 0;
            for row in &rows {
                n += diesel::insert_or_ignore_into(objects::table).values(row).execute(c)?;
            }
            n
        }
        // On PostgreSQL: COPY (binary) rather than a multi-row INSERT, which PostgreSQL would
        // parse and plan with 15 parameters per row on every envelope.
        AnyConnection::Postgresql(c) => diesel::copy_from(objects::table).from_insertable(rows).execute(c)?,
    };
    // Nothing may have been ignored: the versions were looked up above under the write lock, so
    // a short count means a broken invariant, and the whole transaction is rolled back.
    if inserted != count {
        return Err(StorageError::Conflict(format!(
            "{} of {count} object versions were already stored in collection key {collection}",
            count - inserted
        )));
    }
    // The postings need the seqs the versions were given: read back from the position index
    // (the positions just taken, under the collection's write lock).
    if let (Some(first), Some(last)) = (first_added, last_added) {
        let seqs: Vec<(i64, i64)> = objects::table
            .filter(objects::collection_key.eq(collection))
            .filter(objects::date_added.ge(first))
            .filter(objects::date_added.le(last))
            .select((objects::date_added, objects::seq))
            .load(c)?;
        let mut tags = tags;
        let posted: Vec<Posted> =
            seqs.into_iter().map(|(at, seq)| (at, seq, tags.remove(&at).unwrap_or_default())).collect();
        post_tags(c, collection, &posted)?;
    }
    gain_bit.sort_unstable();
    gain_bit.dedup_by(|a, b| (a.0, &a.1, &a.2) == (b.0, &b.1, &b.2));
    let mut moved_to = None;
    for (id, key, spec, text) in gain_bit {
        let held: Option<(i64, String, VersionFacts, FacetCols)> = objects::table
            .filter(key_is(collection, id))
            .filter(objects::version_key.eq(&key))
            .filter(objects::spec_version.eq(&spec))
            .select((
                objects::seq,
                objects::body,
                (
                    objects::version,
                    objects::version_key,
                    objects::spec_version,
                    objects::stix_type,
                    objects::date_added,
                ),
                facet_cols(),
            ))
            .first(c)
            .optional()?;
        let Some((seq, body, facts, facets)) = held else { continue };
        if body != text || facets.6 & bit != 0 {
            continue;
        }
        diesel::update(objects::table.filter(objects::seq.eq(seq)))
            .set((objects::source_mask.eq(facets.6 | bit), objects::date_added.eq(next)))
            .execute(c)?;
        let tags = tags_of(&facets);
        unpost_tags(c, collection, &[(facts.4, seq, tags.clone())])?;
        post_tags(c, collection, &[(next, seq, tags)])?;
        moved_to = Some(next);
        next += 1;
        if let Some(d) = feed {
            withdrawn.push(Withdrawn { derived: d.id.clone(), stix_id: id.to_owned(), removed: true, facts, facets });
        }
    }
    if let Some(last) = moved_to.or(last_added) {
        advance_clock(c, collection, last)?;
    }
    for id in needs_recompute {
        recompute_flags(c, collection, id)?;
    }
    Ok(outcomes)
}

/// The versions already stored for some ids of a collection: (id, version key, spec version,
/// version, source mask). The lookup every envelope makes under the collection's write lock.
pub(super) fn stored_versions<'a>(
    collection: i64,
    ids: &'a [&'a str],
) -> objects::BoxedQuery<'a, MultiBackend, (Text, Text, Text, Text, diesel::sql_types::BigInt)> {
    objects::table
        .filter(key_in(collection, ids.iter().copied()))
        .select((objects::stix_id, objects::version_key, objects::spec_version, objects::version, objects::source_mask))
        .into_boxed()
}

/// Recomputes the version flags of every stored version of one object.
pub fn recompute_flags(c: &mut Conn, collection: i64, stix_id: &str) -> StorageResult<()> {
    type FlagRow = (i64, String, String, (i32, i32, i32, i32, i32, i32));
    let rows: Vec<FlagRow> = objects::table
        .filter(key_is(collection, stix_id))
        .select((
            objects::seq,
            objects::spec_version,
            objects::version_key,
            (
                objects::is_last,
                objects::is_first,
                objects::last_any,
                objects::first_any,
                objects::spec_latest,
                objects::latest,
            ),
        ))
        .load(c)?;
    let Some(max_spec) = rows.iter().map(|r| r.1.as_str()).max().map(str::to_owned) else { return Ok(()) };
    let lo_any = rows.iter().map(|r| r.2.as_str()).min().unwrap_or_default().to_owned();
    let hi_any = rows.iter().map(|r| r.2.as_str()).max().unwrap_or_default().to_owned();
    let mut bounds: HashMap<&str, (&str, &str)> = HashMap::new();
    for (_, spec, key, _) in &rows {
        let e = bounds.entry(spec.as_str()).or_insert((key.as_str(), key.as_str()));
        e.0 = e.0.min(key.as_str());
        e.1 = e.1.max(key.as_str());
    }
    for (seq, spec, key, old) in &rows {
        let (lo, hi) = bounds.get(spec.as_str()).copied().unwrap_or_default();
        let n_last = i32::from(key.as_str() == hi);
        let n_first = i32::from(key.as_str() == lo);
        let n_spec = i32::from(*spec == max_spec);
        let new = (n_last, n_first, i32::from(*key == hi_any), i32::from(*key == lo_any), n_spec, n_last & n_spec);
        if new != *old {
            diesel::update(objects::table.filter(objects::seq.eq(seq)))
                .set((
                    objects::is_last.eq(new.0),
                    objects::is_first.eq(new.1),
                    objects::last_any.eq(new.2),
                    objects::first_any.eq(new.3),
                    objects::spec_latest.eq(new.4),
                    objects::latest.eq(new.5),
                ))
                .execute(c)?;
        }
    }
    Ok(())
}

/// A page request over one collection (optionally one object).
#[derive(Debug, Clone)]
pub struct PageQuery<'a> {
    /// The collection's key (`CollectionInfo::key`).
    pub collection: i64,
    pub object: Option<&'a str>,
    pub filter: &'a Filter,
    /// `date_added` of the last item already returned.
    pub after: Option<Micros>,
    /// Rows to fetch (the caller asks for one more than it shows, to learn `more`).
    pub fetch: i64,
    /// A derived collection read by a partner who may read only some of its sources: the
    /// `source_mask` bits of those (a version is shown if it came from one of them).
    pub sources: Option<i64>,
    /// A derived collection that shows only objects valid now: this instant.
    pub valid_at: Option<Micros>,
    /// Where the storage handle keeps how filtered pages were last best read ([`PagePlans`]);
    /// `None` decides afresh on every page.
    pub plans: Option<&'a PagePlans>,
}

/// How a filter on a collection is best read, as last found: through the postings of its keys
/// (a selective filter) or in position order with the filter checked on the rows (a common one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PagePlan {
    Postings,
    Rows,
}

/// The page plans a storage handle found, per collection, posting keys and position, each kept
/// for [`PLAN_TTL`]. Finding one takes a probe (the first step of postings against the versions
/// it spans, see [`through_postings`]) that costs a common filter about as much as its page. The
/// plan is reused only at the position it was found at: a label common in one stretch of a
/// collection may be rare in another. So it serves the readers that ask for the same page: the
/// consumers of a feed polling from the same `added_after`, a page asked for again. Either plan
/// reads exactly the same page, so a plan a little out of date costs time, never a wrong answer.
#[derive(Debug, Default)]
pub struct PagePlans {
    /// Keys are hashed with this process's random keys (a label is the client's choice: no one
    /// can make two of them share a plan on purpose).
    hasher: std::collections::hash_map::RandomState,
    known: std::sync::Mutex<HashMap<u64, (PagePlan, std::time::Instant)>>,
}

/// How long a page plan is trusted before the next page of that filter probes again.
pub const PLAN_TTL: std::time::Duration = std::time::Duration::from_secs(30);
/// Most plans kept: beyond this the older half goes.
const PLANS_KEPT: usize = 4096;

impl PagePlans {
    fn key(&self, collection: i64, tags: &[String], after: Option<i64>) -> u64 {
        use std::hash::BuildHasher;
        self.hasher.hash_one((collection, tags, after))
    }

    /// The plan found for these keys on this collection after this position, if still fresh.
    pub fn get(&self, collection: i64, tags: &[String], after: Option<i64>) -> Option<PagePlan> {
        let key = self.key(collection, tags, after);
        let known = self.known.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (plan, at) = known.get(&key)?;
        (at.elapsed() < PLAN_TTL).then_some(*plan)
    }

    /// Keeps the plan just found for these keys on this collection after this position.
    pub fn put(&self, collection: i64, tags: &[String], after: Option<i64>, plan: PagePlan) {
        let key = self.key(collection, tags, after);
        let mut known = self.known.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if known.len() >= PLANS_KEPT {
            known.retain(|_, v| v.1.elapsed() < PLAN_TTL);
        }
        if known.len() >= PLANS_KEPT {
            let mut ages: Vec<std::time::Instant> = known.values().map(|v| v.1).collect();
            let (_, median, _) = ages.select_nth_unstable(PLANS_KEPT / 2);
            let median = *median;
            known.retain(|_, v| v.1 > median);
        }
        known.insert(key, (plan, std::time::Instant::now()));
    }
}

/// One stored version as listed in a page.
#[derive(Debug, Clone, PartialEq, Eq, Queryable)]
pub struct VersionRow {
    pub seq: i64,
    pub date_added: i64,
    pub stix_id: String,
    pub version: String,
    pub spec_version: String,
}

type Boxed<'a, ST> = objects::BoxedQuery<'a, MultiBackend, ST>;
type Cond<'a> = Box<dyn BoxableExpression<objects::table, MultiBackend, SqlType = diesel::sql_types::Bool> + 'a>;

/// Applies the filters (T-063, §3.4.1) and the keyset position to a query.
fn apply<'a, ST: 'a>(q: Boxed<'a, ST>, p: &PageQuery<'a>) -> Boxed<'a, ST> {
    apply_at(q, p, None)
}

/// As [`apply`], over some versions only (by seq, found through the filter postings, see
/// [`Postings`]).
fn apply_at<'a, ST: 'a>(q: Boxed<'a, ST>, p: &PageQuery<'a>, at: Option<Vec<(i64, i64)>>) -> Boxed<'a, ST> {
    // Positions too: PostgreSQL (before 17) reads `date_added = ANY(…)` from the position
    // index unordered, and would rather walk the collection in order than sort a step's rows.
    let keyed = by_id(p) || at.is_some();
    let q = filtered(q, p, at);
    if keyed {
        q.order((objects::date_added + 0i64).asc()).limit(p.fetch)
    } else {
        q.order(objects::date_added.asc()).limit(p.fetch)
    }
}

/// Whether a page query looks objects up by id (see [`filtered`]).
fn by_id(p: &PageQuery<'_>) -> bool {
    p.object.is_some() || !p.filter.ids.is_empty() || !p.filter.relationships_all.is_empty()
}

/// The filters and the keyset position of a page query, without its order and limit; with
/// `at`, only the versions with those seqs.
fn filtered<'a, ST: 'a>(mut q: Boxed<'a, ST>, p: &PageQuery<'a>, at: Option<Vec<(i64, i64)>>) -> Boxed<'a, ST> {
    // Queries for given ids match few rows: they must look them up through the version index
    // (its key, `ObjectKey`) rather than walk a type/latest/date_added index over the whole
    // collection, so their other terms are written as expressions no index holds (`latest + 0`,
    // `stix_type || ''`, `date_added + 0`). So are those for given seqs, which look them up in
    // the primary key.
    let by_id = by_id(p) || at.is_some();
    let f = p.filter;
    // By id: the version index's key, whatever the statistics say (see `ObjectKey`), which
    // carries the collection. Otherwise the plain column, which only the position, latest and
    // type indexes hold.
    match (p.object, f.ids.as_slice()) {
        (Some(id), _) => {
            q = q.filter(key_is(p.collection, id));
            if !f.ids.is_empty() {
                q = q.filter(objects::stix_id.eq_any(f.ids.clone()));
            }
        }
        // One id (the usual `match[id]`): an equality, which SQLite can keep prepared; diesel
        // prepares an `IN (?, …)` list anew for every request.
        (None, [one]) if f.relationships_all.is_empty() => q = q.filter(key_is(p.collection, one)),
        // `match[relationships-all]`: the objects, and the relationships and sightings that
        // refer to them: three index lookups (version index, source and target reference
        // indexes), each carrying the collection.
        (None, []) if !f.relationships_all.is_empty() => {
            let refs = f.relationships_all.clone();
            q = q.filter(
                key_in(p.collection, refs.iter().map(String::as_str))
                    .or(objects::collection_key.eq(p.collection).and(objects::source_ref.eq_any(refs.clone())))
                    .or(objects::collection_key.eq(p.collection).and(objects::target_ref.eq_any(refs))),
            );
        }
        // Both: the listed ids, of which those the relationships filter takes.
        (None, ids) if !f.relationships_all.is_empty() => {
            let refs = f.relationships_all.clone();
            q = q.filter(key_in(p.collection, ids.iter().map(String::as_str))).filter(
                objects::stix_id
                    .concat("")
                    .eq_any(refs.clone())
                    .or(objects::source_ref.eq_any(refs.clone()))
                    .or(objects::target_ref.eq_any(refs)),
            );
        }
        (None, []) => match at {
            None => q = q.filter(objects::collection_key.eq(p.collection)),
            // Versions found through the filter postings, by seq: through the primary key only,
            // so the collection is an expression no index holds (see `object_tags`).
            // The position is checked too: a version is taken only at the position it was
            // posted at (a posting left behind by a move could otherwise bring it twice).
            Some(at) => {
                let (positions, seqs): (Vec<i64>, Vec<i64>) = at.into_iter().unzip();
                q = q
                    .filter(objects::seq.eq_any(seqs))
                    .filter((objects::collection_key + 0i64).eq(p.collection))
                    .filter((objects::date_added + 0i64).eq_any(positions));
            }
        },
        (None, many) => q = q.filter(key_in(p.collection, many.iter().map(String::as_str))),
    }
    if !f.types.is_empty() {
        if by_id {
            // Keep the planner on the id index (see below).
            q = q.filter(objects::stix_type.concat("").eq_any(f.types.clone()));
        } else if let [one] = f.types.as_slice() {
            // One type: an equality, so that the type index returns the page in date_added
            // order (PostgreSQL reads `= ANY(…)` on a second index column as unordered, and
            // would rather filter the latest index by type, which for a rare type walks most
            // of the collection).
            q = q.filter(objects::stix_type.eq(one.clone()));
        } else {
            q = q.filter(objects::stix_type.eq_any(f.types.clone()));
        }
    }
    // Spec versions (T-218, T-219) and versions (T-214..T-217). The per-spec flags are exact
    // within one spec version; over several spec versions the *_any flags apply. Without
    // match[spec_version], first/last/all are taken within the latest spec version stored for
    // each object, and explicit versions match whatever spec version they were stored under.
    let (last_col, first_col): (Cond<'a>, Cond<'a>) = match f.spec_versions.as_slice() {
        [] => (
            Box::new(objects::is_last.eq(1).and(objects::spec_latest.eq(1))),
            Box::new(objects::is_first.eq(1).and(objects::spec_latest.eq(1))),
        ),
        [one] => {
            q = q.filter(objects::spec_version.eq(one.clone()));
            (Box::new(objects::is_last.eq(1)), Box::new(objects::is_first.eq(1)))
        }
        many => {
            q = q.filter(objects::spec_version.eq_any(many.to_vec()));
            (Box::new(objects::last_any.eq(1)), Box::new(objects::first_any.eq(1)))
        }
    };
    match &f.versions {
        VersionSel::All => {
            if f.spec_versions.is_empty() {
                q = q.filter(objects::spec_latest.eq(1));
            }
        }
        VersionSel::Some { first, last, explicit } => {
            if *last && !*first && explicit.is_empty() && f.spec_versions.is_empty() {
                // The default view: one index range. A reader of a derived collection who may
                // read only some of its sources: the newest version among those it can see
                // (the `latest` flag is over every version the collection holds).
                if let Some(bits) = p.sources {
                    q = q.filter(NewestVisible(bits));
                } else if by_id {
                    q = q.filter((objects::latest + 0).eq(1));
                } else {
                    q = q.filter(objects::latest.eq(1));
                }
            } else {
                let mut cond: Option<Cond<'a>> = None;
                let mut or = |c: Cond<'a>| {
                    cond = Some(match cond.take() {
                        None => c,
                        Some(prev) => Box::new(prev.or(c)),
                    })
                };
                if *last {
                    or(last_col);
                }
                if *first {
                    or(first_col);
                }
                if !explicit.is_empty() {
                    or(Box::new(objects::version_key.eq_any(explicit.clone())));
                }
                if let Some(cond) = cond {
                    q = q.filter(cond);
                }
            }
        }
    }
    // The richer filters (interop §3.13.2), on the facets stored with each version.
    if !f.labels.is_empty() {
        let mut cond: Option<Cond<'a>> = None;
        for l in &f.labels {
            let pattern = format!("%{LABEL_SEPARATOR}{}{LABEL_SEPARATOR}%", like_escaped(l));
            let c: Cond<'a> = Box::new(objects::labels.like(pattern).escape('\\').assume_not_null());
            cond = Some(match cond.take() {
                None => c,
                Some(prev) => Box::new(prev.or(c)),
            });
        }
        if let Some(cond) = cond {
            q = q.filter(cond);
        }
    }
    if let Some(n) = f.confidence_gte {
        q = q.filter(objects::confidence.ge(n));
    }
    if let Some(n) = f.confidence_lte {
        q = q.filter(objects::confidence.le(n));
    }
    match f.created_by.as_slice() {
        [] => {}
        // By id: keep the planner on the id index.
        many if by_id => q = q.filter(objects::created_by.concat("").eq_any(many.to_vec())),
        // One producer: an equality, so that the producer index returns the page in order.
        [one] => q = q.filter(objects::created_by.eq(one.clone())),
        many => q = q.filter(objects::created_by.eq_any(many.to_vec())),
    }
    if let Some(t) = f.tlp {
        q = q.filter(objects::tlp.is_null().or(objects::tlp.le(tlp_rank(t))));
    }
    if let Some(bits) = p.sources {
        q = q.filter(FromSources(bits));
    }
    if let Some(now) = p.valid_at {
        q = q.filter(objects::valid_from.is_null().or(objects::valid_from.le(now)));
        q = q.filter(objects::valid_until.is_null().or(objects::valid_until.gt(now)));
    }
    if let Some(t) = lower_bound(p) {
        q = q.filter(objects::date_added.gt(t));
    }
    q
}

/// The position a page starts after: its `added_after` or the previous page's last position.
fn lower_bound(p: &PageQuery<'_>) -> Option<Micros> {
    match (p.filter.added_after, p.after) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

/// The posting keys a page query is read through (see `filter_tags`): those of its labels,
/// else of its confidence bounds, else of its TLP ceiling. `None` when it has none of these
/// filters, or looks objects up by id or by producer, which have indexes of their own.
fn posting_keys(p: &PageQuery<'_>) -> Option<Vec<String>> {
    let f = p.filter;
    if by_id(p) || !f.created_by.is_empty() {
        return None;
    }
    if !f.labels.is_empty() {
        return Some(f.labels.iter().map(|l| label_tag(l)).collect());
    }
    if f.confidence_gte.is_some() || f.confidence_lte.is_some() {
        return Some(confidence_tags(f.confidence_gte, f.confidence_lte));
    }
    // A ceiling of RED lets everything through: no postings to read.
    f.tlp.map(tlp_rank).filter(|r| *r < 4).map(tlp_tags)
}

/// Whether every stored version has its filter postings: the backfill of the versions stored
/// before the `filter_postings` migration is done (until then, as on a node started with
/// `--no-migrate` while another migrates, the filters are checked on the rows).
fn postings_complete(c: &mut Conn) -> StorageResult<bool> {
    let state = super::meta_get(c, TAGS_BACKFILL)?;
    Ok(state.as_deref().and_then(backfill_state).is_none_or(|(done, upto)| done >= upto))
}

/// The `meta` key of the postings' backfill: "done:upto" (seqs).
const TAGS_BACKFILL: &str = "tags_backfill";

/// A backfill's state as `meta` keeps it ("done:upto").
fn backfill_state(s: &str) -> Option<(i64, i64)> {
    let (a, b) = s.split_once(':')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// Positions read from one posting key per step, at most.
const POSTINGS_STEP_MAX: usize = 8192;

/// One posting key's positions not yet merged.
struct PostingList {
    tag: String,
    /// (position, seq), ascending.
    buffered: std::collections::VecDeque<(i64, i64)>,
    /// The last position read from the table.
    from: Option<i64>,
    ended: bool,
}

/// The versions posted under some keys, merged in position order, each once: the candidates
/// of a filtered page (their seqs). Each key's positions are read in steps, through the postings' primary
/// key (an index range per key), so a page reads about as many postings as it has candidates.
struct Postings {
    collection: i64,
    lists: Vec<PostingList>,
    last: Option<i64>,
}

impl Postings {
    fn new(collection: i64, tags: Vec<String>, after: Option<i64>) -> Postings {
        let lists = tags
            .into_iter()
            .map(|tag| PostingList { tag, buffered: std::collections::VecDeque::new(), from: after, ended: false })
            .collect();
        Postings { collection, lists, last: None }
    }

    /// The next (up to) `n` versions: (position, seq).
    fn next(&mut self, c: &mut Conn, n: usize) -> StorageResult<Vec<(i64, i64)>> {
        let step = n.clamp(16, POSTINGS_STEP_MAX);
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            for l in &mut self.lists {
                if l.buffered.is_empty() && !l.ended {
                    let read = postings_query(self.collection, &l.tag, l.from, step as i64).load::<(i64, i64)>(c)?;
                    l.ended = read.len() < step;
                    l.from = read.last().map(|r| r.0).or(l.from);
                    l.buffered.extend(read);
                }
            }
            let mut best: Option<(usize, (i64, i64))> = None;
            for (i, l) in self.lists.iter().enumerate() {
                if let Some(&v) = l.buffered.front() {
                    if best.is_none_or(|(_, b)| v.0 < b.0) {
                        best = Some((i, v));
                    }
                }
            }
            let Some((i, (at, seq))) = best else { break };
            if let Some(l) = self.lists.get_mut(i) {
                l.buffered.pop_front();
            }
            // A version posted under two of the keys (two of the labels asked for) comes once.
            if self.last != Some(at) {
                out.push((at, seq));
                self.last = Some(at);
            }
        }
        Ok(out)
    }
}

/// The versions posted under one key after a position, in position order: (position, seq).
pub(super) fn postings_query<'a>(
    collection: i64,
    tag: &'a str,
    after: Option<i64>,
    limit: i64,
) -> object_tags::BoxedQuery<'a, MultiBackend, (diesel::sql_types::BigInt, diesel::sql_types::BigInt)> {
    let mut q = object_tags::table
        .filter(object_tags::collection_key.eq(collection))
        .filter(object_tags::tag.eq(tag))
        .select((object_tags::date_added, object_tags::seq))
        .into_boxed();
    if let Some(a) = after {
        q = q.filter(object_tags::date_added.gt(a));
    }
    q.order(object_tags::date_added.asc()).limit(limit)
}

/// Runs `f` on one snapshot of the database: a page read through postings takes several
/// statements, and its rows and its recorded position must agree. Not for use inside a
/// transaction (PostgreSQL takes `SET TRANSACTION` only as a transaction's first statement):
/// pages are read on a pooled connection of their own.
fn one_snapshot<T>(c: &mut Conn, f: impl FnOnce(&mut Conn) -> StorageResult<T>) -> StorageResult<T> {
    c.transaction(|c| {
        if matches!(c, AnyConnection::Postgresql(_)) {
            diesel::sql_query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY").execute(c)?;
        }
        f(c)
    })
}

/// Reads a page through the postings of `tags`: candidate versions a step at a time, read
/// with every condition of the query (`read` gets their seqs, and says
/// whether the page is complete and how many rows it still wants), until the page is complete
/// or the postings end. A step is sized by the share of candidates the steps before kept, so a
/// filter whose other conditions (or earlier versions) reject most candidates takes few steps,
/// and one that keeps most reads few more rows than the page holds.
///
/// With `probe`, the first step is a sample of [`PROBE_STEP`] candidates, and the function
/// returns false, having read nothing, when the filter is common: the sample lies among fewer
/// than [`DENSE_RATIO`] times as many versions. The page is
/// then cheaper read in position order with the filters checked on the rows (one index range,
/// a statement prepared once), which the caller does.
fn through_postings(
    c: &mut Conn,
    p: &PageQuery<'_>,
    tags: Vec<String>,
    probe: bool,
    mut read: impl FnMut(&mut Conn, Vec<(i64, i64)>) -> StorageResult<(bool, usize)>,
) -> StorageResult<bool> {
    let lower = lower_bound(p);
    let mut postings = Postings::new(p.collection, tags, lower);
    let mut wanted = usize::try_from(p.fetch).unwrap_or(POSTINGS_STEP_MAX);
    let (mut candidates, mut kept) = (0usize, 0usize);
    loop {
        // Candidates per row kept so far (at first: one), with a margin.
        let step = wanted.saturating_mul(candidates.max(1)) / kept.max(1);
        let mut step = step.saturating_add(step / 4 + 16).clamp(16, POSTINGS_STEP_MAX);
        if probe && candidates == 0 {
            // A sample tells the density about as well as a page, for a fraction of the reads.
            step = step.min(PROBE_STEP);
        }
        let at = postings.next(c, step)?;
        let ended = at.len() < step;
        if probe && candidates == 0 && !ended {
            if let Some(&(last, _)) = at.last() {
                if spans_fewer_versions(c, p.collection, lower, last, step.saturating_mul(DENSE_RATIO))? {
                    return Ok(false);
                }
            }
        }
        candidates += at.len();
        if at.is_empty() {
            return Ok(true);
        }
        let (complete, still_wanted) = read(c, at)?;
        if complete || ended {
            return Ok(true);
        }
        kept += wanted.saturating_sub(still_wanted);
        wanted = still_wanted;
    }
}

/// A filter whose postings hold at least one version in this many is read on the rows.
const DENSE_RATIO: usize = 16;
/// Candidates the density probe reads (per key): a first step of postings this long, against
/// the versions it spans.
const PROBE_STEP: usize = 32;

/// Whether a collection holds fewer than `bound` versions after `after` up to `upto` (a
/// position): the position of its `bound`-th version after `after`, one step along the
/// position index that returns one row.
fn spans_fewer_versions(
    c: &mut Conn,
    collection: i64,
    after: Option<i64>,
    upto: i64,
    bound: usize,
) -> StorageResult<bool> {
    Ok(nth_position_query(collection, after, upto, bound).get_result::<i64>(c).optional()?.is_none())
}

/// The position of a collection's `n`-th version (1-based) after a position, if it is at or
/// before `upto`.
pub(super) fn nth_position_query<'a>(
    collection: i64,
    after: Option<i64>,
    upto: i64,
    n: usize,
) -> objects::BoxedQuery<'a, MultiBackend, diesel::sql_types::BigInt> {
    let mut q = objects::table
        .filter(objects::collection_key.eq(collection))
        .filter(objects::date_added.le(upto))
        .select(objects::date_added)
        .into_boxed();
    if let Some(a) = after {
        q = q.filter(objects::date_added.gt(a));
    }
    let offset = i64::try_from(n.saturating_sub(1)).unwrap_or(i64::MAX);
    q.order(objects::date_added.asc()).offset(offset).limit(1)
}

/// Reads one page with `take`, which adds the rows of one query to it (`None`: in position
/// order with every filter checked on the rows; `Some(at)`: the versions at these positions)
/// and says whether the page is complete and how many rows it still wants. A filter with
/// posting keys is read through them when they are complete and the filter is selective
/// (the plan a page found is kept in `p.plans`); every other page is one query.
fn read_page(
    c: &mut Conn,
    p: &PageQuery<'_>,
    mut take: impl FnMut(&mut Conn, Option<Vec<(i64, i64)>>) -> StorageResult<(bool, usize)>,
) -> StorageResult<()> {
    let Some(tags) = posting_keys(p) else {
        take(c, None)?;
        return Ok(());
    };
    let lower = lower_bound(p);
    let known = p.plans.and_then(|plans| plans.get(p.collection, &tags, lower));
    if known == Some(PagePlan::Rows) || !postings_complete(c)? {
        take(c, None)?;
        return Ok(());
    }
    let plan = one_snapshot(c, |c| {
        if through_postings(c, p, tags.clone(), known.is_none(), |c, at| take(c, Some(at)))? {
            return Ok(PagePlan::Postings);
        }
        take(c, None)?;
        Ok(PagePlan::Rows)
    })?;
    if let (None, Some(plans)) = (known, p.plans) {
        plans.put(p.collection, &tags, lower, plan);
    }
    Ok(())
}

/// How many versions a page query matches from its position on (the TAXII 2.0 view's
/// `Content-Range` total): a count over the same index range the pages read.
pub fn count_rows(c: &mut Conn, p: &PageQuery<'_>) -> StorageResult<i64> {
    let q = objects::table.select(diesel::dsl::count_star()).into_boxed();
    Ok(filtered(q, p, None).get_result(c)?)
}

/// The `date_added` of the version at `offset` (0-based) among those a page query matches: a
/// TAXII 2.0 `Range` that does not continue the page before it starts after the one before.
pub fn position_at(c: &mut Conn, p: &PageQuery<'_>, offset: i64) -> StorageResult<Option<i64>> {
    let q = objects::table.select(objects::date_added).into_boxed();
    Ok(apply(q, p).offset(offset).limit(1).get_result(c).optional()?)
}

/// Every version of some objects in a collection (from the sources in `sources` in a derived
/// collection): id -> [(version key, version)], for the TAXII 2.0 manifest.
pub fn versions_of_many(
    c: &mut Conn,
    collection: i64,
    ids: &[&str],
    sources: Option<i64>,
    valid_at: Option<Micros>,
) -> StorageResult<HashMap<String, Vec<(String, String)>>> {
    let mut out: HashMap<String, Vec<(String, String)>> = HashMap::new();
    for chunk in ids.chunks(LOOKUP_CHUNK) {
        let mut q = objects::table
            .filter(key_in(collection, chunk.iter().copied()))
            .select((objects::stix_id, objects::version_key, objects::version))
            .into_boxed();
        if let Some(bits) = sources {
            q = q.filter(FromSources(bits));
        }
        if let Some(now) = valid_at {
            q = q.filter(objects::valid_from.is_null().or(objects::valid_from.le(now)));
            q = q.filter(objects::valid_until.is_null().or(objects::valid_until.gt(now)));
        }
        for (id, key, version) in q.load::<(String, String, String)>(c)? {
            out.entry(id).or_default().push((key, version));
        }
    }
    for v in out.values_mut() {
        v.sort();
        v.dedup();
    }
    Ok(out)
}

/// A label as a LIKE pattern matches it literally.
fn like_escaped(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        if matches!(ch, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(ch);
    }
    out
}

/// A page as read: its rows, and the collection's position (highest `date_added` handed out)
/// as the same statement saw it, so that the audit trail knows which versions existed when the
/// page was served (`None` for an empty page).
#[derive(Debug, Clone)]
pub struct PageRows<T> {
    pub rows: Vec<T>,
    pub snapshot: Option<i64>,
    /// The byte budget cut the page short.
    pub cut: bool,
}

/// The collection's position, as a scalar subquery evaluated once per statement: read in the
/// page's own statement, it needs no transaction to be consistent with the rows.
fn clock_of(
    collection: i64,
) -> diesel::dsl::SingleValue<
    diesel::dsl::Select<
        diesel::dsl::Filter<collection_clock::table, diesel::dsl::Eq<collection_clock::collection_key, i64>>,
        collection_clock::last_date_added,
    >,
> {
    collection_clock::table
        .filter(collection_clock::collection_key.eq(collection))
        .select(collection_clock::last_date_added)
        .single_value()
}

/// A page of versions with their JSON text, streamed row by row: it stops after `p.fetch` rows,
/// or once the bodies read add up to `byte_budget` (at least one row is always returned).
pub fn page_with_bodies(
    c: &mut Conn,
    p: &PageQuery<'_>,
    byte_budget: usize,
) -> StorageResult<PageRows<(VersionRow, String)>> {
    use diesel::connection::DefaultLoadingMode;
    let mut out = PageRows { rows: Vec::new(), snapshot: None, cut: false };
    let mut bytes = 0usize;
    // Adds the rows of one query: whether the page is complete, and how many rows it wants.
    let take = |c: &mut Conn, at: Option<Vec<(i64, i64)>>| -> StorageResult<(bool, usize)> {
        let want = PageQuery { fetch: p.fetch.saturating_sub(out.rows.len() as i64), ..p.clone() };
        for row in bodies_query_at(&want, at).load_iter::<(VersionRow, String, Option<i64>), DefaultLoadingMode>(c)? {
            let (version, body, snapshot) = row?;
            if !out.rows.is_empty() && bytes + body.len() > byte_budget {
                out.cut = true;
                return Ok((true, 0));
            }
            bytes += body.len();
            out.snapshot = snapshot;
            out.rows.push((version, body));
        }
        let still = p.fetch.saturating_sub(out.rows.len() as i64);
        Ok((still <= 0, usize::try_from(still).unwrap_or(0)))
    };
    read_page(c, p, take)?;
    Ok(out)
}

type VersionCols = (diesel::sql_types::BigInt, diesel::sql_types::BigInt, Text, Text, Text);

/// The query of a page with the objects' JSON text (get objects, get an object).
pub(super) fn bodies_query<'a>(
    p: &PageQuery<'a>,
) -> Boxed<'a, (VersionCols, Text, diesel::sql_types::Nullable<diesel::sql_types::BigInt>)> {
    bodies_query_at(p, None)
}

/// As [`bodies_query`], over the versions at some positions only.
pub(super) fn bodies_query_at<'a>(
    p: &PageQuery<'a>,
    at: Option<Vec<(i64, i64)>>,
) -> Boxed<'a, (VersionCols, Text, diesel::sql_types::Nullable<diesel::sql_types::BigInt>)> {
    let q = objects::table
        .select((
            (objects::seq, objects::date_added, objects::stix_id, objects::version, objects::spec_version),
            objects::body,
            clock_of(p.collection),
        ))
        .into_boxed();
    apply_at(q, p, at)
}

/// The query of a page without the JSON text (manifest, versions).
pub(super) fn rows_query<'a>(
    p: &PageQuery<'a>,
) -> Boxed<'a, (VersionCols, diesel::sql_types::Nullable<diesel::sql_types::BigInt>)> {
    rows_query_at(p, None)
}

/// As [`rows_query`], over the versions at some positions only.
fn rows_query_at<'a>(
    p: &PageQuery<'a>,
    at: Option<Vec<(i64, i64)>>,
) -> Boxed<'a, (VersionCols, diesel::sql_types::Nullable<diesel::sql_types::BigInt>)> {
    let q = objects::table
        .select((
            (objects::seq, objects::date_added, objects::stix_id, objects::version, objects::spec_version),
            clock_of(p.collection),
        ))
        .into_boxed();
    apply_at(q, p, at)
}

/// A page of versions without their JSON text (manifest, versions).
pub fn page(c: &mut Conn, p: &PageQuery<'_>) -> StorageResult<PageRows<VersionRow>> {
    let mut out = PageRows { rows: Vec::new(), snapshot: None, cut: false };
    let take = |c: &mut Conn, at: Option<Vec<(i64, i64)>>| -> StorageResult<(bool, usize)> {
        let want = p.fetch.saturating_sub(out.rows.len() as i64);
        let rows: Vec<(VersionRow, Option<i64>)> =
            rows_query_at(&PageQuery { fetch: want, ..p.clone() }, at).load(c)?;
        if let Some(s) = rows.first().and_then(|r| r.1) {
            out.snapshot = Some(s);
        }
        out.rows.extend(rows.into_iter().map(|r| r.0));
        let still = p.fetch.saturating_sub(out.rows.len() as i64);
        Ok((still <= 0, usize::try_from(still).unwrap_or(0)))
    };
    read_page(c, p, take)?;
    Ok(out)
}

/// Whether the collection holds any version of an object (from one of `sources`, in a derived
/// collection read by a partner who may read only some of its sources).
pub fn exists(c: &mut Conn, collection: i64, stix_id: &str, sources: Option<i64>) -> StorageResult<bool> {
    let mut q = exists_query(collection, stix_id);
    if let Some(bits) = sources {
        q = q.filter(FromSources(bits));
    }
    let n: i64 = q.get_result(c)?;
    Ok(n > 0)
}

pub(super) fn exists_query<'a>(
    collection: i64,
    stix_id: &'a str,
) -> objects::BoxedQuery<'a, MultiBackend, diesel::sql_types::BigInt> {
    objects::table.filter(key_is(collection, stix_id)).count().into_boxed()
}

/// What the audit trail keeps of a version's facets, to tell which filtered pages served it:
/// (confidence, created_by, tlp, labels, valid_from, valid_until, source_mask, source_ref,
/// target_ref), as stored.
pub type FacetCols = (
    Option<i32>,
    Option<String>,
    Option<i32>,
    Option<String>,
    Option<i64>,
    Option<i64>,
    i64,
    Option<String>,
    Option<String>,
);

#[allow(clippy::type_complexity)]
fn facet_cols() -> (
    objects::confidence,
    objects::created_by,
    objects::tlp,
    objects::labels,
    objects::valid_from,
    objects::valid_until,
    objects::source_mask,
    objects::source_ref,
    objects::target_ref,
) {
    (
        objects::confidence,
        objects::created_by,
        objects::tlp,
        objects::labels,
        objects::valid_from,
        objects::valid_until,
        objects::source_mask,
        objects::source_ref,
        objects::target_ref,
    )
}

/// Every stored version of one object in a collection with its facets, oldest first (for
/// `audit recipients`).
pub fn versions_with_facets(
    c: &mut Conn,
    collection: i64,
    stix_id: &str,
) -> StorageResult<Vec<(VersionFacts, FacetCols)>> {
    Ok(objects::table
        .filter(key_is(collection, stix_id))
        .select((
            (objects::version, objects::version_key, objects::spec_version, objects::stix_type, objects::date_added),
            facet_cols(),
        ))
        .order(objects::date_added.asc())
        .load(c)?)
}

/// One stored version of an object: (version as written, version key, spec_version, type,
/// date_added).
pub type VersionFacts = (String, String, String, String, i64);

/// Deletes the versions of one object selected by `filter` (call inside a write transaction),
/// and takes them out of the derived collections of this source. Returns the versions removed.
pub fn delete(
    c: &mut Conn,
    collection: i64,
    stix_id: &str,
    filter: &Filter,
    derived: &[Derived],
    generation: Option<i64>,
    withdrawn: &mut Vec<Withdrawn>,
) -> StorageResult<Vec<(VersionFacts, FacetCols)>> {
    let p = PageQuery {
        collection,
        object: Some(stix_id),
        filter,
        after: None,
        fetch: i64::MAX,
        sources: None,
        valid_at: None,
        plans: None,
    };
    let q = objects::table
        .select((
            objects::seq,
            (objects::version, objects::version_key, objects::spec_version, objects::stix_type, objects::date_added),
            facet_cols(),
        ))
        .into_boxed();
    // Same locks as inserts: flag recomputation must not interleave with a writer's.
    last_date_added(c, collection)?;
    check_feeds(c, derived, generation)?;
    let rows: Vec<(i64, VersionFacts, FacetCols)> = apply(q, &p).load(c)?;
    let seqs: Vec<i64> = rows.iter().map(|r| r.0).collect();
    for chunk in seqs.chunks(LOOKUP_CHUNK) {
        diesel::delete(objects::table.filter(objects::seq.eq_any(chunk))).execute(c)?;
    }
    let posted: Vec<Posted> = rows.iter().map(|(seq, f, fa)| (f.4, *seq, tags_of(fa))).collect();
    unpost_tags(c, collection, &posted)?;
    if !seqs.is_empty() {
        recompute_flags(c, collection, stix_id)?;
        let gone: Vec<(String, String)> = rows.iter().map(|(_, f, _)| (f.1.clone(), f.2.clone())).collect();
        for d in derived {
            withdraw(c, d, stix_id, &gone, withdrawn)?;
        }
    }
    Ok(rows.into_iter().map(|r| (r.1, r.2)).collect())
}

/// A version that left a derived collection (`removed`), or that one of its sources stopped
/// holding (its `source_mask` lost that source's bit), with its facets before the change: what
/// the audit trail records in the derived collection's chain.
#[derive(Debug, Clone)]
pub struct Withdrawn {
    pub derived: String,
    pub stix_id: String,
    pub removed: bool,
    pub facts: VersionFacts,
    pub facets: FacetCols,
}

/// Takes versions (version key, spec version) of one object that left a source out of a derived
/// collection: the source's bit is cleared, and a version no source holds any more goes.
fn withdraw(
    c: &mut Conn,
    d: &Derived,
    stix_id: &str,
    gone: &[(String, String)],
    withdrawn: &mut Vec<Withdrawn>,
) -> StorageResult<()> {
    last_date_added(c, d.key)?;
    let held: Vec<(i64, VersionFacts, FacetCols)> = objects::table
        .filter(key_is(d.key, stix_id))
        .select((
            objects::seq,
            (objects::version, objects::version_key, objects::spec_version, objects::stix_type, objects::date_added),
            facet_cols(),
        ))
        .load(c)?;
    let mut changed = false;
    for (seq, facts, facets) in held {
        let (key, spec, mask) = (&facts.1, &facts.2, facets.6);
        if mask & d.bit == 0 || !gone.iter().any(|(k, s)| k == key && s == spec) {
            continue;
        }
        changed = true;
        withdrawn.push(Withdrawn {
            derived: d.id.clone(),
            stix_id: stix_id.to_owned(),
            removed: mask == d.bit,
            facts: facts.clone(),
            facets: facets.clone(),
        });
        if mask == d.bit {
            diesel::delete(objects::table.filter(objects::seq.eq(seq))).execute(c)?;
            unpost_tags(c, d.key, &[(facts.4, seq, tags_of(&facets))])?;
        } else {
            diesel::update(objects::table.filter(objects::seq.eq(seq)))
                .set(objects::source_mask.eq(mask & !d.bit))
                .execute(c)?;
        }
    }
    if changed {
        recompute_flags(c, d.key, stix_id)?;
    }
    Ok(())
}

/// One step of a retention purge (call inside a write transaction): removes up to `limit`
/// versions of a collection added before `cutoff` and after `after` (the latest version of each
/// object stays if `keep_latest`), and takes them out of the derived collections of this source.
/// Returns the versions removed, as (id, facts), and the last position looked at (`None` when
/// there is nothing left to look at).
#[allow(clippy::too_many_arguments)]
pub fn purge_before(
    c: &mut Conn,
    collection: i64,
    cutoff: Micros,
    keep_latest: bool,
    after: i64,
    limit: i64,
    derived: &[Derived],
    generation: Option<i64>,
    withdrawn: &mut Vec<Withdrawn>,
) -> StorageResult<(Vec<(String, VersionFacts, FacetCols)>, Option<i64>)> {
    last_date_added(c, collection)?;
    check_feeds(c, derived, generation)?;
    // Through the position index, oldest first; the latest versions kept are skipped by the
    // position the next step starts after.
    let rows: Vec<(i64, i32, String, VersionFacts, FacetCols)> = objects::table
        .filter(objects::collection_key.eq(collection))
        .filter(objects::date_added.gt(after))
        .filter(objects::date_added.lt(cutoff))
        .order(objects::date_added.asc())
        .limit(limit)
        .select((
            objects::seq,
            objects::latest,
            objects::stix_id,
            (objects::version, objects::version_key, objects::spec_version, objects::stix_type, objects::date_added),
            facet_cols(),
        ))
        .load(c)?;
    let last = rows.last().map(|r| r.3 .4);
    let gone: Vec<(i64, String, VersionFacts, FacetCols)> = rows
        .into_iter()
        .filter(|(_, latest, _, _, _)| !(keep_latest && *latest == 1))
        .map(|(seq, _, id, facts, facets)| (seq, id, facts, facets))
        .collect();
    let seqs: Vec<i64> = gone.iter().map(|g| g.0).collect();
    for chunk in seqs.chunks(LOOKUP_CHUNK) {
        diesel::delete(objects::table.filter(objects::seq.eq_any(chunk))).execute(c)?;
    }
    let posted: Vec<Posted> = gone.iter().map(|(seq, _, f, fa)| (f.4, *seq, tags_of(fa))).collect();
    unpost_tags(c, collection, &posted)?;
    let mut by_id: HashMap<&str, Vec<(String, String)>> = HashMap::new();
    for (_, id, f, _) in &gone {
        by_id.entry(id.as_str()).or_default().push((f.1.clone(), f.2.clone()));
    }
    for (id, versions) in &by_id {
        recompute_flags(c, collection, id)?;
        for d in derived {
            withdraw(c, d, id, versions, withdrawn)?;
        }
    }
    Ok((gone.into_iter().map(|(_, id, f, facets)| (id, f, facets)).collect(), last))
}

/// Gives the versions of a `valid_now` derived collection that became valid since they were
/// written (`valid_from` after their `date_added`, and now passed) a new position after the
/// collection's last one, in order of `valid_from`, so that pollers using `added_after` see them
/// (call inside a write transaction). Returns how many moved.
pub fn activate(c: &mut Conn, feed: &Derived, now: Micros, withdrawn: &mut Vec<Withdrawn>) -> StorageResult<usize> {
    let collection = feed.key;
    let last = last_date_added(c, collection)?;
    let mut due: Vec<(i64, i64, String, VersionFacts, FacetCols)> = objects::table
        .filter(objects::collection_key.eq(collection))
        .filter(objects::valid_from.le(now))
        .filter(objects::valid_from.assume_not_null().gt(objects::date_added))
        .select((
            objects::seq,
            objects::valid_from.assume_not_null(),
            objects::stix_id,
            (objects::version, objects::version_key, objects::spec_version, objects::stix_type, objects::date_added),
            facet_cols(),
        ))
        .load(c)?;
    due.sort_by_key(|r| (r.1, r.0));
    let mut next = now.max(last + 1);
    for (seq, _, id, facts, facets) in due.iter().cloned() {
        diesel::update(objects::table.filter(objects::seq.eq(seq))).set(objects::date_added.eq(next)).execute(c)?;
        let tags = tags_of(&facets);
        unpost_tags(c, collection, &[(facts.4, seq, tags.clone())])?;
        post_tags(c, collection, &[(next, seq, tags)])?;
        next += 1;
        withdrawn.push(Withdrawn { derived: feed.id.clone(), stix_id: id, removed: true, facts, facets });
    }
    if !due.is_empty() {
        advance_clock(c, collection, next - 1)?;
    }
    Ok(due.len())
}

/// How many versions of a collection stopped being valid (`valid_until`) in `(from, to]`.
pub fn count_expired(c: &mut Conn, collection: i64, from: Micros, to: Micros) -> StorageResult<i64> {
    Ok(objects::table
        .filter(objects::collection_key.eq(collection))
        .filter(objects::valid_until.gt(from))
        .filter(objects::valid_until.le(to))
        .count()
        .get_result(c)?)
}

/// Versions read per step when a derived collection is rebuilt or facets are filled in.
const REBUILD_BATCH: i64 = 1000;

/// What leaves a collection in one step, handed to the caller inside the transaction (the
/// service records it in the audit trail).
pub type WithdrawnSink<'s> = dyn FnMut(&mut Conn, &[Withdrawn]) -> StorageResult<()> + 's;

/// Fills a derived collection anew from its sources (call inside a write transaction, with the
/// sources' clocks locked first: see [`lock_clocks`]): every version the sources hold, source by
/// source in the order they were added, goes through the filter as if it were written now.
/// The versions it held before leave it: they are handed to `gone` (if any), a batch at a time,
/// before they are deleted (so that the audit trail keeps what was served from their old
/// positions).
/// Returns the versions the derived collection holds afterwards.
pub fn rebuild_derived(
    c: &mut Conn,
    derived: (&str, i64),
    filter: &FeedFilter,
    sources: &[(i64, i64)],
    now: Micros,
    mut gone: Option<&mut WithdrawnSink<'_>>,
) -> StorageResult<i64> {
    let (derived_id, derived_key) = derived;
    last_date_added(c, derived_key)?;
    let mut after = i64::MIN;
    while let Some(gone) = gone.as_deref_mut() {
        let held: Vec<(String, VersionFacts, FacetCols)> = objects::table
            .filter(objects::collection_key.eq(derived_key))
            .filter(objects::date_added.gt(after))
            .order(objects::date_added.asc())
            .limit(REBUILD_BATCH)
            .select((
                objects::stix_id,
                (
                    objects::version,
                    objects::version_key,
                    objects::spec_version,
                    objects::stix_type,
                    objects::date_added,
                ),
                facet_cols(),
            ))
            .load(c)?;
        let Some(last) = held.last().map(|h| h.1 .4) else { break };
        after = last;
        let batch: Vec<Withdrawn> = held
            .into_iter()
            .map(|(stix_id, facts, facets)| Withdrawn {
                derived: derived_id.to_owned(),
                stix_id,
                removed: true,
                facts,
                facets,
            })
            .collect();
        gone(c, &batch)?;
    }
    diesel::delete(objects::table.filter(objects::collection_key.eq(derived_key))).execute(c)?;
    diesel::delete(object_tags::table.filter(object_tags::collection_key.eq(derived_key))).execute(c)?;
    let d = Derived { id: derived_id.to_owned(), key: derived_key, bit: 0, filter: filter.clone() };
    for &(source, bit) in sources {
        let d = Derived { bit, ..d.clone() };
        let mut after = i64::MIN;
        loop {
            let rows: Vec<(i64, i64, String, String, String)> = objects::table
                .filter(objects::collection_key.eq(source))
                .filter(objects::date_added.gt(after))
                .order(objects::date_added.asc())
                .limit(REBUILD_BATCH)
                .select((objects::date_added, objects::added_by, objects::version, objects::stix_id, objects::body))
                .load(c)?;
            let Some(last) = rows.last().map(|r| r.0) else { break };
            after = last;
            // One call per writer, in order, so that each copy keeps who added it.
            let mut run: Vec<NewObject> = Vec::new();
            let mut run_by = None;
            for (_, added_by, version, _, body) in rows {
                if run_by.is_some_and(|b| b != added_by) {
                    feed_batch(c, &d, run_by.unwrap_or_default(), &std::mem::take(&mut run), now)?;
                }
                run_by = Some(added_by);
                if let Some(item) = stored_item(&body, &version) {
                    run.push(item);
                }
            }
            if let Some(by) = run_by {
                feed_batch(c, &d, by, &run, now)?;
            }
        }
    }
    let n: i64 = objects::table.filter(objects::collection_key.eq(derived_key)).count().get_result(c)?;
    Ok(n)
}

/// A stored version read back as an item to feed a derived collection (`None` if its text no
/// longer parses, which the store never lets in).
fn stored_item(body: &str, version: &str) -> Option<NewObject> {
    let value: serde_json::Value = serde_json::from_str(body).ok()?;
    let mut head = crate::model::stix::head_of(&value, 0).ok()?;
    if head.version.is_none() {
        head.version_key = stix_version_key(version);
        head.version = Some(version.to_owned());
    }
    Some(NewObject { head, body: body.to_owned() })
}

fn feed_batch(c: &mut Conn, d: &Derived, added_by: i64, items: &[NewObject], now: Micros) -> StorageResult<()> {
    if items.is_empty() {
        return Ok(());
    }
    let refs: Vec<&NewObject> = items.iter().collect();
    let last = last_date_added(c, d.key)?;
    // A rebuild starts from an empty collection: nothing it moves was ever served from it.
    insert_rows(c, d.key, added_by, &refs, now, last, Some(d), &mut Vec::new())?;
    Ok(())
}

/// Locks the clocks of some collections (PostgreSQL), in ascending key order, the order every
/// writer takes them in (a writer holds one source, then its derived collections).
pub fn lock_clocks(c: &mut Conn, keys: &[i64]) -> StorageResult<()> {
    let mut keys = keys.to_vec();
    keys.sort_unstable();
    keys.dedup();
    for k in keys {
        last_date_added(c, k)?;
    }
    Ok(())
}

/// Fills in the facet columns of the versions stored before the `feeds` migration: the
/// migration records the highest `seq` to fill in (`facets_backfill` = "done:upto"), and this
/// goes on from where it stopped, one batch per transaction, so an interrupted run resumes.
/// Returns the versions filled in.
pub fn backfill_facets(c: &mut Conn, ran: &[String]) -> StorageResult<u64> {
    const KEY: &str = "facets_backfill";
    if ran.iter().any(|v| v.replace('-', "").starts_with("20261205000000")) {
        let upto: Option<i64> = objects::table.select(diesel::dsl::max(objects::seq)).first(c)?;
        super::meta_set(c, KEY, &format!("0:{}", upto.unwrap_or(0)))?;
    }
    resumable_backfill(c, KEY, "filling in the facets of stored versions", |c, done, upto| {
        let rows: Vec<(i64, String)> = backfill_batch(done, upto).select((objects::seq, objects::body)).load(c)?;
        for (seq, body) in &rows {
            let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(body) else {
                continue;
            };
            let f = crate::model::feed::Facets::of(&map);
            diesel::update(objects::table.filter(objects::seq.eq(seq)))
                .set((
                    objects::confidence.eq(f.confidence),
                    objects::created_by.eq(f.created_by.as_deref()),
                    objects::tlp.eq(f.tlp.map(tlp_rank)),
                    objects::labels.eq(f.labels_column()),
                    objects::valid_from.eq(f.valid_from),
                    objects::valid_until.eq(f.valid_until),
                    objects::source_ref.eq(f.source_ref.as_deref()),
                    objects::target_ref.eq(f.target_ref.as_deref()),
                ))
                .execute(c)?;
        }
        Ok(rows.iter().map(|r| r.0).collect())
    })
}

/// Adds the filter postings of the versions stored before the `filter_postings` migration
/// (which records, as `tags_backfill` = "done:upto", the highest `seq` to do), one batch per
/// transaction, resumably, from the stored facet columns. Returns the versions done.
pub fn backfill_tags(c: &mut Conn) -> StorageResult<u64> {
    resumable_backfill(c, TAGS_BACKFILL, "adding the filter postings of stored versions", |c, done, upto| {
        type Row = (i64, i64, i64, Option<i32>, Option<i32>, Option<String>);
        let rows: Vec<Row> = backfill_batch(done, upto)
            .select((
                objects::seq,
                objects::collection_key,
                objects::date_added,
                objects::confidence,
                objects::tlp,
                objects::labels,
            ))
            .load(c)?;
        let tags: Vec<(i64, i64, i64, Vec<String>)> =
            rows.iter().map(|r| (r.1, r.2, r.0, filter_tags(r.3, r.4, r.5.as_deref()))).collect();
        let new: Vec<NewTag<'_>> = tags
            .iter()
            .flat_map(|(key, at, seq, tags)| {
                tags.iter().map(move |t| NewTag { collection_key: *key, tag: t, date_added: *at, seq: *seq })
            })
            .collect();
        insert_tags(c, &new, true)?;
        Ok(rows.iter().map(|r| r.0).collect())
    })
}

/// The next batch of a backfill: the versions after seq `done` up to `upto`, in seq order.
fn backfill_batch(done: i64, upto: i64) -> objects::BoxedQuery<'static, MultiBackend> {
    objects::table
        .filter(objects::seq.gt(done))
        .filter(objects::seq.le(upto))
        .order(objects::seq.asc())
        .limit(REBUILD_BATCH)
        .into_boxed()
}

/// Runs a backfill whose state `meta` keeps under `key` as "done:upto" (seqs): `batch` does the
/// versions of one [`backfill_batch`] and gives their seqs, and its work and the new state
/// commit together, so an interrupted run resumes where it stopped. Returns the versions done.
fn resumable_backfill(
    c: &mut Conn,
    key: &str,
    what: &str,
    mut batch: impl FnMut(&mut Conn, i64, i64) -> StorageResult<Vec<i64>>,
) -> StorageResult<u64> {
    let mut total = 0u64;
    loop {
        let Some(state) = super::meta_get(c, key)? else { return Ok(total) };
        let (done, upto) = backfill_state(&state).unwrap_or((0, 0));
        if done >= upto {
            return Ok(total);
        }
        let n = c.transaction::<_, StorageError, _>(|c| {
            let seqs = batch(c, done, upto)?;
            let reached = seqs.last().copied().unwrap_or(upto);
            super::meta_set(c, key, &format!("{reached}:{upto}"))?;
            Ok(seqs.len() as u64)
        })?;
        total += n;
        if total > 0 && total % 100_000 < REBUILD_BATCH as u64 {
            tracing::info!(done = total, upto, "{what}");
        }
    }
}

/// Every stored version of one object in a collection, oldest first.
///
/// # Errors
/// Database failures.
pub fn versions_of(c: &mut Conn, collection: i64, stix_id: &str) -> StorageResult<Vec<VersionFacts>> {
    Ok(versions_query(collection, stix_id).load(c)?)
}

pub(super) fn versions_query<'a>(
    collection: i64,
    stix_id: &'a str,
) -> objects::BoxedQuery<'a, MultiBackend, (Text, Text, Text, Text, diesel::sql_types::BigInt)> {
    objects::table
        .filter(key_is(collection, stix_id))
        .select((
            objects::version,
            objects::version_key,
            objects::spec_version,
            objects::stix_type,
            objects::date_added,
        ))
        .order(objects::date_added.asc())
        .into_boxed()
}

/// One stored version as the console lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedVersion {
    pub stix_id: String,
    pub stix_type: String,
    pub version: String,
    pub date_added: Micros,
    pub body: String,
}

/// The latest versions most recently added to a collection, newest first (the `objects_latest`
/// index, read backwards).
///
/// # Errors
/// Database failures.
pub fn latest_added(c: &mut Conn, collection: i64, limit: i64) -> StorageResult<Vec<ListedVersion>> {
    let rows: Vec<ListedRow> = objects::table
        .filter(objects::collection_key.eq(collection))
        .filter(objects::latest.eq(1))
        .order(objects::date_added.desc())
        .select(LISTED)
        .limit(limit)
        .load(c)?;
    Ok(rows.into_iter().map(ListedVersion::from).collect())
}

type ListedRow = (String, String, String, i64, String);

const LISTED: (objects::stix_id, objects::stix_type, objects::version, objects::date_added, objects::body) =
    (objects::stix_id, objects::stix_type, objects::version, objects::date_added, objects::body);

impl From<ListedRow> for ListedVersion {
    fn from((stix_id, stix_type, version, date_added, body): ListedRow) -> ListedVersion {
        ListedVersion { stix_id, stix_type, version, date_added, body }
    }
}

/// Every stored version of one object in a collection, oldest position first.
///
/// # Errors
/// Database failures.
pub fn bodies_of(c: &mut Conn, collection: i64, stix_id: &str) -> StorageResult<Vec<ListedVersion>> {
    let rows: Vec<ListedRow> = objects::table.filter(key_in(collection, [stix_id])).select(LISTED).load(c)?;
    let mut out: Vec<ListedVersion> = rows.into_iter().map(ListedVersion::from).collect();
    out.sort_by_key(|v| v.date_added);
    Ok(out)
}

/// How many objects a collection holds (rows flagged latest: one per object and spec version),
/// counted on the `objects_latest` index.
///
/// # Errors
/// Database failures.
pub fn count_latest(c: &mut Conn, collection: i64) -> StorageResult<i64> {
    Ok(objects::table
        .filter(objects::collection_key.eq(collection))
        .filter(objects::latest.eq(1))
        .count()
        .get_result(c)?)
}

#[cfg(test)]
mod tests {
    use super::{PagePlan, PagePlans, PLANS_KEPT};

    #[test]
    fn page_plans_are_kept_per_collection_keys_and_position_and_bounded() {
        let plans = PagePlans::default();
        let green = vec!["t:-".to_owned(), "t:0".to_owned(), "t:1".to_owned()];
        assert_eq!(plans.get(1, &green, None), None);
        plans.put(1, &green, None, PagePlan::Rows);
        plans.put(2, &green, Some(7), PagePlan::Postings);
        assert_eq!(plans.get(1, &green, None), Some(PagePlan::Rows));
        assert_eq!(plans.get(2, &green, Some(7)), Some(PagePlan::Postings));
        assert_eq!(plans.get(1, &green[..1], None), None, "other keys, another plan");
        assert_eq!(plans.get(1, &green, Some(1)), None, "found at another position");
        assert_eq!(plans.get(2, &green, Some(8)), None, "found at another position");
        // Labels and positions are the clients' choice: a flood keeps at most PLANS_KEPT plans.
        for i in 0..PLANS_KEPT * 3 {
            plans.put(3, &[format!("l:{i}")], Some(1), PagePlan::Postings);
        }
        let kept = plans.known.lock().unwrap().len();
        assert!(kept <= PLANS_KEPT, "{kept}");
        assert_eq!(plans.get(3, &[format!("l:{}", PLANS_KEPT * 3 - 1)], Some(1)), Some(PagePlan::Postings));
    }
}
