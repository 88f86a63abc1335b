//! The audit trail as the service keeps it: the node's appender (reads and failed logins, in
//! batches committed within [`AUDIT_WINDOW`]), records of writes and operator actions (in the
//! changing transaction itself), anchors, and the questions asked of the trail afterwards:
//! `verify`, `recipients`, `export`, retention.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::model::audit::{block_records, AuditKind, AuditRecord, ChainBreak, ChainCheck, ChainHead};
use crate::model::filter::{parse_query, Endpoint};
use crate::model::time::{format_taxii, now_micros, stix_version_key, Micros};
use crate::storage::audit::{self as store, BlockFilter, ChainStart, StoredBlock, CLUSTER_CHAIN};
use crate::storage::{self, Conn, Storage, StorageError, StorageResult};

/// How long a read's record waits for others to share its commit (group commit). A crash (kill
/// -9) can lose the records of reads answered within about this window (plus the commit's own
/// time) before it; writes and operator actions are recorded in their own transactions.
pub const AUDIT_WINDOW: Duration = Duration::from_millis(50);
/// Most records committed in one batch.
const MAX_BATCH: usize = 10_000;
/// Records waiting for their batch before requests wait for room (back-pressure, never loss).
const QUEUE: usize = 100_000;

/// What the HTTP layer knows about a request, for its record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestMeta {
    pub request_id: String,
    pub client: Option<IpAddr>,
}

/// Who ran an operator action: the operating-system user and host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operator {
    pub id: String,
    /// Whether the audit trail is kept (`audit = true`, the default).
    pub audit: bool,
}

impl Operator {
    /// The user running this process, as `user@host`.
    pub fn from_environment(audit: bool) -> Operator {
        let user = std::env::var("SUDO_USER")
            .or_else(|_| std::env::var("USER"))
            .or_else(|_| std::env::var("LOGNAME"))
            .ok()
            .or_else(user_of_process)
            .unwrap_or_else(|| "unknown".into());
        Operator { id: format!("{user}@{}", host_name()), audit }
    }

    /// A record of an action by this operator, with its details (JSON).
    pub fn record(&self, action: &str, detail: serde_json::Value) -> AuditRecord {
        AuditRecord {
            at: now_micros(),
            kind: AuditKind::Operator.as_str().into(),
            credential_method: Some("operator".into()),
            credential_id: Some(self.id.clone()),
            action: action.into(),
            detail: Some(detail.to_string()),
            ..AuditRecord::default()
        }
    }
}

/// The name of this process's (real) user, from /proc and /etc/passwd, or `uid <n>`.
fn user_of_process() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let uid = status.lines().find_map(|l| l.strip_prefix("Uid:"))?.split_whitespace().next()?.to_owned();
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let name = passwd.lines().find_map(|l| {
        let mut f = l.split(':');
        let name = f.next()?;
        (f.nth(1)? == uid).then(|| name.to_owned())
    });
    Some(name.unwrap_or_else(|| format!("uid {uid}")))
}

/// This machine's name.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// Records an operator action in the cluster chain (call inside the action's own transaction,
/// so the action and its record commit together). Nothing when the trail is off.
///
/// # Errors
/// Database failures; the action is then rolled back with it.
pub fn record_operator(
    c: &mut Conn,
    operator: &Operator,
    action: &str,
    detail: serde_json::Value,
) -> StorageResult<()> {
    if !operator.audit {
        return Ok(());
    }
    store::append(c, CLUSTER_CHAIN, &[operator.record(action, detail)])
}

/// Records a partner's write in its collection's chain (inside the write's transaction).
///
/// # Errors
/// Database failures; the write is then rolled back with it.
pub fn record_write(c: &mut Conn, collection: &str, record: &AuditRecord) -> StorageResult<()> {
    let chain = store::collection_chain(c, collection, record.at)?;
    store::append(c, chain, std::slice::from_ref(record))
}

/// The node's appender: takes records of reads and failed logins and commits them in batches on
/// the node's own chain, at most [`AUDIT_WINDOW`] after they arrive, and anchors chain heads in
/// the cluster chain.
pub struct Auditor {
    sender: Mutex<Option<tokio::sync::mpsc::Sender<AuditRecord>>>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
    enabled: bool,
}

impl Auditor {
    /// An auditor that records nothing (`audit = false`).
    pub fn disabled() -> Auditor {
        Auditor { sender: Mutex::new(None), task: Mutex::new(None), enabled: false }
    }

