-- The version index is keyed by one expression, `collection_id || '/' || stix_id`, rather than
-- by the two columns. Lookups by id (an envelope's ids, one object, match[id], the versions of
-- an object) are written against that expression, which no other index holds, so a lookup has
-- one way to use the index: a probe per key. With two columns PostgreSQL could read a
-- collection's whole range and filter the ids there when its statistics said the collection was
-- nearly empty (a collection loaded since the last ANALYZE next to a large one), or walk the
-- position or latest index instead. Paging queries use the plain column and cannot pick this
-- index either. (Neither a collection id nor a STIX id holds a '/', so the key is unique.)
DROP INDEX objects_version;
CREATE UNIQUE INDEX objects_version ON objects ((collection_id || '/' || stix_id), version_key, spec_version);
