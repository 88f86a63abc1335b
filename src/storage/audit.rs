//! The audit trail's tables: chains and their heads, appending linked records, streaming them
//! out (export, verification), the pages that covered a position (recipients) and retention.
//!
//! The tables are append-only: triggers on both backends refuse UPDATE and DELETE on
//! `audit_records`, except inside a retention purge's transaction ([`purge`]).

use diesel::connection::DefaultLoadingMode;
use diesel::prelude::*;

use super::schema::{audit_chains, audit_purge, audit_records};
use super::{per_backend, AnyConnection, Conn, StorageError, StorageResult};
use crate::model::audit::{link_hash, AuditRecord, ChainHead, ChainedRecord, GENESIS};
use crate::model::time::Micros;

/// The chain of operator actions, anchors and purges (created by the migration).
pub const CLUSTER_CHAIN: i64 = 1;

/// Rows per multi-row INSERT on PostgreSQL (13 parameters each, under the 65,535 limit).
const PG_INSERT_CHUNK: usize = 4000;

#[derive(Insertable)]
#[diesel(table_name = audit_records)]
struct NewRow<'a> {
    chain_id: i64,
    seq: i64,
    at: i64,
    kind: &'a str,
    action: &'a str,
    partner_id: Option<i64>,
    collection_id: Option<&'a str>,
    range_first: Option<i64>,
    range_last: Option<i64>,
    record: String,
    prev_hash: String,
    hash: String,
}

/// One chain and its head (last record).
#[derive(Debug, Clone, PartialEq, Eq, Queryable)]
pub struct ChainInfo {
    pub id: i64,
    /// `cluster`, `node` or `collection`.
    pub kind: String,
    /// The node's description, or the collection id.
    pub name: String,
    pub started_at: Micros,
    pub head_seq: i64,
    pub head_hash: String,
}

/// A stored record: its place in its chain, its text, and the columns queries select on (which
/// verification checks against the text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecord {
    pub chained: ChainedRecord,
    pub at: Micros,
    pub kind: String,
    pub action: String,
    pub partner_id: Option<i64>,
    pub collection_id: Option<String>,
    pub range_first: Option<Micros>,
    pub range_last: Option<Micros>,
}

type Row =
    (i64, i64, i64, i64, String, String, Option<i64>, Option<String>, Option<i64>, Option<i64>, String, String, String);

fn columns() -> (
    audit_records::id,
    audit_records::chain_id,
    audit_records::seq,
    audit_records::at,
    audit_records::kind,
    audit_records::action,
    audit_records::partner_id,
    audit_records::collection_id,
    audit_records::range_first,
    audit_records::range_last,
    audit_records::record,
    audit_records::prev_hash,
    audit_records::hash,
) {
    (
        audit_records::id,
        audit_records::chain_id,
        audit_records::seq,
        audit_records::at,
        audit_records::kind,
        audit_records::action,
        audit_records::partner_id,
        audit_records::collection_id,
        audit_records::range_first,
        audit_records::range_last,
        audit_records::record,
        audit_records::prev_hash,
        audit_records::hash,
    )
}

fn stored(
    (id, chain, seq, at, kind, action, partner_id, collection_id, range_first, range_last, text, prev_hash, hash): Row,
) -> StoredRecord {
    StoredRecord {
        chained: ChainedRecord { id, chain, seq, prev_hash, hash, text },
        at,
        kind,
        action,
        partner_id,
        collection_id,
        range_first,
        range_last,
    }
}

/// The id of the chain `(kind, name)`, created with an empty head if it does not exist.
fn chain_id(c: &mut Conn, kind: &str, name: &str, now: Micros) -> StorageResult<i64> {
    per_backend!(&mut *c, |c| diesel::insert_into(audit_chains::table)
        .values((
            audit_chains::kind.eq(kind),
            audit_chains::name.eq(name),
            audit_chains::started_at.eq(now),
            audit_chains::head_seq.eq(0i64),
            audit_chains::head_hash.eq(GENESIS),
        ))
        .on_conflict((audit_chains::kind, audit_chains::name))
        .do_nothing()
        .execute(c))?;
    Ok(audit_chains::table
        .filter(audit_chains::kind.eq(kind))
        .filter(audit_chains::name.eq(name))
        .select(audit_chains::id)
        .first(c)?)
}

/// The chain of one collection's writes.
///
/// # Errors
/// Database failures.
pub fn collection_chain(c: &mut Conn, collection: &str, now: Micros) -> StorageResult<i64> {
    chain_id(c, "collection", collection, now)
}

