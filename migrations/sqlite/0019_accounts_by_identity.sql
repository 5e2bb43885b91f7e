-- An incremental run reads the accounts of a few identities on every target.
CREATE INDEX IF NOT EXISTS accounts_identity ON accounts(identity_id);
