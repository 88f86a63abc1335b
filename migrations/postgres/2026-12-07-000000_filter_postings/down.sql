DELETE FROM meta WHERE key = 'tags_backfill';
DROP TABLE object_tags;
