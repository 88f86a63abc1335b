DROP TABLE partner_certificates;
DROP TRIGGER audit_blocks_no_delete;
DROP TRIGGER audit_blocks_no_update;
DROP TABLE audit_purge;
DROP TABLE audit_blocks;
DROP TABLE audit_chains;
