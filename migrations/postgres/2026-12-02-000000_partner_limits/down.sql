ALTER TABLE partners DROP COLUMN limits;
