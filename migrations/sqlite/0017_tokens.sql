-- API tokens (`enid token add|list|revoke`). Only a token's SHA-256 is kept, never the token:
-- a copy of the state database gives no access to the API. A revoked token keeps its row (the
-- name stays taken, so log lines and decisions that name it stay unambiguous).
CREATE TABLE api_tokens (
    name        TEXT PRIMARY KEY,
    hash        TEXT NOT NULL UNIQUE,     -- lowercase hex SHA-256 of the token
    role        TEXT NOT NULL,            -- 'admin' or 'school_admin'
    schools     TEXT NOT NULL,            -- JSON array of school unit codes (a school admin's)
    created_at  TEXT NOT NULL,
    revoked_at  TEXT
);

-- Who made each decision: the API token's name, or `local:USER` for the CLI.
ALTER TABLE conflict_decisions ADD COLUMN decided_by TEXT;
ALTER TABLE rename_approvals ADD COLUMN approved_by TEXT;
