-- 0004: journeys. One row per sign-in attempt, kept up to date as its events arrive (in
-- the transaction that stores them): the folded facts as JSON, which the diagnosis reads,
-- and the columns that searches and funnels filter and group on, derived from the facts.
-- Events are now unique per journey (client event ids are the client's, scoped to its
-- journey), and that one index also serves reading a journey's events.

CREATE TABLE journeys (
    journey_id      TEXT PRIMARY KEY,
    flow            TEXT,
    identifier      TEXT,
    state           TEXT NOT NULL DEFAULT 'open',   -- open | finished
    outcome         TEXT,                           -- success | abandoned | failed
    root_cause      TEXT,
    basis           TEXT,                           -- observed | inferred
    started_at      BIGINT NOT NULL,
    last_at         BIGINT NOT NULL,
    finished_at     BIGINT,
    steps           BIGINT NOT NULL DEFAULT 0,        -- bit i: step i of the flow happened
    convert_ms      BIGINT,
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

ALTER TABLE events DROP CONSTRAINT events_event_id_key;
DROP INDEX events_by_journey;
CREATE UNIQUE INDEX events_by_journey ON events (journey_id, event_id);
