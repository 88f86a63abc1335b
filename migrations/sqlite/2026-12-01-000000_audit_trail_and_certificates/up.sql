-- The audit trail: append-only records in hash chains (see src/model/audit.rs), and the
-- certificate identities of partners (mutual TLS).

-- One row per chain: the cluster chain (operator actions, anchors, purges), one per server
-- process (reads, failed logins) and one per collection (writes). head_* is the last record.
CREATE TABLE audit_chains (
    id INTEGER PRIMARY KEY NOT NULL,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    head_seq BIGINT NOT NULL,
    head_hash TEXT NOT NULL,
    UNIQUE (kind, name)
);
INSERT INTO audit_chains (id, kind, name, started_at, head_seq, head_hash)
VALUES (1, 'cluster', 'cluster', 0, 0, '0000000000000000000000000000000000000000000000000000000000000000');

-- `record` is the record as hashed (canonical JSON of model::audit::AuditRecord); the other
-- columns repeat what queries select on. `hash` links it to the record before it in its chain.
CREATE TABLE audit_records (
    id INTEGER PRIMARY KEY NOT NULL,
    chain_id BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    at BIGINT NOT NULL,
    kind TEXT NOT NULL,
    action TEXT NOT NULL,
    partner_id BIGINT,
    collection_id TEXT,
    range_first BIGINT,
    range_last BIGINT,
    record TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
-- No index on (chain_id, seq): appends to one chain are serialised, so a chain's records are in
-- id order, and `audit verify` reads the whole table once in that order. Every index here is paid
-- on every request.
-- Pages served, by collection and position: `concordia audit recipients`.
CREATE INDEX audit_records_pages ON audit_records (collection_id, range_first) WHERE range_first IS NOT NULL;

-- Holds a row only inside a retention purge's transaction: the one time records may be deleted.
CREATE TABLE audit_purge (token TEXT NOT NULL);

CREATE TRIGGER audit_records_no_update BEFORE UPDATE ON audit_records
BEGIN
    SELECT RAISE(ABORT, 'the audit trail is append-only: records cannot be changed');
END;
CREATE TRIGGER audit_records_no_delete BEFORE DELETE ON audit_records
WHEN NOT EXISTS (SELECT 1 FROM audit_purge)
BEGIN
    SELECT RAISE(ABORT, 'the audit trail is append-only: records are removed only by retention');
END;

-- Certificates that identify partners: a SHA-256 fingerprint of the DER certificate, or a
-- subject or subjectAltName pattern (matched only on certificates that chain to tls_client_ca).
CREATE TABLE partner_certificates (
    partner_id INTEGER NOT NULL REFERENCES partners(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    pattern TEXT NOT NULL,
    PRIMARY KEY (partner_id, kind, pattern)
);
