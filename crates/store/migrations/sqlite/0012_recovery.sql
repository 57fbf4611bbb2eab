-- 0012: nobody locked out (PRODUCT §7; issue #22). One-time email codes (the code is an
-- HMAC under a server secret: a 6-digit code's plain digest would fall to a dictionary);
-- an attempt is stored for unknown identifiers too (user_id NULL), so the answer and the
-- work done are the same either way. Recovery codes and operator recovery links are
-- SHA-256 digests of high-entropy values, single use. The mail queue holds outgoing mail
-- until the worker has handed it to the SMTP server (retried with backoff); a queued row
-- for an unknown identifier is written as 'discarded', with no address.

CREATE TABLE email_codes (
    id          TEXT PRIMARY KEY,
    user_id     TEXT REFERENCES users(id) ON DELETE CASCADE,
    code_digest TEXT NOT NULL,
    journey_id  TEXT NOT NULL,
    tries       INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    used_at     INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX email_codes_by_expiry ON email_codes (expires_at);

CREATE TABLE recovery_codes (
    user_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    digest     TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    used_at    INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, digest)
);

CREATE TABLE recovery_links (
    digest     TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    journey_id TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE mail_queue (
    id              TEXT PRIMARY KEY,
    to_address      TEXT NOT NULL,
    subject         TEXT NOT NULL,
    text_body       TEXT NOT NULL,
    html_body       TEXT NOT NULL,
    journey_id      TEXT NOT NULL,
    state           TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    locked_until    INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,
    created_at      INTEGER NOT NULL,
    sent_at         INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX mail_queue_due ON mail_queue (state, next_attempt_at);
