-- 0002: what the decision engine needs. Which browser (first-party device cookie) made
-- and last used each passkey; passkey attempts per identifier and browser (failures
-- pause passkeys there for a cooldown); product events (decision.made and the other
-- server steps, stored from the start so journeys can be built from them); server-wide
-- secrets (the key for plausible fake credentials of unknown identifiers); passkey-append
-- offers and skips.

ALTER TABLE passkeys ADD COLUMN created_device_id TEXT;
ALTER TABLE passkeys ADD COLUMN last_used_device_id TEXT;

CREATE TABLE attempts (
    identifier TEXT NOT NULL,
    device_id  TEXT NOT NULL,
    at         INTEGER NOT NULL,
    failed     INTEGER NOT NULL,
    detail     TEXT
);
CREATE INDEX attempts_by_browser ON attempts (identifier, device_id, at);

CREATE TABLE events (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,              -- arrival order
    event_id    TEXT NOT NULL UNIQUE,
    journey_id  TEXT NOT NULL,
    name        TEXT NOT NULL,
    device      TEXT NOT NULL,
    flow        TEXT,
    ts          INTEGER NOT NULL,
    received_at INTEGER NOT NULL,
    attrs       TEXT NOT NULL,
    os          TEXT,
    browser     TEXT,
    form_factor TEXT,
    app_version TEXT
);
CREATE INDEX events_by_journey ON events (journey_id, received_at);

CREATE TABLE secrets (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE append_offers (
    user_id   TEXT NOT NULL,
    device_id TEXT NOT NULL,
    at        INTEGER NOT NULL,
    action    TEXT NOT NULL
);
CREATE INDEX append_offers_by_user ON append_offers (user_id, at);
