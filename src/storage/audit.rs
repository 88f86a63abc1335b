//! The audit trail's tables: chains and their heads, appending linked blocks of records,
//! streaming them out (export, verification, recipients) and retention.
//!
//! The tables are append-only: triggers on both backends refuse UPDATE and DELETE on
//! `audit_blocks`, except inside a retention purge's transaction ([`purge`]).

use diesel::connection::DefaultLoadingMode;
use diesel::prelude::*;

use super::schema::{audit_blocks, audit_chains, audit_purge};
use super::{per_backend, AnyConnection, Conn, StorageError, StorageResult};
use crate::model::audit::{block_text, link_hash, AuditRecord, ChainHead, ChainedBlock, GENESIS};
use crate::model::time::Micros;

/// The chain of operator actions, anchors and purges (created by the migration).
pub const CLUSTER_CHAIN: i64 = 1;

#[derive(Insertable)]
#[diesel(table_name = audit_blocks)]
struct NewBlock {
    chain_id: i64,
    seq: i64,
    count: i32,
    first_at: i64,
    last_at: i64,
    partners: String,
    collections: String,
    records: String,
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

/// A stored block: its place in its chain, its text, and the summary columns that select it
/// (which verification checks against the records).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBlock {
    pub block: ChainedBlock,
    pub first_at: Micros,
    pub last_at: Micros,
    pub partners: String,
    pub collections: String,
}

type Row = (i64, i64, i64, i32, i64, i64, String, String, String, String, String);

fn stored(
    (id, chain, seq, count, first_at, last_at, partners, collections, text, prev_hash, hash): Row,
) -> StoredBlock {
    StoredBlock {
        block: ChainedBlock { id, chain, seq, count: i64::from(count), prev_hash, hash, text },
        first_at,
        last_at,
        partners,
        collections,
    }
}

