-- Per-collection sharing policy (custom content, TLP ceiling, required TLP, spec versions) as JSON.
ALTER TABLE collections ADD COLUMN sharing TEXT NOT NULL DEFAULT '{}';
