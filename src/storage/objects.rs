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

use super::schema::{collection_clock, objects};
use super::{AnyConnection, Conn, MultiBackend, StorageError, StorageResult};
use crate::model::filter::{Filter, VersionSel};
use crate::model::stix::ObjectHead;
use crate::model::time::{format_taxii, version_key_from_micros, Micros};

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

/// Stores the objects of one envelope (call inside a write transaction). Returns one outcome per
/// object, in order.
pub fn insert(
    c: &mut Conn,
    collection: i64,
    added_by: i64,
    items: &[NewObject],
    now: Micros,
) -> StorageResult<Vec<Outcome>> {
    // Lock the collection's clock first (PostgreSQL): everything read below is then stable
    // against other writers to this collection until the transaction ends.
    let t0 = std::time::Instant::now();
    let last = last_date_added(c, collection)?;
    // Versions already stored for the ids of this envelope: id -> [(version_key, spec, version)].
    let mut ids: Vec<&str> = items.iter().map(|o| o.head.id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    let mut existing: HashMap<String, Vec<(String, String, String)>> = HashMap::new();
    for chunk in ids.chunks(LOOKUP_CHUNK) {
        let rows: Vec<(String, String, String, String)> = stored_versions(collection, chunk).load(c)?;
        for (id, key, spec, version) in rows {
            existing.entry(id).or_default().push((key, spec, version));
        }
    }

    let t_lookup = t0.elapsed();
    let mut next = now.max(last + 1);
    let mut outcomes = Vec::with_capacity(items.len());
    let mut rows: Vec<NewRow<'_>> = Vec::with_capacity(items.len());
    let mut seen: HashMap<&str, Vec<(String, String, String)>> = HashMap::new();
    let mut needs_recompute: HashSet<&str> = HashSet::new();
    for item in items {
        let h = &item.head;
        let stored = existing.get(&h.id);
        let batch = seen.get(h.id.as_str());
        let prior = stored.into_iter().chain(batch).flatten();
        let (version, key) = match (&h.version, &h.version_key) {
            (Some(v), Some(k)) => (v.clone(), k.clone()),
            _ => {
                // No modified/created: the object is immutable; its first stored copy is its version.
                if let Some((_, _, v)) = prior.clone().next() {
                    outcomes.push(Outcome::Duplicate { version: v.clone() });
                    continue;
                }
                (format_taxii(next), version_key_from_micros(next))
            }
        };
        if prior.clone().any(|(k, s, _)| *k == key && *s == h.spec_version) {
            outcomes.push(Outcome::Duplicate { version });
            continue;
        }
        let fresh = stored.is_none() && batch.is_none();
        if !fresh {
            needs_recompute.insert(h.id.as_str());
        }
        let flag = i32::from(fresh);
        seen.entry(h.id.as_str()).or_default().push((key.clone(), h.spec_version.clone(), version.clone()));
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
        });
        next += 1;
        outcomes.push(Outcome::Stored { version });
    }
    // An id first seen in this batch and then again: its first row was inserted as "fresh" with
    // all flags set; the recompute below fixes it.
    let (last_added, count) = (rows.last().map(|r| r.date_added), rows.len());
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
    if let Some(last) = last_added {
        advance_clock(c, collection, last)?;
    }
    for id in needs_recompute {
        recompute_flags(c, collection, id)?;
    }
    tracing::trace!(
        lookup_ms = t_lookup.as_secs_f64() * 1e3,
        insert_ms = (t0.elapsed() - t_lookup).as_secs_f64() * 1e3,
        "insert objects"
    );
    Ok(outcomes)
}

/// The versions already stored for some ids of a collection: (id, version key, spec version,
/// version). The lookup every envelope makes under the collection's write lock.
pub(super) fn stored_versions<'a>(
    collection: i64,
    ids: &'a [&'a str],
) -> objects::BoxedQuery<'a, MultiBackend, (Text, Text, Text, Text)> {
    objects::table
        .filter(key_in(collection, ids.iter().copied()))
        .select((objects::stix_id, objects::version_key, objects::spec_version, objects::version))
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
fn apply<'a, ST: 'a>(mut q: Boxed<'a, ST>, p: &PageQuery<'a>) -> Boxed<'a, ST> {
    // Queries for given ids match few rows: they must look them up through the version index
    // (its key, `ObjectKey`) rather than walk a type/latest/date_added index over the whole
    // collection, so their other terms are written as expressions no index holds (`latest + 0`,
    // `stix_type || ''`, `date_added + 0`).
    let by_id = p.object.is_some() || !p.filter.ids.is_empty();
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
        (None, [one]) => q = q.filter(key_is(p.collection, one)),
        (None, []) => q = q.filter(objects::collection_key.eq(p.collection)),
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
                // The default view: one index range.
                if by_id {
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
    let lower = match (f.added_after, p.after) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
    if let Some(t) = lower {
        q = q.filter(objects::date_added.gt(t));
    }
    if by_id {
        q.order((objects::date_added + 0i64).asc()).limit(p.fetch)
    } else {
        q.order(objects::date_added.asc()).limit(p.fetch)
    }
}

