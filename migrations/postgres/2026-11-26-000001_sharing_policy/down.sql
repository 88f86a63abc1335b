ALTER TABLE collections DROP COLUMN sharing;
