-- 0001: accounts, passkeys (with where each one lives), single-use ceremony state,
-- server-side sessions (token digests only) and the security event log.
-- Times are milliseconds since the Unix epoch; flags are 0/1 integers so that one query
-- text serves SQLite and PostgreSQL.

CREATE TABLE users (
    id           TEXT PRIMARY KEY,
    identifier   TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    created_at   INTEGER NOT NULL
);

CREATE TABLE passkeys (
    credential_id         TEXT PRIMARY KEY,               -- base64url
    user_id               TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    credential            TEXT NOT NULL,                  -- webauthn-rs Credential, JSON
    counter               INTEGER NOT NULL,
    aaguid                TEXT NOT NULL,
    provider              TEXT NOT NULL,
    transports            TEXT NOT NULL,                  -- JSON array of strings
    attachment            TEXT,
    backup_eligible       INTEGER NOT NULL,
    backup_state          INTEGER NOT NULL,
    created_at            INTEGER NOT NULL,
    created_os            TEXT NOT NULL,
    created_browser       TEXT NOT NULL,
    created_form_factor   TEXT NOT NULL,
    last_used_at          INTEGER,
    last_used_os          TEXT,
    last_used_browser     TEXT,
    last_used_form_factor TEXT
);
CREATE INDEX passkeys_by_user ON passkeys (user_id, created_at);

CREATE TABLE ceremonies (
    id         TEXT PRIMARY KEY,
    kind       TEXT NOT NULL,
    payload    TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX ceremonies_by_expiry ON ceremonies (expires_at);

CREATE TABLE sessions (
    token_digest TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    verified_at  INTEGER NOT NULL,
    user_agent   TEXT,
    ip           TEXT
);
CREATE INDEX sessions_by_user ON sessions (user_id);
CREATE INDEX sessions_by_expiry ON sessions (expires_at);

CREATE TABLE security_events (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    kind       TEXT NOT NULL,
    user_id    TEXT,
    detail     TEXT NOT NULL,
    at         INTEGER NOT NULL,
    ip         TEXT,
    user_agent TEXT
);
CREATE INDEX security_events_by_user ON security_events (user_id, at);
