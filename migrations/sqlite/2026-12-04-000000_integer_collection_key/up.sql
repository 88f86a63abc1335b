-- Objects refer to their collection by an integer key instead of the 36-character collection
-- id, which prefixed every entry of every objects index (143 + 70 + 60 + 59 MB at 1M objects).
-- The key lives in the collection's clock row: one row per collection id ever created, never
-- deleted, so a collection that is removed from the policy and added again finds its objects
-- under the same key. The clock row is also what a writer locks (PostgreSQL) to take positions.
CREATE TABLE collection_clock_keyed (
    collection_key INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    collection_id TEXT NOT NULL UNIQUE,
    last_date_added BIGINT NOT NULL
);
INSERT INTO collection_clock_keyed (collection_id, last_date_added)
SELECT ids.id, COALESCE(c.last_date_added, 0)
FROM (SELECT id FROM collections
      UNION SELECT collection_id FROM collection_clock
      UNION SELECT DISTINCT collection_id FROM objects) AS ids
LEFT JOIN collection_clock c ON c.collection_id = ids.id
ORDER BY ids.id;
DROP TABLE collection_clock;
ALTER TABLE collection_clock_keyed RENAME TO collection_clock;

CREATE TABLE objects_keyed (
    seq INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    collection_key INTEGER NOT NULL,
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
INSERT INTO objects_keyed (seq, collection_key, stix_id, stix_type, version, version_key, spec_version, date_added,
                           is_last, is_first, last_any, first_any, spec_latest, latest, added_by, body)
SELECT o.seq, k.collection_key, o.stix_id, o.stix_type, o.version, o.version_key, o.spec_version, o.date_added,
       o.is_last, o.is_first, o.last_any, o.first_any, o.spec_latest, o.latest, o.added_by, o.body
FROM objects o JOIN collection_clock k ON k.collection_id = o.collection_id
ORDER BY o.seq;
DROP TABLE objects;
ALTER TABLE objects_keyed RENAME TO objects;
-- Lookups by id use one expression (see migration version_index_by_expression): the key as
-- text, '/', the STIX id.
CREATE UNIQUE INDEX objects_version ON objects ((CAST(collection_key AS TEXT) || '/' || stix_id), version_key, spec_version);
CREATE UNIQUE INDEX objects_position ON objects (collection_key, date_added);
CREATE INDEX objects_latest ON objects (collection_key, latest, date_added);
CREATE INDEX objects_type_latest ON objects (collection_key, stix_type, latest, date_added);
