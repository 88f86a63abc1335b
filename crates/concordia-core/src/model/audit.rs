//! The audit trail's records and their hash chain. No I/O: storage keeps them, the service
//! writes them, `concordia audit` reads and verifies them.
//!
//! Every record belongs to one chain and carries the hash of its predecessor, so changing or
//! removing any record breaks every later link. There are three kinds of chains, chosen so that
//! appending never makes requests of different partners, collections or nodes wait for each other:
//! - one per **collection**, for writes (Add Objects, Delete), appended inside the write's own
//!   transaction, which already holds the collection's position lock;
//! - one per **server process** (node), for reads and failed logins, appended in batches by that
//!   process alone;
//! - one **cluster** chain for operator actions (`apply`, credentials, `import`, `migrate`),
//!   retention purges and periodic **anchors**: the heads of the node and collection chains, so
//!   that removing a whole chain, or its tail, is detected too.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::time::Micros;

/// What kind of event a record describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditKind {
    /// A partner request that reached the TAXII API (read or write), whatever its outcome.
    Request,
    /// A request whose credentials were not accepted.
    AuthFailure,
    /// An operator action on the command line (or, later, the console).
    Operator,
    /// The heads of other chains, recorded in the cluster chain.
    Anchor,
    /// Records removed by retention; the anchor that lets verification start after them.
    Purge,
}

impl AuditKind {
    /// The name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditKind::Request => "request",
            AuditKind::AuthFailure => "auth_failure",
            AuditKind::Operator => "operator",
            AuditKind::Anchor => "anchor",
            AuditKind::Purge => "purge",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<AuditKind> {
        Some(match s {
            "request" => AuditKind::Request,
            "auth_failure" => AuditKind::AuthFailure,
            "operator" => AuditKind::Operator,
            "anchor" => AuditKind::Anchor,
            "purge" => AuditKind::Purge,
            _ => return None,
        })
    }
}

/// One audit record: who, what, the outcome and when. The serialised form of this struct (field
/// order as declared, absent fields left out) is what the chain hashes, so fields are only ever
/// appended at the end.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AuditRecord {
    /// When, in microseconds since the Unix epoch.
    pub at: Micros,
    /// [`AuditKind::as_str`].
    pub kind: String,
    /// Partner id and name (none for operators and failed logins).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partner_id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partner: Option<String>,
    /// `password`, `api_key`, `certificate`, `anonymous`, or `operator`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_method: Option<String>,
    /// The credential id; `sha256:<hex>` for a certificate; `user@host` for an operator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_id: Option<String>,
    /// The client address (behind trusted proxies, the forwarded one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    /// The TAXII operation (`get_objects`, `add_objects`, ...) or operator action (`apply`, ...).
    pub action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_root: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collection_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_id: Option<String>,
    /// The effective filters of a read (JSON), or the request's query string when it did not parse.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filters: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// HTTP status of the answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<i32>,
    /// Objects served (reads) or stored (writes); versions deleted (Delete).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_count: Option<i64>,
    /// Objects refused in an Add Objects request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_count: Option<i64>,
    /// `date_added` of the first and last version a page served.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range_first: Option<Micros>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range_last: Option<Micros>,
    /// The collection's highest `date_added` visible to the read (what existed when it was served).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<Micros>,
    /// Anything else, as JSON: an operator's change list, deleted versions, why a login failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// The hash before the first block of a chain.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

impl AuditRecord {
    /// The record as stored and hashed: its JSON text, fields in declaration order, absent ones
    /// left out.
    pub fn to_text(&self) -> String {
        // Serialising a struct of strings and integers cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// The records of a block as stored and hashed: one JSON text per line.
pub fn block_text(records: &[AuditRecord]) -> String {
    let mut out = String::with_capacity(records.len() * 400);
    for (i, r) in records.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(&r.to_text());
    }
    out
}

/// The records of a stored block's text (`None` if a line is not a record: the text was changed).
pub fn block_records(text: &str) -> Option<Vec<AuditRecord>> {
    text.split('\n').map(|l| serde_json::from_str(l).ok()).collect()
}

/// The hash of a block (its stored text) whose first record is at position `seq` of chain
/// `chain`, after a block with hash `prev`.
pub fn link_hash(prev: &str, chain: i64, seq: i64, text: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"concordia-audit-v1\n");
    h.update(prev.as_bytes());
    h.update(format!("\n{chain}\n{seq}\n").as_bytes());
    h.update(text.as_bytes());
    hex::encode(h.finalize())
}

