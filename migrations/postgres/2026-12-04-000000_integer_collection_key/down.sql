DROP INDEX objects_version;
DROP INDEX objects_position;
DROP INDEX objects_latest;
DROP INDEX objects_type_latest;
ALTER TABLE objects ADD COLUMN collection_id TEXT;
UPDATE objects o SET collection_id = k.collection_id FROM collection_clock k WHERE k.collection_key = o.collection_key;
ALTER TABLE objects ALTER COLUMN collection_id SET NOT NULL;
ALTER TABLE objects DROP COLUMN collection_key;
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
ALTER TABLE collection_clock RENAME CONSTRAINT collection_clock_by_id_pkey TO collection_clock_pkey;
