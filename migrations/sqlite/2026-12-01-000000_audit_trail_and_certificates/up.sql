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

-- The records, in blocks: one row holds the records a node committed together (its reads and
-- failed logins of one batch), or one write or operator action. `records` is what is hashed (one
-- JSON record per line, model::audit::AuditRecord); `hash` links the block to the one before it
-- in its chain. The other columns summarise the records, for selecting blocks (and `audit
-- verify` checks them against the records). One row per batch, and no index besides the key:
-- every index here would be paid on every request.
CREATE TABLE audit_blocks (
    id INTEGER PRIMARY KEY NOT NULL,
    chain_id BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    count INTEGER NOT NULL,
    first_at BIGINT NOT NULL,
    last_at BIGINT NOT NULL,
    partners TEXT NOT NULL,
    collections TEXT NOT NULL,
    records TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);

-- Holds a row only inside a retention purge's transaction: the one time records may be deleted.
CREATE TABLE audit_purge (token TEXT NOT NULL);

CREATE TRIGGER audit_blocks_no_update BEFORE UPDATE ON audit_blocks
BEGIN
    SELECT RAISE(ABORT, 'the audit trail is append-only: records cannot be changed');
END;
CREATE TRIGGER audit_blocks_no_delete BEFORE DELETE ON audit_blocks
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
