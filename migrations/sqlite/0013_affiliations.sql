-- Affiliations: a record holds several ties to school units (a teacher at three schools, a pupil
-- in a school and an after-school centre), typed groups and external identifiers. The columns
-- keep what the state reads without the whole record (school_unit now holds the record's school
-- unit codes, comma-separated); `data` keeps the whole record as JSON, without its civic number.
ALTER TABLE source_records ADD COLUMN data TEXT;

-- The primary school unit of each identity (what a target's per-school settings use), kept so
-- that it changes only when its affiliation ends. Before this, the first school unit in
-- alphabetical order was used: that is what every existing identity keeps, so the upgrade
-- moves nobody.
ALTER TABLE identities ADD COLUMN primary_school TEXT;
UPDATE identities SET primary_school = (
    SELECT MIN(r.school_unit) FROM source_records r
    WHERE r.identity_id = identities.id AND r.school_unit IS NOT NULL AND r.school_unit <> ''
);

-- Incremental reads. A record whose person the source no longer gives is marked gone (kept, for a
-- leaver's log rows and a return): the records not gone are what the last read left, which an
-- incremental read's changes are merged with.
ALTER TABLE source_records ADD COLUMN gone_at TEXT;

-- Per source, what the last applied read left: the watermark the next incremental read starts
-- from (the source's own form; NULL for a source that reads in full only), when it last read in
-- full, and what it read (its scope: a changed scope is a config change, never departures).
CREATE TABLE source_reads (
    source       TEXT PRIMARY KEY,
    watermark    TEXT,
    full_read_at TEXT,
    scope        TEXT NOT NULL,
    run_id       INTEGER NOT NULL,
    updated_at   TEXT NOT NULL
);
