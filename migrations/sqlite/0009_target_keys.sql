-- Keys are the target's to give (a SCIM id, a Graph object id, an LDAP DN): a create whose
-- result is not known yet is recorded without one, and found again by the owner marker its
-- account carries. SQLite cannot drop NOT NULL in place, so both ownership tables are copied.
-- Every row keeps its key, anchor and status: nothing a plan compares changes.
CREATE TABLE accounts_new (
    target       TEXT NOT NULL,
    identity_id  TEXT NOT NULL REFERENCES identities(id),
    key          TEXT,                     -- as the target gave it (DN, id); NULL while pending
    anchor       TEXT,                     -- entryUUID, objectGUID, SCIM id
    status       TEXT NOT NULL,            -- pending | active | disabled
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    disabled_at  TEXT,
    PRIMARY KEY (target, identity_id)
);
INSERT INTO accounts_new (target, identity_id, key, anchor, status, created_at, updated_at, disabled_at)
    SELECT target, identity_id, key, anchor, status, created_at, updated_at, disabled_at FROM accounts;
DROP TABLE accounts;
ALTER TABLE accounts_new RENAME TO accounts;

CREATE TABLE groups_new (
    target       TEXT NOT NULL,
    name         TEXT NOT NULL,
    key          TEXT,                     -- as the target gave it; NULL while pending
    anchor       TEXT,
    school       TEXT NOT NULL,            -- school unit, for logs
    status       TEXT NOT NULL,            -- pending | active
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    PRIMARY KEY (target, name)
);
INSERT INTO groups_new (target, name, key, anchor, school, status, created_at, updated_at)
    SELECT target, name, key, anchor, school, status, created_at, updated_at FROM groups;
DROP TABLE groups;
ALTER TABLE groups_new RENAME TO groups;
