-- 0005: hourly rollups of the journey table, for funnels and insights. One row per hour
-- of start, flow, state, outcome, root cause, reached steps and segment, with how many
-- journeys share them. Segment values that are unknown are stored as '' (key columns
-- cannot hold NULL). Rollups are recomputed per hour from the journey table: every write
-- of a journey marks the hours it started in (before and after the write) dirty, and the
-- server recomputes dirty hours once they have ended; queries read clean hours from here
-- and dirty or partial hours from the journey table, so answers stay exact.

CREATE TABLE journey_rollups (
    flow            TEXT NOT NULL,
    hour            BIGINT NOT NULL,      -- started_at / 3,600,000
    state           TEXT NOT NULL,
    outcome         TEXT NOT NULL,
    root_cause      TEXT NOT NULL,
    steps           BIGINT NOT NULL,
    desktop_os      TEXT NOT NULL,
    desktop_browser TEXT NOT NULL,
    desktop_form    TEXT NOT NULL,
    mobile_os       TEXT NOT NULL,
    mobile_browser  TEXT NOT NULL,
    app_version     TEXT NOT NULL,
    journeys        BIGINT NOT NULL,
    PRIMARY KEY (flow, hour, state, outcome, root_cause, steps, desktop_os, desktop_browser, desktop_form,
                 mobile_os, mobile_browser, app_version)
);

CREATE TABLE rollup_dirty (
    hour BIGINT PRIMARY KEY
);

-- Journeys already stored: every hour they started in is dirty, so the server rolls them up.
INSERT INTO rollup_dirty (hour) SELECT DISTINCT started_at / 3600000 FROM journeys;

-- Time-to-session percentiles read this index alone (flow, then the ordered times).
CREATE INDEX journeys_convert ON journeys (flow, convert_ms, started_at) WHERE convert_ms IS NOT NULL;
