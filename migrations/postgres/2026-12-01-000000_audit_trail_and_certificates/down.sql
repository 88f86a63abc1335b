DROP TABLE partner_certificates;
DROP TRIGGER audit_blocks_no_truncate ON audit_blocks;
DROP TRIGGER audit_blocks_append_only ON audit_blocks;
DROP FUNCTION audit_append_only();
DROP TABLE audit_purge;
DROP TABLE audit_blocks;
DROP TABLE audit_chains;
