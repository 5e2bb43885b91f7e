-- Records a read gave that are in no identity: held in a conflict, a new person waiting for a
-- decision (or for a username that could not be made), or the records of an identity kept as
-- stored because another of its rows was rejected. An incremental read gives a record only when
-- it changes, so these are kept beside the linked records and merged with the next read's
-- changes (in place of a linked record with the same key): a held person is seen again on every
-- run until the conflict is decided, and the source's watermark advances as usual. Each apply
-- replaces the held records of the sources it read. Civic numbers, as in source_records.
CREATE TABLE held_records (
    source       TEXT NOT NULL,
    person_id    TEXT NOT NULL,
    civic_no     TEXT,
    data         TEXT NOT NULL,            -- the whole record as JSON, without its civic number
    content_hash TEXT NOT NULL,
    held_since   TEXT NOT NULL,
    run_id       INTEGER NOT NULL,
    PRIMARY KEY (source, person_id)
);

-- The primary school unit's tie as the source identifies it (an enrolment's or duty's id, a
-- OneRoster org), beside its code: a school unit whose code changes is still the same tie, and
-- stays primary.
ALTER TABLE identities ADD COLUMN primary_tie TEXT;
