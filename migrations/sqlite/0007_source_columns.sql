-- The fields (enid's names: email, protection, groups, ...) each source delivered at the last
-- applied run. A field that was there and is missing now stops the run before planning.
CREATE TABLE source_columns (
    source       TEXT PRIMARY KEY,
    -- JSON array of field names, sorted.
    columns      TEXT NOT NULL,
    run_id       INTEGER NOT NULL,
    recorded_at  TEXT NOT NULL
);
