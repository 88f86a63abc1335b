DROP TABLE partner_certificates;
DROP TRIGGER audit_records_no_truncate ON audit_records;
DROP TRIGGER audit_records_append_only ON audit_records;
DROP FUNCTION audit_append_only();
DROP TABLE audit_purge;
DROP TABLE audit_records;
DROP TABLE audit_chains;
