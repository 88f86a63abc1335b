-- The audit trail: append-only records in hash chains (see src/model/audit.rs), and the
-- certificate identities of partners (mutual TLS). Mirrors migrations/sqlite.

-- One row per chain: the cluster chain (operator actions, anchors, purges), one per server
-- process (reads, failed logins) and one per collection (writes). head_* is the last record.
CREATE TABLE audit_chains (
    id BIGSERIAL PRIMARY KEY,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    head_seq BIGINT NOT NULL,
    head_hash TEXT NOT NULL,
    UNIQUE (kind, name)
);
INSERT INTO audit_chains (id, kind, name, started_at, head_seq, head_hash)
VALUES (1, 'cluster', 'cluster', 0, 0, '0000000000000000000000000000000000000000000000000000000000000000');
SELECT setval('audit_chains_id_seq', 1);

-- The records, in blocks: one row holds the records a node committed together (its reads and
-- failed logins of one batch), or one write or operator action. `records` is what is hashed (one
-- JSON record per line, model::audit::AuditRecord); `hash` links the block to the one before it
-- in its chain. The other columns summarise the records, for selecting blocks (and `audit
-- verify` checks them against the records). One row per batch, and no index besides the key:
-- every index here would be paid on every request.
CREATE TABLE audit_blocks (
    id BIGSERIAL PRIMARY KEY,
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

CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND EXISTS (SELECT 1 FROM audit_purge) THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'the audit trail is append-only: % refused', TG_OP;
END
$$;
CREATE TRIGGER audit_blocks_append_only BEFORE UPDATE OR DELETE ON audit_blocks
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_blocks_no_truncate BEFORE TRUNCATE ON audit_blocks
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();

-- Certificates that identify partners: a SHA-256 fingerprint of the DER certificate, or a
-- subject or subjectAltName pattern (matched only on certificates that chain to tls_client_ca).
CREATE TABLE partner_certificates (
    partner_id BIGINT NOT NULL REFERENCES partners(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    pattern TEXT NOT NULL,
    PRIMARY KEY (partner_id, kind, pattern)
);
