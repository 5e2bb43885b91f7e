-- Approvals of a held (or plan-only) run's operations, and of the guards a run may go past. An
-- operation is approved as what it does (`fingerprint`: a keyed hash of its target, identity,
-- action and values): a later run carries out the approved operations it still plans exactly
-- so, and holds anything new or changed. A guard acceptance (`accept`) lets the next run go
-- past that guard. Each is used once (`used_by_run`) and lapses at `expires_at`. `approved_by`:
-- the token's name, or the local user for the CLI.
CREATE TABLE approvals (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id      INTEGER NOT NULL,
    fingerprint TEXT,
    target      TEXT,
    identity_id TEXT,
    action      TEXT,
    accept      TEXT,
    approved_by TEXT NOT NULL,
    approved_at TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    used_by_run INTEGER
);
CREATE INDEX approvals_live ON approvals(expires_at) WHERE used_by_run IS NULL;
