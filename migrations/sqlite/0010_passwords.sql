-- First passwords enid set on accounts it created, kept until a school admin hands them out
-- (`enid passwords show`) or they expire. Sealed with a key derived from the id key, which
-- lives outside this database: a copy of the state alone reveals no password. A row is bound to
-- its target and identity (the authenticated data of the seal), so it cannot be moved to another.
CREATE TABLE passwords (
    target       TEXT NOT NULL,
    identity_id  TEXT NOT NULL REFERENCES identities(id),
    school       TEXT NOT NULL,            -- comma-separated school units, for the hand-out
    sealed       BLOB NOT NULL,            -- XChaCha20-Poly1305: nonce (24 bytes) then ciphertext
    created_at   TEXT NOT NULL,
    PRIMARY KEY (target, identity_id)
);
