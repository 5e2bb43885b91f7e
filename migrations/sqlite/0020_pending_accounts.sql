-- An incremental run counts the accounts each target owns: all of them (the primary key's
-- index) less the few pending creates (this partial index).
CREATE INDEX IF NOT EXISTS accounts_pending ON accounts(target) WHERE status = 'pending';
