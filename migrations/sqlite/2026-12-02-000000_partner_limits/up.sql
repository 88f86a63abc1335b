-- A partner's client-address allow-list and request and write limits (JSON, model::policy::PartnerLimits;
-- '{}': any address, the configured default limits).
ALTER TABLE partners ADD COLUMN limits TEXT NOT NULL DEFAULT '{}';