/// A block of records with its place in a chain, as stored: one row of `audit_blocks`. The
/// records of one batch (a node's reads) share a row; a write or an operator action has one of
/// its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainedBlock {
    /// Row id (global insertion order).
    pub id: i64,
    pub chain: i64,
    /// Position of the block's first record in the chain (positions count records).
    pub seq: i64,
    /// Records in the block.
    pub count: i64,
    pub prev_hash: String,
    pub hash: String,
    /// The records' text, as hashed (one JSON record per line).
    pub text: String,
}

impl ChainedBlock {
    /// Position of the block's last record.
    pub fn last_seq(&self) -> i64 {
        self.seq + self.count - 1
    }
}

/// What an anchor records of one chain: the hash after its record at position `seq` (the last
/// record of a block).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainHead {
    pub chain: i64,
    pub seq: i64,
    pub hash: String,
}

/// Why a chain does not verify; the first problem found names the row (`audit_blocks.id`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainBreak {
    #[error("chain {chain}: row {id} (records from seq {seq}) was changed: its hash does not match its contents")]
    Altered { chain: i64, seq: i64, id: i64 },
    #[error("chain {chain}: row {id} (records from seq {seq}) does not follow its predecessor: a row before it was removed or changed")]
    Unlinked { chain: i64, seq: i64, id: i64 },
    #[error("chain {chain}: records {from}..{to} are missing (removed) before row {id}")]
    Gap { chain: i64, from: i64, to: i64, id: i64 },
    #[error("chain {chain}: it starts at seq {seq} (row {id}) but no purge anchor says records before it were purged")]
    MissingStart { chain: i64, seq: i64, id: i64 },
    #[error("chain {chain}: an anchor (in row {anchor}) names seq {seq}, which is missing or differs: records were removed from its end")]
    AnchorMismatch { chain: i64, seq: i64, anchor: i64 },
    #[error(
        "chain {chain}: its head says seq {seq}, but its last record is seq {last}: records were removed from its end"
    )]
    Truncated { chain: i64, seq: i64, last: i64 },
    #[error("chain {chain}: row {id} (records from seq {seq}): its {column} column differs from the records it hashes (changed)")]
    Columns { chain: i64, seq: i64, id: i64, column: &'static str },
    #[error("chain {chain}: it has records (up to seq {last}) but no head row: the chain's row was removed")]
    NoHead { chain: i64, last: i64 },
}

/// Checks one chain's blocks as they stream by, in order.
#[derive(Debug, Clone)]
pub struct ChainCheck {
    chain: i64,
    /// Where a purge left the chain: seq of the first kept record and the hash before it.
    start: Option<(i64, String)>,
    /// The next seq expected and the hash it must link to, once the first block is seen.
    next: Option<(i64, String)>,
}

impl ChainCheck {
    /// A check of chain `chain`, which a purge may have cut at `start`.
    pub fn new(chain: i64, start: Option<(i64, String)>) -> Self {
        ChainCheck { chain, start, next: None }
    }

