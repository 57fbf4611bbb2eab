-- 0011: Standard Webhooks with a durable outbox (PRODUCT §6.4; issue #21 part 2;
-- docs/decisions/0016-webhooks.md). Endpoints the operator subscribed, the event types each
-- wants, and one delivery row per endpoint per message: the outbox. A change and the
-- deliveries that report it are written in the same transaction, by an INSERT … SELECT from
-- the subscriptions (so no subscriber means no row). The secret is kept as given: signing
-- needs it. Number 0010 is the device grant's.

CREATE TABLE webhook_endpoints (
    id                   TEXT PRIMARY KEY,
    url                  TEXT NOT NULL,
    secret               TEXT NOT NULL,
    source               TEXT NOT NULL,           -- operator | config
    created_at           BIGINT NOT NULL,
    consecutive_failures BIGINT NOT NULL DEFAULT 0,
    failing_since        BIGINT                  -- NULL: healthy
);

CREATE TABLE webhook_subscriptions (
    event_type  TEXT NOT NULL,
    endpoint_id TEXT NOT NULL REFERENCES webhook_endpoints(id) ON DELETE CASCADE,
    PRIMARY KEY (event_type, endpoint_id)
);

CREATE TABLE webhook_deliveries (
    id              BIGSERIAL PRIMARY KEY,
    endpoint_id     TEXT NOT NULL REFERENCES webhook_endpoints(id) ON DELETE CASCADE,
    message_id      TEXT NOT NULL,
    event_type      TEXT NOT NULL,
    payload         TEXT NOT NULL,                -- the body sent: {"type","timestamp","data"}
    created_at      BIGINT NOT NULL,
    state           TEXT NOT NULL,                -- pending | delivered | dead
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    retry_from      BIGINT NOT NULL,             -- start of the retry window (created, or redelivered)
    locked_until    BIGINT NOT NULL DEFAULT 0,   -- a worker's lease
    last_status     BIGINT,
    last_error      TEXT,
    delivered_at    BIGINT,
    UNIQUE (endpoint_id, message_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE state = 'pending';
CREATE INDEX webhook_deliveries_recent ON webhook_deliveries (endpoint_id, id);
