-- Concordia schema (PostgreSQL), mirroring migrations/sqlite. Portable column types: TEXT, BIGINT, INTEGER.
-- Timestamps are BIGINT microseconds since the Unix epoch (UTC).

CREATE TABLE meta (
    key TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
);

CREATE TABLE api_roots (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    title TEXT NOT NULL,
    description TEXT,
    max_content_length BIGINT NOT NULL
);

CREATE TABLE partners (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    title TEXT
);

CREATE TABLE partner_groups (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    description TEXT
);

CREATE TABLE group_members (
    group_id BIGINT NOT NULL REFERENCES partner_groups(id) ON DELETE CASCADE,
    partner_id BIGINT NOT NULL REFERENCES partners(id) ON DELETE CASCADE,
    PRIMARY KEY (group_id, partner_id)
);

CREATE TABLE collections (
    id TEXT PRIMARY KEY NOT NULL,
    api_root_id BIGINT NOT NULL REFERENCES api_roots(id),
    title TEXT NOT NULL,
    description TEXT,
    alias TEXT,
    public_read INTEGER NOT NULL DEFAULT 0,
    UNIQUE (api_root_id, title),
    UNIQUE (api_root_id, alias)
);

CREATE TABLE grants (
    collection_id TEXT NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
    group_id BIGINT NOT NULL REFERENCES partner_groups(id) ON DELETE CASCADE,
    can_read INTEGER NOT NULL,
    can_write INTEGER NOT NULL,
    PRIMARY KEY (collection_id, group_id)
);

CREATE TABLE credentials (
    id TEXT PRIMARY KEY NOT NULL,
    partner_id BIGINT NOT NULL REFERENCES partners(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    lookup TEXT UNIQUE,
    secret_hash TEXT NOT NULL,
    label TEXT,
    created_at BIGINT NOT NULL,
    expires_at BIGINT,
    revoked_at BIGINT
);
CREATE INDEX credentials_partner ON credentials (partner_id);

-- One row per stored object version. `body` is the JSON text exactly as received.
-- `seq` is a global unique tie-breaker; date_added is strictly increasing and unique per collection
-- (assigned inside the writing transaction), so (collection_id, date_added) is the paging key.
-- Flags: is_last / is_first within the object's versions of the same spec_version;
-- last_any / first_any over all of the object's versions, whatever their spec_version;
-- spec_latest when the row's spec_version is the highest stored for the id;
-- latest = is_last AND spec_latest (the default view: match[version]=last, latest spec).
CREATE TABLE objects (
    seq BIGSERIAL PRIMARY KEY,
    collection_id TEXT NOT NULL,
    stix_id TEXT NOT NULL,
    stix_type TEXT NOT NULL,
    version TEXT NOT NULL,
    version_key TEXT NOT NULL,
    spec_version TEXT NOT NULL,
    date_added BIGINT NOT NULL,
    is_last INTEGER NOT NULL,
    is_first INTEGER NOT NULL,
    last_any INTEGER NOT NULL,
    first_any INTEGER NOT NULL,
    spec_latest INTEGER NOT NULL,
    latest INTEGER NOT NULL,
    added_by BIGINT NOT NULL,
    body TEXT NOT NULL
);
CREATE UNIQUE INDEX objects_version ON objects (collection_id, stix_id, version_key, spec_version);
CREATE UNIQUE INDEX objects_position ON objects (collection_id, date_added);
CREATE INDEX objects_latest ON objects (collection_id, latest, date_added);
CREATE INDEX objects_type_latest ON objects (collection_id, stix_type, latest, date_added);

-- The highest date_added ever handed out per collection. Only ever increases (deleting the
-- newest objects must not let a later insert reuse a position a poller already passed), and
-- its row is what a writer locks to serialise position assignment per collection.
CREATE TABLE collection_clock (
    collection_id TEXT PRIMARY KEY NOT NULL,
    last_date_added BIGINT NOT NULL
);

CREATE TABLE statuses (
    id TEXT PRIMARY KEY NOT NULL,
    api_root_id BIGINT NOT NULL,
    partner_id BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX statuses_created ON statuses (created_at);