    /// Starts this node's chain and its appender task.
    ///
    /// # Errors
    /// The chain cannot be created.
    pub async fn start(storage: Storage, anchor_every: Duration) -> StorageResult<Auditor> {
        let name = format!(
            "{} pid {} started {} ({})",
            host_name(),
            std::process::id(),
            format_taxii(now_micros()),
            uuid::Uuid::new_v4().simple()
        );
        let chain = storage.write(move |c| store::new_node_chain(c, &name, now_micros())).await?;
        let (tx, rx) = tokio::sync::mpsc::channel(QUEUE);
        let task = tokio::spawn(run_appender(storage, chain, rx, anchor_every));
        Ok(Auditor { sender: Mutex::new(Some(tx)), task: Mutex::new(Some(task)), enabled: true })
    }

    /// Whether records are kept.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    fn sender(&self) -> Option<tokio::sync::mpsc::Sender<AuditRecord>> {
        match self.sender.lock() {
            Ok(s) => s.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Records waiting for their batch.
    pub fn queued(&self) -> usize {
        self.sender().map_or(0, |tx| tx.max_capacity().saturating_sub(tx.capacity()))
    }

    /// Queues a record for the next batch; waits for room when the queue is full.
    pub async fn record(&self, record: AuditRecord) {
        if let Some(tx) = self.sender() {
            if tx.send(record).await.is_err() {
                tracing::error!("the audit appender has stopped; a record was not kept");
            }
        }
    }

    /// Queues a record from a thread that is not async (the TLS handshake's certificate check).
    pub fn record_blocking(&self, record: AuditRecord) {
        if let Some(tx) = self.sender() {
            if let Err(e) = tx.try_send(record) {
                tracing::error!(error = %e, "an audit record could not be queued");
            }
        }
    }

    /// Commits every queued record and a last anchor, then stops (at shutdown).
    pub async fn close(&self) {
        let sender = match self.sender.lock() {
            Ok(mut s) => s.take(),
            Err(p) => p.into_inner().take(),
        };
        drop(sender);
        let task = match self.task.lock() {
            Ok(mut t) => t.take(),
            Err(p) => p.into_inner().take(),
        };
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}

/// Commits `batch` on `chain`, retrying while the database is unavailable (records are kept in
/// memory, and requests wait for queue room, rather than being lost).
async fn commit(storage: &Storage, chain: i64, batch: Vec<AuditRecord>) {
    let mut delay = Duration::from_millis(50);
    let batch = std::sync::Arc::new(batch);
    loop {
        let b = batch.clone();
        match storage.write(move |c| store::append(c, chain, &b)).await {
            Ok(()) => {
                crate::metrics::get().audit_records.inc_by(batch.len() as u64);
                return;
            }
            Err(e) => {
                tracing::error!(error = %e, records = batch.len(), "audit records not committed yet; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// Anchors the heads of chains that moved since the last anchor in the cluster chain.
async fn anchor(storage: &Storage, known: &mut HashMap<i64, i64>) {
    let snapshot = known.clone();
    let result = storage
        .write(move |c| {
            let heads = store::heads_since(c, &snapshot)?;
            if !heads.is_empty() {
                let record = AuditRecord {
                    at: now_micros(),
                    kind: AuditKind::Anchor.as_str().into(),
                    action: "anchor".into(),
                    detail: Some(serde_json::to_string(&heads).unwrap_or_default()),
                    ..AuditRecord::default()
                };
                store::append(c, CLUSTER_CHAIN, &[record])?;
            }
            Ok(heads)
        })
        .await;
    match result {
        Ok(heads) => known.extend(heads.into_iter().map(|h| (h.chain, h.seq))),
        Err(e) => tracing::warn!(error = %e, "audit anchor failed; the next one covers it"),
    }
}

async fn run_appender(
    storage: Storage,
    chain: i64,
    mut rx: tokio::sync::mpsc::Receiver<AuditRecord>,
    anchor_every: Duration,
) {
    let mut known: HashMap<i64, i64> = HashMap::new();
    let mut last_anchor = tokio::time::Instant::now();
    anchor(&storage, &mut known).await;
    loop {
        let first = tokio::select! {
            r = rx.recv() => r,
            () = tokio::time::sleep_until(last_anchor + anchor_every) => {
                anchor(&storage, &mut known).await;
                last_anchor = tokio::time::Instant::now();
                continue;
            }
        };
        let Some(first) = first else { break };
        // Whatever arrives within the window after the first record joins its batch (one timer
        // per batch, not per record); a full queue is drained at once.
        let mut batch = vec![first];
        if rx.len() < MAX_BATCH {
            tokio::time::sleep(AUDIT_WINDOW).await;
        }
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        // The sender is gone (shutdown) and everything it sent is in this batch.
        let closed = rx.is_closed() && rx.is_empty();
        commit(&storage, chain, batch).await;
        if closed {
            break;
        }
        if last_anchor.elapsed() >= anchor_every {
            anchor(&storage, &mut known).await;
            last_anchor = tokio::time::Instant::now();
        }
    }
    anchor(&storage, &mut known).await;
}

/// The outcome of `concordia audit verify`.
#[derive(Debug, Clone, Default)]
pub struct Verification {
    pub chains: usize,
    pub records: u64,
    /// The first break of each broken chain, earliest record first.
    pub breaks: Vec<ChainBreak>,
}

fn break_record(b: &ChainBreak) -> i64 {
    match b {
        ChainBreak::Altered { id, .. }
        | ChainBreak::Unlinked { id, .. }
        | ChainBreak::Gap { id, .. }
        | ChainBreak::MissingStart { id, .. }
        | ChainBreak::Columns { id, .. } => *id,
        ChainBreak::AnchorMismatch { anchor, .. } => *anchor,
        ChainBreak::Truncated { .. } | ChainBreak::NoHead { .. } => i64::MAX,
    }
}

/// Whether a block's summary columns say what its (hashed) records say.
fn columns_match(b: &StoredBlock, records: &[AuditRecord]) -> Option<&'static str> {
    let (first, last, partners, collections) = store::summary(records);
    if i64::try_from(records.len()).ok() != Some(b.block.count) {
        Some("count")
    } else if b.first_at != first || b.last_at != last {
        Some("time")
    } else if b.partners != partners {
        Some("partners")
    } else if b.collections != collections {
        Some("collections")
    } else {
        None
    }
}

/// Checks every chain of the trail: each block's hash, each link to its predecessor, that no
/// record is missing (within a chain, from its start after purges, and up to its head and every
/// anchor), and that the summary columns agree with the hashed records. Two passes over the
/// table (the cluster chain's purge and anchor statements first), whatever the number of chains.
///
/// # Errors
/// Database failures (a broken chain is a result, not an error).
pub fn verify(storage: &Storage) -> StorageResult<Verification> {
    storage.read_blocking(|c| {
        let chains = store::chains(c)?;
        // Purge starts and anchored heads, from the cluster chain (the latest statement wins).
        let mut starts: HashMap<i64, ChainStart> = HashMap::new();
        let mut anchored: HashMap<i64, (ChainHead, i64)> = HashMap::new();
        let cluster = BlockFilter { chain: Some(CLUSTER_CHAIN), ..BlockFilter::default() };
        store::for_each_block(c, &cluster, |b| {
            for rec in block_records(&b.block.text).unwrap_or_default() {
                let detail = rec.detail.unwrap_or_default();
                if rec.kind == "purge" {
                    for s in serde_json::from_str::<Vec<ChainStart>>(&detail).unwrap_or_default() {
                        starts.insert(s.chain, s);
                    }
                } else if rec.kind == "anchor" {
                    for h in serde_json::from_str::<Vec<ChainHead>>(&detail).unwrap_or_default() {
                        if anchored.get(&h.chain).is_none_or(|(a, _)| a.seq < h.seq) {
                            anchored.insert(h.chain, (h, b.block.id));
                        }
                    }
                }
            }
            Ok(())
        })?;
        let first_kept = |chain: i64| starts.get(&chain).map_or(1, |s| s.seq);
        // The anchor to check for each chain: the latest one that names a record still kept.
        let anchors: HashMap<i64, (ChainHead, i64)> =
            anchored.into_iter().filter(|(chain, (h, _))| h.seq >= first_kept(*chain)).collect();
        struct State {
            check: ChainCheck,
            broken: Option<ChainBreak>,
        }
        let mut state: HashMap<i64, State> = HashMap::new();
        let mut records = 0u64;
        store::for_each_block(c, &BlockFilter::default(), |b| {
            records += u64::try_from(b.block.count).unwrap_or(0);
            let chain = b.block.chain;
            let st = state.entry(chain).or_insert_with(|| State {
                check: ChainCheck::new(chain, starts.get(&chain).map(|s| (s.seq, s.prev_hash.clone()))),
                broken: None,
            });
            if st.broken.is_some() {
                return Ok(());
            }
            if let Err(e) = st.check.push(&b.block) {
                st.broken = Some(e);
                return Ok(());
            }
            let (seq, id) = (b.block.seq, b.block.id);
            st.broken = match block_records(&b.block.text) {
                Some(recs) => columns_match(&b, &recs).map(|column| ChainBreak::Columns { chain, seq, id, column }),
                None => Some(ChainBreak::Altered { chain, seq, id }),
            };
            if let Some((h, anchor_id)) = anchors.get(&chain) {
                if h.seq == b.block.last_seq() && h.hash != b.block.hash {
                    st.broken = Some(ChainBreak::AnchorMismatch { chain, seq: h.seq, anchor: *anchor_id });
                }
            }
            Ok(())
        })?;
        let mut out = Verification { chains: chains.len(), records, ..Verification::default() };
        for chain in &chains {
            let st = state.remove(&chain.id);
            let last = st.as_ref().and_then(|s| s.check.last()).map_or(first_kept(chain.id) - 1, |(seq, _)| seq);
            let mut broken = st.and_then(|s| s.broken);
            if broken.is_none() {
                if let Some((h, anchor_id)) = anchors.get(&chain.id) {
                    if h.seq > last {
                        broken = Some(ChainBreak::AnchorMismatch { chain: chain.id, seq: h.seq, anchor: *anchor_id });
                    }
                }
            }
            if broken.is_none() && chain.head_seq != last {
                broken = Some(ChainBreak::Truncated { chain: chain.id, seq: chain.head_seq, last });
            }
            out.breaks.extend(broken);
        }
        // Blocks of a chain that has no head row (the row was removed) are a break too.
        for (chain, st) in state {
            let last = st.check.last().map_or(0, |(seq, _)| seq);
            out.breaks.push(st.broken.unwrap_or(ChainBreak::NoHead { chain, last }));
        }
        out.breaks.sort_by_key(break_record);
        Ok(out)
    })
}

/// Removes records older than `before` (retention) and records in the cluster chain, in the
/// same transaction, where each purged chain now starts. Returns how many were removed.
///
/// # Errors
/// Database failures; nothing is removed then.
pub fn purge(c: &mut Conn, before: Micros, by: &str) -> StorageResult<i64> {
    let (removed, starts) = store::purge(c, before)?;
    if removed > 0 {
        let record = AuditRecord {
            at: now_micros(),
            kind: AuditKind::Purge.as_str().into(),
            credential_method: Some("operator".into()),
            credential_id: Some(by.to_owned()),
            action: "audit_purge".into(),
            object_count: Some(removed),
            detail: Some(serde_json::to_string(&starts).unwrap_or_default()),
            ..AuditRecord::default()
        };
        store::append(c, CLUSTER_CHAIN, &[record])?;
    }
    Ok(removed)
}

/// One delivery of an object version to a partner, found by [`recipients`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Delivery {
    pub partner: String,
    pub credential_method: String,
    pub credential_id: String,
    pub client: Option<String>,
    /// When it was served (TAXII timestamp).
    pub served_at: String,
    pub collection_id: String,
    pub object_id: String,
    /// The version served (`modified`, or `created`, as written in the object).
    pub version: String,
    pub request_id: Option<String>,
}

/// One stored (or once stored, then deleted) version of an object in a collection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionTrace {
    pub version: String,
    pub version_key: String,
    pub spec_version: String,
    pub stix_type: String,
    pub date_added: Micros,
    /// When it was deleted, if it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<Micros>,
    /// What the richer filters and a derived collection's sources look at (absent in records
    /// written before there were any: such versions count as matching them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub facets: Option<TraceFacets>,
}

/// The facets of a version as a trace keeps them (see `storage::objects::FacetCols`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceFacets {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tlp: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_from: Option<Micros>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_until: Option<Micros>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub source_mask: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_ref: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_ref: Option<String>,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

impl From<storage::objects::FacetCols> for TraceFacets {
    fn from(f: storage::objects::FacetCols) -> Self {
        let (confidence, created_by, tlp, labels, valid_from, valid_until, source_mask, source_ref, target_ref) = f;
        TraceFacets {
            confidence,
            created_by,
            tlp,
            labels,
            valid_from,
            valid_until,
            source_mask,
            source_ref,
            target_ref,
        }
    }
}

impl VersionTrace {
    /// The trace of a stored version.
    pub fn of(facts: storage::objects::VersionFacts, facets: storage::objects::FacetCols) -> VersionTrace {
        let (version, version_key, spec_version, stix_type, date_added) = facts;
        VersionTrace {
            version,
            version_key,
            spec_version,
            stix_type,
            date_added,
            deleted_at: None,
            facets: Some(facets.into()),
        }
    }
}

/// A version a retention purge removed, as its record lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurgedTrace {
    pub id: String,
    #[serde(flatten)]
    pub trace: VersionTrace,
}

/// What a page's audit record says beyond its filters: for a derived collection, the sources
/// (bits) the reader could see it through.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageDetail {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sources: Option<i64>,
    /// Versions of the page's range that were not sent, as `id|version` (the TAXII 2.0 view
    /// leaves out what STIX 2.0 cannot express).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub omitted: Vec<String>,
}

/// Every partner that was served `object_id` (or only `version` of it), when, and through which
/// credential: for each version, the pages of Get Objects / Get an Object whose range covered its
/// position and whose filters, applied to the versions that existed when the page was read,
/// selected it. Versions deleted since are found through the deletions' records.
///
/// # Errors
/// `Conflict` for a malformed version; database failures.
pub fn recipients(storage: &Storage, object_id: &str, version: Option<&str>) -> StorageResult<Vec<Delivery>> {
    let object_id = object_id.to_ascii_lowercase();
    let want_key = match version {
        Some(v) => Some(stix_version_key(v).ok_or_else(|| {
            StorageError::Conflict(format!("'{v}' is not a STIX timestamp such as 2016-01-01T01:01:01.000Z"))
        })?),
        None => None,
    };
    storage.read_blocking(|c| {
        let view = storage::access::load_view(c)?;
        let mut out = Vec::new();
        for col in &view.collections {
            let mut versions: Vec<VersionTrace> = storage::objects::versions_with_facets(c, col.key, &object_id)?
                .into_iter()
                .map(|(facts, facets)| VersionTrace::of(facts, facets))
                .collect();
            // The records of this collection: its deletions (versions no longer stored) and the
            // pages that may have served the object.
            let mut pages: Vec<AuditRecord> = Vec::new();
            let filter = BlockFilter { collection_id: Some(col.id.clone()), ..BlockFilter::default() };
            store::for_each_block(c, &filter, |b| {
                for rec in block_records(&b.block.text).unwrap_or_default() {
                    if rec.collection_id.as_deref() != Some(col.id.as_str()) || rec.status.is_none_or(|s| s >= 300) {
                        continue;
                    }
                    match rec.action.as_str() {
                        "delete_object" if rec.object_id.as_deref() == Some(object_id.as_str()) => {
                            let gone: Vec<VersionTrace> =
                                serde_json::from_str(rec.detail.as_deref().unwrap_or_default()).unwrap_or_default();
                            versions.extend(gone.into_iter().map(|v| VersionTrace { deleted_at: Some(rec.at), ..v }));
                        }
                        "retention_purge" | "feed_withdraw" => {
                            let gone: Vec<PurgedTrace> = rec
                                .detail
                                .as_deref()
                                .and_then(|d| serde_json::from_str::<serde_json::Value>(d).ok())
                                .and_then(|d| serde_json::from_value(d.get("versions")?.clone()).ok())
                                .unwrap_or_default();
                            for p in gone.into_iter().filter(|p| p.id == object_id) {
                                match (rec.action.as_str(), p.trace.deleted_at) {
                                    // Still in the feed, through fewer sources: the sources it was
                                    // ever visible through count (a delivery then is not missed).
                                    ("feed_withdraw", None) => {
                                        let earlier = p.trace.facets.as_ref().map_or(0, |f| f.source_mask);
                                        if let Some(fa) = versions
                                            .iter_mut()
                                            .find(|v| {
                                                v.version_key == p.trace.version_key
                                                    && v.spec_version == p.trace.spec_version
                                            })
                                            .and_then(|v| v.facets.as_mut())
                                        {
                                            fa.source_mask |= earlier;
                                        }
                                    }
                                    _ => versions.push(VersionTrace { deleted_at: Some(rec.at), ..p.trace }),
                                }
                            }
                        }
                        "get_objects" | "get_object" | "get_objects_taxii20" | "get_object_taxii20"
                            if rec.range_first.is_some() =>
                        {
                            pages.push(rec)
                        }
                        _ => {}
                    }
                }
                Ok(())
            })?;
            for v in versions.iter().filter(|v| want_key.as_ref().is_none_or(|k| *k == v.version_key)) {
                let covering = pages.iter().filter(|p| {
                    p.range_first.is_some_and(|f| f <= v.date_added) && p.range_last.is_some_and(|l| l >= v.date_added)
                });
                let validity = col.feed.is_derived() && col.feed.filter.checks_validity();
                for rec in covering.filter(|p| page_served(p, &object_id, v, &versions, validity)) {
                    out.push(Delivery {
                        partner: rec.partner.clone().unwrap_or_default(),
                        credential_method: rec.credential_method.clone().unwrap_or_default(),
                        credential_id: rec.credential_id.clone().unwrap_or_default(),
                        client: rec.client.clone(),
                        served_at: format_taxii(rec.at),
                        collection_id: col.id.clone(),
                        object_id: object_id.clone(),
                        version: v.version.clone(),
                        request_id: rec.request_id.clone(),
                    });
                }
            }
        }
        out.sort_by(|a, b| a.served_at.cmp(&b.served_at).then(a.partner.cmp(&b.partner)));
        Ok(out)
    })
}

/// Whether the page recorded in `rec` served version `v` of `object_id`: its filters select
/// the object, and its version selection picks `v` among the versions that existed at the read.
/// With `validity` (a `valid_now` feed), only versions valid when the page was read count.
fn page_served(
    rec: &AuditRecord,
    object_id: &str,
    v: &VersionTrace,
    versions: &[VersionTrace],
    validity: bool,
) -> bool {
    if rec.object_id.as_deref().is_some_and(|o| o != object_id) {
        return false;
    }
    let Some(snapshot) = rec.snapshot else { return false };
    let Ok(q) = parse_query(rec.filters.as_deref().unwrap_or_default(), Endpoint::Objects) else { return false };
    let f = q.filter;
    if (!f.ids.is_empty() && !f.ids.iter().any(|i| i == object_id))
        || (!f.types.is_empty() && !f.types.contains(&v.stix_type))
        || f.added_after.is_some_and(|a| v.date_added <= a)
    {
        return false;
    }
    let detail: PageDetail = rec.detail.as_deref().and_then(|d| serde_json::from_str(d).ok()).unwrap_or_default();
    if detail.omitted.iter().any(|o| o.split_once('|') == Some((object_id, v.version.as_str()))) {
        return false;
    }
    if let Some(fa) = &v.facets {
        if !facets_pass(&f, object_id, fa) {
            return false;
        }
        if detail.sources.is_some_and(|bits| fa.source_mask & bits == 0) {
            return false;
        }
        if validity && !(fa.valid_from.is_none_or(|t| t <= rec.at) && fa.valid_until.is_none_or(|t| rec.at < t)) {
            return false;
        }
    }
    // A reader of some of a derived collection's sources chose among the versions it could see.
    let visible = |w: &VersionTrace| {
        detail.sources.is_none_or(|bits| w.facets.as_ref().is_none_or(|fa| fa.source_mask & bits != 0))
    };
    let existed: Vec<(String, String)> = versions
        .iter()
        .filter(|w| w.date_added <= snapshot && w.deleted_at.is_none_or(|d| d > rec.at) && visible(w))
        .map(|w| (w.version_key.clone(), w.spec_version.clone()))
        .collect();
    f.selects_version(&v.version_key, &v.spec_version, &existed)
}

/// Whether a version with these facets passes a page's richer filters (as storage applies them).
fn facets_pass(f: &crate::model::filter::Filter, object_id: &str, fa: &TraceFacets) -> bool {
    use crate::model::feed::{tlp_rank, LABEL_SEPARATOR};
    let labels_ok = f.labels.is_empty()
        || fa.labels.as_deref().is_some_and(|have| {
            f.labels.iter().any(|l| have.contains(&format!("{LABEL_SEPARATOR}{l}{LABEL_SEPARATOR}")))
        });
    let related = |r: &Option<String>| r.as_deref().is_some_and(|r| f.relationships_all.iter().any(|x| x == r));
    labels_ok
        && f.confidence_gte.is_none_or(|n| fa.confidence.is_some_and(|c| c >= n))
        && f.confidence_lte.is_none_or(|n| fa.confidence.is_some_and(|c| c <= n))
        && (f.created_by.is_empty() || fa.created_by.as_deref().is_some_and(|c| f.created_by.iter().any(|x| x == c)))
        && f.tlp.is_none_or(|t| fa.tlp.is_none_or(|have| have <= tlp_rank(t)))
        && (f.relationships_all.is_empty()
            || f.relationships_all.iter().any(|x| x == object_id)
            || related(&fa.source_ref)
            || related(&fa.target_ref))
}

/// A record as `audit export` writes it: its place in its chain (row, position) and what it
/// says.
#[derive(Debug, Clone, Serialize)]
pub struct Exported {
    /// The row (`audit_blocks.id`) that holds it.
    pub block: i64,
    pub chain: i64,
    pub seq: i64,
    /// The hash of its block.
    pub hash: String,
    #[serde(flatten)]
    pub record: AuditRecord,
    /// `at` as a TAXII timestamp, for people and SIEMs.
    pub time: String,
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
pub fn export(
    storage: &Storage,
    filter: &ExportFilter,
    mut f: impl FnMut(Exported) -> StorageResult<()>,
) -> StorageResult<()> {
    let blocks = BlockFilter {
        since: filter.since,
        until: filter.until,
        partner_id: filter.partner_id,
        collection_id: filter.collection_id.clone(),
        chain: None,
    };
    storage.read_blocking(|c| {
        store::for_each_block(c, &blocks, |b| {
            for (i, record) in block_records(&b.block.text).unwrap_or_default().into_iter().enumerate() {
                let keep = filter.since.is_none_or(|t| record.at >= t)
                    && filter.until.is_none_or(|t| record.at < t)
                    && filter.partner_id.is_none_or(|p| record.partner_id == Some(p))
                    && filter.collection_id.as_ref().is_none_or(|col| record.collection_id.as_ref() == Some(col));
                if keep {
                    f(Exported {
                        block: b.block.id,
                        chain: b.block.chain,
                        seq: b.block.seq + i64::try_from(i).unwrap_or(0),
                        hash: b.block.hash.clone(),
                        time: format_taxii(record.at),
                        record,
                    })?;
                }
            }
            Ok(())
        })
    })
}

/// The columns of `audit export --format csv`, in order.
pub const CSV_COLUMNS: &[&str] = &[
    "block",
    "chain",
    "seq",
    "time",
    "kind",
    "partner",
    "credential_method",
    "credential_id",
    "client",
    "action",
    "api_root",
    "collection_id",
    "object_id",
    "filters",
    "request_id",
    "status",
    "object_count",
    "failure_count",
    "range_first",
    "range_last",
    "snapshot",
    "detail",
    "hash",
];

/// One CSV line (RFC 4180 quoting) of an exported record.
pub fn csv_line(e: &Exported) -> String {
    fn q(s: &str) -> String {
        // A cell a spreadsheet would run as a formula (`=`, `+`, `-`, `@`, tab, CR first) is
        // written as text: names and ids in the trail can come from anyone (failed logins).
        let s = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) { format!("'{s}") } else { s.to_owned() };
        if s.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s
        }
    }
    let r = &e.record;
    let opt = |v: &Option<String>| q(v.as_deref().unwrap_or_default());
    let num = |v: Option<i64>| v.map(|n| n.to_string()).unwrap_or_default();
    let ts = |v: Option<Micros>| v.map(format_taxii).unwrap_or_default();
    [
        e.block.to_string(),
        e.chain.to_string(),
        e.seq.to_string(),
        e.time.clone(),
        q(&r.kind),
        opt(&r.partner),
        opt(&r.credential_method),
        opt(&r.credential_id),
        opt(&r.client),
        q(&r.action),
        opt(&r.api_root),
        opt(&r.collection_id),
        opt(&r.object_id),
        opt(&r.filters),
        opt(&r.request_id),
        r.status.map(|s| s.to_string()).unwrap_or_default(),
        num(r.object_count),
        num(r.failure_count),
        ts(r.range_first),
        ts(r.range_last),
        ts(r.snapshot),
        opt(&r.detail),
        e.hash.clone(),
    ]
    .join(",")
}
