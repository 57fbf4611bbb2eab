-- 0010: the device authorization grant (RFC 8628, PRODUCT §6.2; issue #21). One row per
-- device sign-in: the device code and the user code are kept only as SHA-256 digests;
-- every step (claimed by a signed-in browser, approved, denied, redeemed, expired) is a
-- compare-and-set on `state`, like QR approval. `interval_ms` grows by 5 s at every
-- poll that came too early (`slow_down`).

CREATE TABLE device_authorizations (
    id                 TEXT PRIMARY KEY,
    device_code_digest TEXT NOT NULL UNIQUE,
    user_code_digest   TEXT NOT NULL UNIQUE,
    client_id          TEXT NOT NULL REFERENCES oidc_clients(id) ON DELETE CASCADE,
    scope              TEXT NOT NULL,
    journey_id         TEXT NOT NULL,
    state              TEXT NOT NULL,
    device_ip          TEXT,
    device_ua          TEXT,
    created_at         BIGINT NOT NULL,
    expires_at         BIGINT NOT NULL,
    interval_ms        BIGINT NOT NULL,
    polled_at          BIGINT NOT NULL DEFAULT 0,
    claimed_session    TEXT,
    claimed_user       TEXT REFERENCES users(id) ON DELETE CASCADE,
    claimed_ip         TEXT,
    claimed_via        TEXT,
    approved_at        BIGINT NOT NULL DEFAULT 0,
    reason             TEXT,
    updated_at         BIGINT NOT NULL
);
CREATE INDEX device_authorizations_due ON device_authorizations (state, expires_at);
