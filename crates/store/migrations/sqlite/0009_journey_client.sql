-- 0009: a journey records the application it signed in to (the OIDC client id, from the
-- provider's `oidc.code_issued` event; issue #20), so funnels and the dashboard can break
-- down by client. The rollups get the same key column: they are recomputed from the
-- journey table, so the table is made again and every hour marked for recounting.

ALTER TABLE journeys ADD COLUMN client TEXT;

DROP TABLE journey_rollups;
CREATE TABLE journey_rollups (
    flow            TEXT NOT NULL,
    hour            INTEGER NOT NULL,      -- started_at / 3,600,000
    state           TEXT NOT NULL,
    outcome         TEXT NOT NULL,
    root_cause      TEXT NOT NULL,
    steps           INTEGER NOT NULL,
    desktop_os      TEXT NOT NULL,
    desktop_browser TEXT NOT NULL,
    desktop_form    TEXT NOT NULL,
    mobile_os       TEXT NOT NULL,
    mobile_browser  TEXT NOT NULL,
    app_version     TEXT NOT NULL,
    client          TEXT NOT NULL,
    journeys        INTEGER NOT NULL,
    PRIMARY KEY (flow, hour, state, outcome, root_cause, steps, desktop_os, desktop_browser, desktop_form,
                 mobile_os, mobile_browser, app_version, client)
);

INSERT INTO rollup_dirty (hour) SELECT DISTINCT started_at / 3600000 FROM journeys WHERE true ON CONFLICT (hour) DO NOTHING;
