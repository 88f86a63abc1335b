DROP INDEX objects_version;
CREATE UNIQUE INDEX objects_version ON objects (collection_id, stix_id, version_key, spec_version);
