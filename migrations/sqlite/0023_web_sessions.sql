-- Sessions of the web page that `enid run` serves with `[server]`: signed in with an API token,
-- kept here so that a restart of the service keeps them. Only the SHA-256 of the session cookie
-- is kept (a copy of the state opens no session); the session is its token's: a revoked token
-- ends it. `csrf` is what every form of the session carries back.
CREATE TABLE web_sessions (
    id          TEXT PRIMARY KEY,          -- lowercase hex SHA-256 of the cookie's value
    token_name  TEXT NOT NULL REFERENCES api_tokens (name),
    csrf        TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL
);
CREATE INDEX web_sessions_expiry ON web_sessions (expires_at);
