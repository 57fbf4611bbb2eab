-- 0013: email verification at sign-up (PRODUCT §7; issue #22). When the operator turns it
-- on, a new account whose identifier is an email address is mailed a single-use link
-- (a 256-bit token kept as its SHA-256 digest, 24 hours); using it verifies the address,
-- and ID tokens then say email_verified. An account is verified when one of its links
-- was used.

CREATE TABLE email_verifications (
    digest     TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    address    TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX email_verifications_by_user ON email_verifications (user_id);
