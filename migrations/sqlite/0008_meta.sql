-- The state's own settings, such as the fingerprint of the id key the identities were made with.
CREATE TABLE meta (
    key          TEXT PRIMARY KEY,
    value        TEXT NOT NULL
);
