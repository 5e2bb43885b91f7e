-- When an account was disabled: deletion comes a grace period after it.
ALTER TABLE accounts ADD COLUMN disabled_at TEXT;
