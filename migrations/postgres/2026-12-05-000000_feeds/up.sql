-- Feeds: derived collections, richer filters, retention, TAXII 2.0.
--
-- A collection's feed settings (derived sources and filter, retention, TAXII 2.0), as JSON.
ALTER TABLE collections ADD COLUMN feed TEXT NOT NULL DEFAULT '{}';
-- What the richer filters look at, read from each version when it is stored (versions stored
-- before this migration are filled in by `concordia migrate`, see storage::backfill_facets):
-- confidence, created_by_ref (lower case), the most restrictive TLP marking (0 = CLEAR/WHITE
-- ... 4 = RED), labels (lower case, each followed by U+001F and the list preceded by one, so
-- that a label is found with LIKE), and the validity window in µs since the epoch.
ALTER TABLE objects ADD COLUMN confidence INTEGER;
ALTER TABLE objects ADD COLUMN created_by TEXT;
ALTER TABLE objects ADD COLUMN tlp INTEGER;
ALTER TABLE objects ADD COLUMN labels TEXT;
ALTER TABLE objects ADD COLUMN valid_from BIGINT;
ALTER TABLE objects ADD COLUMN valid_until BIGINT;
-- In a derived collection: the sources (bit i = derived_from[i]) that hold this version. A
-- partner sees the version only if it may read one of them. 0 in stored collections.
ALTER TABLE objects ADD COLUMN source_mask BIGINT NOT NULL DEFAULT 0;
-- What a relationship links (a sighting: what it is a sighting of, as its source), for
-- `match[relationships-all]`; indexed only where present.
ALTER TABLE objects ADD COLUMN source_ref TEXT;
ALTER TABLE objects ADD COLUMN target_ref TEXT;
CREATE INDEX objects_source_ref ON objects (collection_key, source_ref) WHERE source_ref IS NOT NULL;
CREATE INDEX objects_target_ref ON objects (collection_key, target_ref) WHERE target_ref IS NOT NULL;
-- match[created_by_ref]: one producer's objects, in position order (as the type index does
-- for types); only versions that name a producer.
CREATE INDEX objects_created_by ON objects (collection_key, created_by, latest, date_added) WHERE created_by IS NOT NULL;
