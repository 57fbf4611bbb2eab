-- 0007: rate-limit counters shared by every instance (issue #18): one row per limited key
-- (a limit's name and a client's /64 or IPv4 address, or an identifier's digest) and
-- one-minute window. A request raises its row with one upsert; rows of past windows are
-- purged every minute. On SQLite (one instance) the server counts in memory instead.

CREATE TABLE rate_counters (
    key          TEXT NOT NULL,
    window_start BIGINT NOT NULL,
    hits         BIGINT NOT NULL,
    PRIMARY KEY (key, window_start)
);
CREATE INDEX rate_counters_by_window ON rate_counters (window_start);
