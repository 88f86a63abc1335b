-- Operator accounts of the console (separate from partners): an argon2 password hash and/or the
-- sha256:<hex> fingerprint of a client certificate.
CREATE TABLE operators (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    password_hash TEXT,
    certificate TEXT,
    created_at BIGINT NOT NULL
);
-- Console sessions, shared by every node on the database: the SHA-256 of the cookie's token (the
-- token itself is never stored), its CSRF token, and when it was last used (idle timeout).
CREATE TABLE console_sessions (
    token_hash TEXT PRIMARY KEY NOT NULL,
    operator_id BIGINT NOT NULL REFERENCES operators(id) ON DELETE CASCADE,
    csrf TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_seen BIGINT NOT NULL
);
CREATE INDEX console_sessions_by_operator ON console_sessions (operator_id);
-- Client certificates that authenticated a partner, as first and last seen by any node: the
-- console lists the ones that expire soon (the policy names certificates by pattern, so their
-- expiry is only known once one is used).
CREATE TABLE seen_certificates (
    fingerprint TEXT PRIMARY KEY NOT NULL,
    partner_id BIGINT NOT NULL,
    subject TEXT NOT NULL,
    not_after BIGINT NOT NULL,
    first_seen BIGINT NOT NULL,
    last_seen BIGINT NOT NULL
);
-- One operator per client certificate.
CREATE UNIQUE INDEX operators_certificate ON operators (certificate) WHERE certificate IS NOT NULL;
