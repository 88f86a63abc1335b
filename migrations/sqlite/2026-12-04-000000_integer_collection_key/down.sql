CREATE TABLE objects_by_id (
    seq INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
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
    added_by INTEGER NOT NULL,
    body TEXT NOT NULL
);
INSERT INTO objects_by_id (seq, collection_id, stix_id, stix_type, version, version_key, spec_version, date_added,
                           is_last, is_first, last_any, first_any, spec_latest, latest, added_by, body)
SELECT o.seq, k.collection_id, o.stix_id, o.stix_type, o.version, o.version_key, o.spec_version, o.date_added,
       o.is_last, o.is_first, o.last_any, o.first_any, o.spec_latest, o.latest, o.added_by, o.body
FROM objects o JOIN collection_clock k ON k.collection_key = o.collection_key
ORDER BY o.seq;
DROP TABLE objects;
ALTER TABLE objects_by_id RENAME TO objects;
CREATE UNIQUE INDEX objects_version ON objects ((collection_id || '/' || stix_id), version_key, spec_version);
CREATE UNIQUE INDEX objects_position ON objects (collection_id, date_added);
CREATE INDEX objects_latest ON objects (collection_id, latest, date_added);
CREATE INDEX objects_type_latest ON objects (collection_id, stix_type, latest, date_added);

CREATE TABLE collection_clock_by_id (
    collection_id TEXT PRIMARY KEY NOT NULL,
    last_date_added BIGINT NOT NULL
);
INSERT INTO collection_clock_by_id SELECT collection_id, last_date_added FROM collection_clock;
DROP TABLE collection_clock;
ALTER TABLE collection_clock_by_id RENAME TO collection_clock;
