-- Operators' decisions that an account made before enid is not a person's (`enid adopt --entry
-- KEY --person SOURCE/PERSON_ID --not-theirs`): correlation never claims that account for that
-- person, and a new person avoids its username (they get another one, as a namesake should).
-- The identity may not be recorded yet (a new person waits for this decision), so no reference.
CREATE TABLE claim_refusals (
    target       TEXT NOT NULL,
    identity_id  TEXT NOT NULL,
    entry_key    TEXT NOT NULL,            -- the account's key as the target gave it
    entry_anchor TEXT,                     -- its anchor, which a rename or move keeps
    decided_at   TEXT NOT NULL,
    PRIMARY KEY (target, identity_id, entry_key)
);
