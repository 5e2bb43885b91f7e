-- When an account was disabled: deletion comes a grace period after it.
ALTER TABLE accounts ADD COLUMN disabled_at TEXT;
-- Whether the record marks protected personal data: remembered for persons no source has now.
ALTER TABLE source_records ADD COLUMN protected INTEGER NOT NULL DEFAULT 0;