/// A new chain for one server process (`name` says which: host, process id, start time).
///
/// # Errors
/// Database failures.
pub fn new_node_chain(c: &mut Conn, name: &str, now: Micros) -> StorageResult<i64> {
    chain_id(c, "node", name, now)
}

/// The head of a chain, locked until the transaction ends on PostgreSQL (SQLite has one writer).
fn lock_head(c: &mut Conn, chain: i64) -> StorageResult<(i64, String)> {
    let q = audit_chains::table
        .filter(audit_chains::id.eq(chain))
        .select((audit_chains::head_seq, audit_chains::head_hash));
    let head: Option<(i64, String)> = match c {
        AnyConnection::Postgresql(pg) => q.for_update().first(pg).optional()?,
        AnyConnection::Sqlite(_) => q.first(c).optional()?,
    };
    head.ok_or_else(|| StorageError::Conflict(format!("audit chain {chain} does not exist")))
}

/// Appends records to a chain, each linked to the one before (call inside a write transaction).
///
/// # Errors
/// Database failures; the transaction then stores none of them.
pub fn append(c: &mut Conn, chain: i64, records: &[AuditRecord]) -> StorageResult<()> {
    if records.is_empty() {
        return Ok(());
    }
    let (mut seq, mut prev) = lock_head(c, chain)?;
    let rows: Vec<NewRow<'_>> = records
        .iter()
        .map(|r| {
            seq += 1;
            let text = r.to_text();
            let hash = link_hash(&prev, chain, seq, &text);
            let row = NewRow {
                chain_id: chain,
                seq,
                at: r.at,
                kind: &r.kind,
                action: &r.action,
                partner_id: r.partner_id,
                collection_id: r.collection_id.as_deref(),
                range_first: r.range_first,
                range_last: r.range_last,
                record: text,
                prev_hash: std::mem::replace(&mut prev, hash.clone()),
                hash,
            };
            row
        })
        .collect();
    match &mut *c {
        AnyConnection::Sqlite(c) => {
            for row in &rows {
                diesel::insert_into(audit_records::table).values(row).execute(c)?;
            }
        }
        AnyConnection::Postgresql(c) => {
            for chunk in rows.chunks(PG_INSERT_CHUNK) {
                diesel::insert_into(audit_records::table).values(chunk).execute(c)?;
            }
        }
    }
    diesel::update(audit_chains::table.filter(audit_chains::id.eq(chain)))
        .set((audit_chains::head_seq.eq(seq), audit_chains::head_hash.eq(&prev)))
        .execute(c)?;
    Ok(())
}

/// Every chain, by id.
///
/// # Errors
/// Database failures.
pub fn chains(c: &mut Conn) -> StorageResult<Vec<ChainInfo>> {
    Ok(audit_chains::table
        .select((
            audit_chains::id,
            audit_chains::kind,
            audit_chains::name,
            audit_chains::started_at,
            audit_chains::head_seq,
            audit_chains::head_hash,
        ))
        .order(audit_chains::id)
        .load(c)?)
}

/// The heads of the given chains.
///
/// # Errors
/// Database failures.
pub fn heads(c: &mut Conn, chains: &[i64]) -> StorageResult<Vec<ChainHead>> {
    let rows: Vec<(i64, i64, String)> = audit_chains::table
        .filter(audit_chains::id.eq_any(chains))
        .filter(audit_chains::head_seq.gt(0))
        .select((audit_chains::id, audit_chains::head_seq, audit_chains::head_hash))
        .load(c)?;
    Ok(rows.into_iter().map(|(chain, seq, hash)| ChainHead { chain, seq, hash }).collect())
}

/// Chains whose head moved past the given seqs (or that are not in the list): what a node's next
/// anchor must name.
///
/// # Errors
/// Database failures.
pub fn heads_since(c: &mut Conn, known: &std::collections::HashMap<i64, i64>) -> StorageResult<Vec<ChainHead>> {
    let rows: Vec<(i64, String, i64, String)> = audit_chains::table
        .filter(audit_chains::head_seq.gt(0))
        .filter(audit_chains::id.ne(CLUSTER_CHAIN))
        .select((audit_chains::id, audit_chains::kind, audit_chains::head_seq, audit_chains::head_hash))
        .load(c)?;
    Ok(rows
        .into_iter()
        .filter(|(id, _, seq, _)| known.get(id) != Some(seq))
        .map(|(chain, _, seq, hash)| ChainHead { chain, seq, hash })
        .collect())
}

