-- Operators' decisions on held records, and the history of civic-number changes.

CREATE TABLE conflict_decisions (
    conflict_id  TEXT PRIMARY KEY,
    decision     TEXT NOT NULL,            -- JSON: {"decision":"merge","into":...} or {"decision":"separate"}
    records      TEXT NOT NULL,            -- the records the conflict was about, for the audit trail
    decided_at   TEXT NOT NULL
);

-- A linked record whose civic number changed (TF or samordningsnummer -> personnummer, or a
-- corrected number). The identity and its accounts stay; this is the trail.
CREATE TABLE civic_history (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    source       TEXT NOT NULL,
    person_id    TEXT NOT NULL,
    identity_id  TEXT NOT NULL,
    old_civic_no TEXT,
    new_civic_no TEXT,
    changed_at   TEXT NOT NULL,
    run_id       INTEGER
);
CREATE INDEX civic_history_identity ON civic_history(identity_id);
