-- Valid records each source gave in the last applied run: the input guard compares against it.
CREATE TABLE source_counts (
    source       TEXT PRIMARY KEY,
    records      INTEGER NOT NULL,
    run_id       INTEGER NOT NULL,
    counted_at   TEXT NOT NULL
);