/// A page of versions with their JSON text, streamed row by row: it stops after `p.fetch` rows,
/// or once the bodies read add up to `byte_budget` (at least one row is always returned).
/// The flag says whether the budget cut the page short.
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
    for row in bodies_query(p).load_iter::<(VersionRow, String, Option<i64>), DefaultLoadingMode>(c)? {
        let (version, body, snapshot) = row?;
        if !out.rows.is_empty() && bytes + body.len() > byte_budget {
            out.cut = true;
            return Ok(out);
        }
        bytes += body.len();
        out.snapshot = snapshot;
        out.rows.push((version, body));
    }
    Ok(out)
}

type VersionCols = (diesel::sql_types::BigInt, diesel::sql_types::BigInt, Text, Text, Text);

/// The query of a page with the objects' JSON text (get objects, get an object).
pub(super) fn bodies_query<'a>(
    p: &PageQuery<'a>,
) -> Boxed<'a, (VersionCols, Text, diesel::sql_types::Nullable<diesel::sql_types::BigInt>)> {
    let q = objects::table
        .select((
            (objects::seq, objects::date_added, objects::stix_id, objects::version, objects::spec_version),
            objects::body,
            clock_of(p.collection),
        ))
        .into_boxed();
    apply(q, p)
}

/// The query of a page without the JSON text (manifest, versions).
pub(super) fn rows_query<'a>(
    p: &PageQuery<'a>,
) -> Boxed<'a, (VersionCols, diesel::sql_types::Nullable<diesel::sql_types::BigInt>)> {
    let q = objects::table
        .select((
            (objects::seq, objects::date_added, objects::stix_id, objects::version, objects::spec_version),
            clock_of(p.collection),
        ))
        .into_boxed();
    apply(q, p)
}

/// A page of versions without their JSON text (manifest, versions).
pub fn page(c: &mut Conn, p: &PageQuery<'_>) -> StorageResult<PageRows<VersionRow>> {
    let rows: Vec<(VersionRow, Option<i64>)> = rows_query(p).load(c)?;
    let snapshot = rows.first().and_then(|r| r.1);
    Ok(PageRows { rows: rows.into_iter().map(|r| r.0).collect(), snapshot, cut: false })
}

/// Whether the collection holds any version of an object.
pub fn exists(c: &mut Conn, collection: i64, stix_id: &str) -> StorageResult<bool> {
    let n: i64 = exists_query(collection, stix_id).get_result(c)?;
    Ok(n > 0)
}

pub(super) fn exists_query<'a>(
    collection: i64,
    stix_id: &'a str,
) -> objects::BoxedQuery<'a, MultiBackend, diesel::sql_types::BigInt> {
    objects::table.filter(key_is(collection, stix_id)).count().into_boxed()
}

/// One stored version of an object: (version as written, version key, spec_version, type,
/// date_added).
pub type VersionFacts = (String, String, String, String, i64);

/// Deletes the versions of one object selected by `filter` (call inside a write transaction).
/// Returns the versions removed.
pub fn delete(c: &mut Conn, collection: i64, stix_id: &str, filter: &Filter) -> StorageResult<Vec<VersionFacts>> {
    let p = PageQuery { collection, object: Some(stix_id), filter, after: None, fetch: i64::MAX };
    let q = objects::table
        .select((
            objects::seq,
            (objects::version, objects::version_key, objects::spec_version, objects::stix_type, objects::date_added),
        ))
        .into_boxed();
    // Same lock as inserts: flag recomputation must not interleave with a writer's.
    last_date_added(c, collection)?;
    let rows: Vec<(i64, VersionFacts)> = apply(q, &p).load(c)?;
    let seqs: Vec<i64> = rows.iter().map(|r| r.0).collect();
    for chunk in seqs.chunks(LOOKUP_CHUNK) {
        diesel::delete(objects::table.filter(objects::seq.eq_any(chunk))).execute(c)?;
    }
    if !seqs.is_empty() {
        recompute_flags(c, collection, stix_id)?;
    }
    Ok(rows.into_iter().map(|r| r.1).collect())
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
