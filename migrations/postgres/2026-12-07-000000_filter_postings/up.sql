-- Postings of the richer filters (match[labels], match[tlp], match[confidence-*]): for every
-- version, one row per label, one for its TLP level and one for its confidence decile (see
-- model::feed::filter_tags), keyed by position, with the version's seq. A filtered page merges
-- the position lists of the keys it asks for and reads only those versions (by seq: the one
-- index no statistics can make the planner trade away), so a filter that matches few versions
-- reads few rows whatever the collection's size. Each key's rows are appended in position
-- order, so a write adds to the end of a few ranges.
CREATE TABLE object_tags (
    collection_key BIGINT NOT NULL,
    tag TEXT COLLATE "C" NOT NULL,
    date_added BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    PRIMARY KEY (collection_key, tag, date_added)
);
-- The versions stored before this migration get their postings from `concordia migrate`
-- (storage::objects::backfill_tags), from the first seq up to this one, resumably.
INSERT INTO meta (key, value) SELECT 'tags_backfill', '0:' || COALESCE(MAX(seq), 0)::text FROM objects;
