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

-- Accounts an operator claimed by hand outside the target's scope (`enid adopt --entry` of an
-- entry elsewhere): the next apply moves them into their place, on a target that places accounts.
-- Without this row an owned account outside the scope was moved out by hand (or the scope
-- changed), and is left alone. A row goes once its account is seen in the scope.
CREATE TABLE outside_claims (
    target       TEXT NOT NULL,
    identity_id  TEXT NOT NULL,
    claimed_at   TEXT NOT NULL,
    PRIMARY KEY (target, identity_id)
);
