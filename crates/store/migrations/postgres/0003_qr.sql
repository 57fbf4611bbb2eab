-- 0003: Handoff QR approval attempts. Tokens and the redemption secret are stored only as
-- SHA-256 digests. Every transition is a compare-and-set on `state`.

CREATE TABLE qr_attempts (
    id                TEXT PRIMARY KEY,
    journey_id        TEXT NOT NULL,
    state             TEXT NOT NULL,
    token_digest      TEXT NOT NULL UNIQUE,
    token_expires_at  BIGINT NOT NULL,
    rotations         BIGINT NOT NULL,
    redeem_digest     TEXT NOT NULL,
    match_code        BIGINT NOT NULL,
    identifier        TEXT,
    desktop_os        TEXT NOT NULL,
    desktop_browser   TEXT NOT NULL,
    desktop_form      TEXT NOT NULL,
    desktop_ip        TEXT,
    desktop_ua        TEXT,
    created_at        BIGINT NOT NULL,
    expires_at        BIGINT NOT NULL,
    claimed_session   TEXT,
    claimed_user      TEXT,
    phone_ip          TEXT,
    reason            TEXT,
    updated_at        BIGINT NOT NULL
);
CREATE INDEX qr_attempts_due ON qr_attempts (state, expires_at);
