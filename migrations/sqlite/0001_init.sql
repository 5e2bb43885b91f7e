-- enid state database, SQLite. Civic numbers are stored here and nowhere else.

CREATE TABLE identities (
    id          TEXT PRIMARY KEY,          -- enid id (UUID), written to every owned account
    username    TEXT UNIQUE,               -- allocated once, kept for life
    created_at  TEXT NOT NULL
);

CREATE TABLE source_records (
    source       TEXT NOT NULL,
    person_id    TEXT NOT NULL,
    identity_id  TEXT NOT NULL REFERENCES identities(id),
    civic_no     TEXT,                     -- normalised, 12 characters
    given_name   TEXT NOT NULL,
    family_name  TEXT NOT NULL,
    role         TEXT NOT NULL,
    school_unit  TEXT,
    groups       TEXT NOT NULL,            -- '|'-separated
    start_date   TEXT,
    end_date     TEXT,
    content_hash TEXT NOT NULL,
    first_seen   TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    PRIMARY KEY (source, person_id)
);
CREATE INDEX source_records_identity ON source_records(identity_id);
CREATE INDEX source_records_civic ON source_records(civic_no);

-- Every username ever allocated. A row is never deleted, so a name is never reused.
CREATE TABLE usernames (
    username     TEXT PRIMARY KEY,
    identity_id  TEXT NOT NULL,
    allocated_at TEXT NOT NULL,
    released_at  TEXT
);

-- Accounts enid created: the proof of ownership. Nothing else is ever modified.
CREATE TABLE accounts (
    target       TEXT NOT NULL,
    identity_id  TEXT NOT NULL REFERENCES identities(id),
    key          TEXT NOT NULL,            -- DN
    anchor       TEXT,                     -- entryUUID
    status       TEXT NOT NULL,            -- pending | active | disabled
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    PRIMARY KEY (target, identity_id)
);

CREATE TABLE runs (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    command      TEXT NOT NULL,
    plan_id      TEXT,
    started_at   TEXT NOT NULL,
    finished_at  TEXT,
    status       TEXT NOT NULL,            -- running | ok | failed | stopped
    message      TEXT
);

CREATE TABLE oplog (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id       INTEGER NOT NULL REFERENCES runs(id),
    at           TEXT NOT NULL,
    identity_id  TEXT,
    username     TEXT,
    target       TEXT,
    school       TEXT,
    action       TEXT NOT NULL,
    detail       TEXT,
    result       TEXT NOT NULL,            -- ok | failed | skipped
    error        TEXT
);
CREATE INDEX oplog_run ON oplog(run_id);
CREATE INDEX oplog_identity ON oplog(identity_id);

CREATE TABLE plans (
    plan_id      TEXT PRIMARY KEY,
    created_at   TEXT NOT NULL,
    body         TEXT NOT NULL
);
