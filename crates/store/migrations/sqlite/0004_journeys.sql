-- 0004: journeys. One row per sign-in attempt, kept up to date as its events arrive (in
-- the transaction that stores them): the folded facts as JSON, which the diagnosis reads,
-- and the columns that searches and funnels filter and group on, derived from the facts.
-- Events are now unique per journey (client event ids are the client's, scoped to its
-- journey), and that one index also serves reading a journey's events: the table keeps
-- two b-trees instead of three, and only one of them is written at random.

CREATE TABLE journeys (
    journey_id      TEXT PRIMARY KEY,
    flow            TEXT,
    identifier      TEXT,
    state           TEXT NOT NULL DEFAULT 'open',   -- open | finished
    outcome         TEXT,                           -- success | abandoned | failed
    root_cause      TEXT,
    basis           TEXT,                           -- observed | inferred
    started_at      INTEGER NOT NULL,
    last_at         INTEGER NOT NULL,
    finished_at     INTEGER,
    steps           INTEGER NOT NULL DEFAULT 0,        -- bit i: step i of the flow happened
    convert_ms      INTEGER,
    desktop_os      TEXT,
    desktop_browser TEXT,
    desktop_form    TEXT,
    mobile_os       TEXT,
    mobile_browser  TEXT,
    app_version     TEXT,
    facts           TEXT NOT NULL
);
CREATE INDEX journeys_open ON journeys (last_at) WHERE state = 'open';
CREATE INDEX journeys_by_start ON journeys (started_at, journey_id);
CREATE INDEX journeys_by_identifier ON journeys (identifier, started_at);

CREATE TABLE events_by_journey_tmp (
    seq         INTEGER PRIMARY KEY,                            -- arrival order
    event_id    TEXT NOT NULL,
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
INSERT INTO events_by_journey_tmp
    SELECT seq, event_id, journey_id, name, device, flow, ts, received_at, attrs, os, browser, form_factor, app_version
    FROM events;
DROP TABLE events;
ALTER TABLE events_by_journey_tmp RENAME TO events;
CREATE UNIQUE INDEX events_by_journey ON events (journey_id, event_id);
