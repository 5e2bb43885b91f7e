-- An incremental run reads the accounts of a few identities on every target, and counts the
-- accounts each target owns (all of them, less the few pending creates).
CREATE INDEX IF NOT EXISTS accounts_identity ON accounts(identity_id);
CREATE INDEX IF NOT EXISTS accounts_pending ON accounts(target) WHERE status = 'pending';
