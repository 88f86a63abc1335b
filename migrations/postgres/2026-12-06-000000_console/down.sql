DROP TABLE seen_certificates;
DROP TABLE console_sessions;
DROP TABLE operators;
