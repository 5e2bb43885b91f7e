-- Groups enid created on a target: the proof of ownership. Nothing else is ever changed.
CREATE TABLE groups (
    target       TEXT NOT NULL,
    name         TEXT NOT NULL,
    key          TEXT NOT NULL,            -- DN
    anchor       TEXT,                     -- entryUUID
    school       TEXT NOT NULL,            -- school unit, for logs
    status       TEXT NOT NULL,            -- pending | active
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    PRIMARY KEY (target, name)
);

-- Renames approved by an operator (naming.on_name_change = "hold").
CREATE TABLE rename_approvals (
    identity_id  TEXT PRIMARY KEY,
    new_username TEXT NOT NULL,
    approved_at  TEXT NOT NULL
);