/// The summary columns of a block of records: first and last time, and the distinct partner ids
/// and collection ids (each written ` x ` between spaces, so a `LIKE '% x %'` finds it).
pub fn summary(records: &[AuditRecord]) -> (Micros, Micros, String, String) {
    let first = records.iter().map(|r| r.at).min().unwrap_or_default();
    let last = records.iter().map(|r| r.at).max().unwrap_or_default();
    let mut partners: Vec<String> = records.iter().filter_map(|r| r.partner_id.map(|p| p.to_string())).collect();
    let mut collections: Vec<String> = records.iter().filter_map(|r| r.collection_id.clone()).collect();
    for v in [&mut partners, &mut collections] {
        v.sort_unstable();
        v.dedup();
    }
    let spaced = |v: Vec<String>| if v.is_empty() { String::new() } else { format!(" {} ", v.join(" ")) };
    (first, last, spaced(partners), spaced(collections))
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

/// Appends records to a chain as one block, linked to the block before it (call inside a write
/// transaction).
///
/// # Errors
/// Database failures; the transaction then stores none of them.
pub fn append(c: &mut Conn, chain: i64, records: &[AuditRecord]) -> StorageResult<()> {
    if records.is_empty() {
        return Ok(());
    }
    let (head, prev) = lock_head(c, chain)?;
    let seq = head + 1;
    let count = i64::try_from(records.len()).unwrap_or(i64::MAX);
    let text = block_text(records);
    let hash = link_hash(&prev, chain, seq, &text);
    let (first_at, last_at, partners, collections) = summary(records);
    let row = NewBlock {
        chain_id: chain,
        seq,
        count: i32::try_from(count).unwrap_or(i32::MAX),
        first_at,
        last_at,
        partners,
        collections,
        records: text,
        prev_hash: prev,
        hash: hash.clone(),
    };
    diesel::insert_into(audit_blocks::table).values(&row).execute(c)?;
    diesel::update(audit_chains::table.filter(audit_chains::id.eq(chain)))
        .set((audit_chains::head_seq.eq(seq + count - 1), audit_chains::head_hash.eq(&hash)))
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

/// Chains whose head moved past the given seqs (or that are not in the list): what a node's next
/// anchor must name.
///
/// # Errors
/// Database failures.
pub fn heads_since(c: &mut Conn, known: &std::collections::HashMap<i64, i64>) -> StorageResult<Vec<ChainHead>> {
    let rows: Vec<(i64, i64, String)> = audit_chains::table
        .filter(audit_chains::head_seq.gt(0))
        .filter(audit_chains::id.ne(CLUSTER_CHAIN))
        .select((audit_chains::id, audit_chains::head_seq, audit_chains::head_hash))
        .load(c)?;
    Ok(rows
        .into_iter()
        .filter(|(id, seq, _)| known.get(id) != Some(seq))
        .map(|(chain, seq, hash)| ChainHead { chain, seq, hash })
        .collect())
}

/// Which blocks a scan selects (records inside are filtered by the caller).
#[derive(Debug, Clone, Default)]
pub struct BlockFilter {
    /// Blocks with a record at or after this time.
    pub since: Option<Micros>,
    /// Blocks with a record before this time.
    pub until: Option<Micros>,
    pub partner_id: Option<i64>,
    pub collection_id: Option<String>,
    pub chain: Option<i64>,
}

/// Streams the blocks a filter selects, in the order they were stored.
///
/// # Errors
/// Database failures, or the first error `f` returns.
pub fn for_each_block(
    c: &mut Conn,
    filter: &BlockFilter,
    mut f: impl FnMut(StoredBlock) -> StorageResult<()>,
) -> StorageResult<()> {
    let mut q = audit_blocks::table.select(audit_blocks::all_columns).into_boxed();
    if let Some(t) = filter.since {
        q = q.filter(audit_blocks::last_at.ge(t));
    }
    if let Some(t) = filter.until {
        q = q.filter(audit_blocks::first_at.lt(t));
    }
    if let Some(p) = filter.partner_id {
        q = q.filter(audit_blocks::partners.like(format!("% {p} %")));
    }
    if let Some(col) = &filter.collection_id {
        // A collection id is a UUID: no LIKE metacharacters.
        q = q.filter(audit_blocks::collections.like(format!("% {col} %")));
    }
    if let Some(chain) = filter.chain {
        q = q.filter(audit_blocks::chain_id.eq(chain));
    }
    for row in q.order(audit_blocks::id.asc()).load_iter::<Row, DefaultLoadingMode>(c)? {
        f(stored(row?))?;
    }
    Ok(())
}

/// Where a chain starts after purges: the seq of its first kept record and the hash before it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChainStart {
    pub chain: i64,
    pub seq: i64,
    pub prev_hash: String,
}

/// Removes every block whose records are all older than `before` from the start of each chain
/// (call inside a write transaction). Returns how many records were removed and where each
/// chain that ever lost records now starts, which the caller records in the cluster chain (after
/// the purge), so that verification can start there.
///
/// # Errors
/// Database failures; nothing is removed then.
pub fn purge(c: &mut Conn, before: Micros) -> StorageResult<(i64, Vec<ChainStart>)> {
    diesel::insert_into(audit_purge::table).values(audit_purge::token.eq("retention")).execute(c)?;
    let mut removed = 0i64;
    let mut starts = Vec::new();
    for chain in chains(c)? {
        // A chain loses a prefix: every block before its first one still young enough.
        let keep_from: Option<i64> = audit_blocks::table
            .filter(audit_blocks::chain_id.eq(chain.id))
            .filter(audit_blocks::last_at.ge(before))
            .select(diesel::dsl::min(audit_blocks::seq))
            .first(c)?;
        let cut = keep_from.unwrap_or(chain.head_seq + 1);
        let gone = audit_blocks::table.filter(audit_blocks::chain_id.eq(chain.id)).filter(audit_blocks::seq.lt(cut));
        let count: Option<i64> = gone.select(diesel::dsl::sum(audit_blocks::count)).first(c)?;
        removed += count.unwrap_or(0);
        diesel::delete(gone).execute(c)?;
        if cut > 1 {
            let prev_hash: String = if cut > chain.head_seq {
                chain.head_hash.clone()
            } else {
                audit_blocks::table
                    .filter(audit_blocks::chain_id.eq(chain.id))
                    .filter(audit_blocks::seq.eq(cut))
                    .select(audit_blocks::prev_hash)
                    .first(c)?
            };
            starts.push(ChainStart { chain: chain.id, seq: cut, prev_hash });
        }
    }
    diesel::delete(audit_purge::table).execute(c)?;
    Ok((removed, starts))
}

/// Streams blocks newest first, in chunks (each chunk its own query, so nothing is held between
/// them), until `f` returns `false` or the blocks end before `since` (with an hour's slack for
/// blocks committed late).
///
/// # Errors
/// Database failures, or the first error `f` returns.
pub fn for_each_block_newest(
    c: &mut Conn,
    since: Micros,
    mut f: impl FnMut(StoredBlock) -> StorageResult<bool>,
) -> StorageResult<()> {
    const CHUNK: i64 = 64;
    const SLACK: Micros = 3_600_000_000;
    let mut before = i64::MAX;
    loop {
        let rows: Vec<Row> = audit_blocks::table
            .select(audit_blocks::all_columns)
            .filter(audit_blocks::id.lt(before))
            .order(audit_blocks::id.desc())
            .limit(CHUNK)
            .load(c)?;
        let n = rows.len();
        for row in rows {
            let b = stored(row);
            before = b.block.id;
            if b.last_at < since.saturating_sub(SLACK) || !f(b)? {
                return Ok(());
            }
        }
        if n < usize::try_from(CHUNK).unwrap_or(0) {
            return Ok(());
        }
    }
}