    /// Checks the next block.
    ///
    /// # Errors
    /// The break this block reveals, naming its row.
    pub fn push(&mut self, b: &ChainedBlock) -> Result<(), ChainBreak> {
        let chain = self.chain;
        let (expect_seq, prev) = match self.next.take() {
            Some(next) => next,
            None => match &self.start {
                Some((seq, hash)) => (*seq, hash.clone()),
                None if b.seq == 1 => (1, GENESIS.to_owned()),
                None => return Err(ChainBreak::MissingStart { chain, seq: b.seq, id: b.id }),
            },
        };
        if b.seq > expect_seq {
            return Err(ChainBreak::Gap { chain, from: expect_seq, to: b.seq - 1, id: b.id });
        }
        if b.seq < expect_seq || b.count < 1 {
            return Err(ChainBreak::Unlinked { chain, seq: b.seq, id: b.id });
        }
        if link_hash(&b.prev_hash, chain, b.seq, &b.text) != b.hash {
            return Err(ChainBreak::Altered { chain, seq: b.seq, id: b.id });
        }
        if b.prev_hash != prev {
            return Err(ChainBreak::Unlinked { chain, seq: b.seq, id: b.id });
        }
        self.next = Some((b.seq + b.count, b.hash.clone()));
        Ok(())
    }

    /// The last record checked: its seq, and the hash of its block.
    pub fn last(&self) -> Option<(i64, &str)> {
        self.next.as_ref().map(|(seq, hash)| (seq - 1, hash.as_str()))
    }
}

/// Checks one whole chain (see [`ChainCheck`]).
///
/// # Errors
/// The first break found, naming the row.
pub fn verify_chain(chain: i64, blocks: &[ChainedBlock], start: Option<(i64, &str)>) -> Result<(), ChainBreak> {
    let mut check = ChainCheck::new(chain, start.map(|(s, h)| (s, h.to_owned())));
    blocks.iter().try_for_each(|b| check.push(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Blocks of 1, 3, 1, 2 and 1 records.
    fn chain() -> Vec<ChainedBlock> {
        let mut prev = GENESIS.to_owned();
        let mut seq = 1;
        [1, 3, 1, 2, 1]
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let records: Vec<AuditRecord> = (0..*n)
                    .map(|k| AuditRecord {
                        at: seq + k,
                        kind: "request".into(),
                        action: "get_objects".into(),
                        ..Default::default()
                    })
                    .collect();
                let text = block_text(&records);
                let hash = link_hash(&prev, 7, seq, &text);
                let b = ChainedBlock {
                    id: 101 + i as i64,
                    chain: 7,
                    seq,
                    count: *n,
                    prev_hash: prev.clone(),
                    hash: hash.clone(),
                    text,
                };
                prev = hash;
                seq += n;
                b
            })
            .collect()
    }

    #[test]
    fn an_intact_chain_verifies_and_blocks_unpack() {
        let c = chain();
        assert_eq!(verify_chain(7, &c, None), Ok(()));
        let records = block_records(&c[1].text).unwrap();
        assert_eq!(records.len(), 3);
        assert_eq!(records[2].at, 4);
        assert_eq!(c[4].last_seq(), 8);
    }

    #[test]
    fn a_changed_block_is_named() {
        let mut c = chain();
        c[2].text = c[2].text.replace("get_objects", "add_objects");
        assert_eq!(verify_chain(7, &c, None), Err(ChainBreak::Altered { chain: 7, seq: 5, id: 103 }));
    }

    #[test]
    fn a_removed_block_is_a_gap() {
        let mut c = chain();
        c.remove(2);
        assert_eq!(verify_chain(7, &c, None), Err(ChainBreak::Gap { chain: 7, from: 5, to: 5, id: 104 }));
    }

    #[test]
    fn a_rewritten_block_is_caught_by_the_next_link() {
        // An attacker replaces a block and recomputes its own hash, but not the ones after it.
        let mut c = chain();
        c[2].text = c[2].text.replace("get_objects", "delete_object");
        c[2].hash = link_hash(&c[2].prev_hash, 7, 5, &c[2].text);
        assert_eq!(verify_chain(7, &c, None), Err(ChainBreak::Unlinked { chain: 7, seq: 6, id: 104 }));
    }

    #[test]
    fn a_purged_start_needs_its_anchor() {
        let c = chain();
        let rest = &c[2..];
        assert_eq!(verify_chain(7, rest, None), Err(ChainBreak::MissingStart { chain: 7, seq: 5, id: 103 }));
        assert_eq!(verify_chain(7, rest, Some((5, &c[1].hash))), Ok(()));
        assert!(verify_chain(7, rest, Some((5, GENESIS))).is_err());
    }
}
