DROP TABLE partner_certificates;
DROP TRIGGER audit_records_no_delete;
DROP TRIGGER audit_records_no_update;
DROP TABLE audit_purge;
DROP TABLE audit_records;
DROP TABLE audit_chains;