/// Streams the records of some kinds (e.g. `purge`, `anchor`), in the order they were stored.
///
/// # Errors
/// Database failures, or the first error `f` returns.
pub fn for_each_of_kinds(
    c: &mut Conn,
    kinds: &[&str],
    mut f: impl FnMut(StoredRecord) -> StorageResult<()>,
) -> StorageResult<()> {
    let q = audit_records::table.filter(audit_records::kind.eq_any(kinds.to_vec())).select(columns());
    for row in q.order(audit_records::id.asc()).load_iter::<Row, DefaultLoadingMode>(c)? {
        f(stored(row?))?;
    }
    Ok(())
}

/// Which records an export selects.
#[derive(Debug, Clone, Default)]
pub struct ExportFilter {
    pub since: Option<Micros>,
    pub until: Option<Micros>,
    pub partner_id: Option<i64>,
    pub collection_id: Option<String>,
}

/// Streams the records an export selects, in the order they were stored.
///
/// # Errors
/// Database failures, or the first error `f` returns.
pub fn for_each_record(
    c: &mut Conn,
    filter: &ExportFilter,
    mut f: impl FnMut(StoredRecord) -> StorageResult<()>,
) -> StorageResult<()> {
    let mut q = audit_records::table.select(columns()).into_boxed();
    if let Some(t) = filter.since {
        q = q.filter(audit_records::at.ge(t));
    }
    if let Some(t) = filter.until {
        q = q.filter(audit_records::at.lt(t));
    }
    if let Some(p) = filter.partner_id {
        q = q.filter(audit_records::partner_id.eq(p));
    }
    if let Some(col) = &filter.collection_id {
        q = q.filter(audit_records::collection_id.eq(col.clone()));
    }
    for row in q.order(audit_records::id.asc()).load_iter::<Row, DefaultLoadingMode>(c)? {
        f(stored(row?))?;
    }
    Ok(())
}

/// The records of pages that served a range of one collection covering `date_added`.
///
/// # Errors
/// Database failures.
pub fn pages_covering(c: &mut Conn, collection: &str, date_added: Micros) -> StorageResult<Vec<StoredRecord>> {
    let rows: Vec<Row> = audit_records::table
        .filter(audit_records::collection_id.eq(collection))
        .filter(audit_records::range_first.le(date_added))
        .filter(audit_records::range_last.ge(date_added))
        .select(columns())
        .order(audit_records::id.asc())
        .load(c)?;
    Ok(rows.into_iter().map(stored).collect())
}

/// The records of one action (e.g. `delete_object`) in one collection.
///
/// # Errors
/// Database failures.
pub fn actions_in(c: &mut Conn, collection: &str, action: &str) -> StorageResult<Vec<StoredRecord>> {
    let rows: Vec<Row> = audit_records::table
        .filter(audit_records::collection_id.eq(collection))
        .filter(audit_records::action.eq(action))
        .select(columns())
        .order(audit_records::id.asc())
        .load(c)?;
    Ok(rows.into_iter().map(stored).collect())
}

/// Where a chain starts after purges: the seq of its first kept record and the hash before it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChainStart {
    pub chain: i64,
    pub seq: i64,
    pub prev_hash: String,
}

/// Removes every record older than `before` from the start of each chain (call inside a write
/// transaction). Returns how many were removed and where each chain that ever lost records now
/// starts, which the caller records in the cluster chain (after the purge), so that verification
/// can start there.
///
/// # Errors
/// Database failures; nothing is removed then.
pub fn purge(c: &mut Conn, before: Micros) -> StorageResult<(usize, Vec<ChainStart>)> {
    diesel::insert_into(audit_purge::table).values(audit_purge::token.eq("retention")).execute(c)?;
    let mut removed = 0;
    let mut starts = Vec::new();
    for chain in chains(c)? {
        // A chain loses a prefix: everything before its first record that is still young enough.
        let keep_from: Option<i64> = audit_records::table
            .filter(audit_records::chain_id.eq(chain.id))
            .filter(audit_records::at.ge(before))
            .select(diesel::dsl::min(audit_records::seq))
            .first(c)?;
        let cut = keep_from.unwrap_or(chain.head_seq + 1);
        removed += diesel::delete(
            audit_records::table.filter(audit_records::chain_id.eq(chain.id)).filter(audit_records::seq.lt(cut)),
        )
        .execute(c)?;
        if cut > 1 {
            let prev_hash: String = if cut > chain.head_seq {
                chain.head_hash.clone()
            } else {
                audit_records::table
                    .filter(audit_records::chain_id.eq(chain.id))
                    .filter(audit_records::seq.eq(cut))
                    .select(audit_records::prev_hash)
                    .first(c)?
            };
            starts.push(ChainStart { chain: chain.id, seq: cut, prev_hash });
        }
    }
    diesel::delete(audit_purge::table).execute(c)?;
    Ok((removed, starts))
}
