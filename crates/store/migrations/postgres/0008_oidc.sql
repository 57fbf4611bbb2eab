-- 0008: Handoff as an identity provider (PRODUCT §6.1, §6.3; issue #20). Clients and the
-- consents people gave them; signing keys (the database is the key store, so every
-- instance signs with the same keys); authorization requests waiting for a sign-in;
-- grants (one per authorization, the family of every token issued from it); single-use
-- codes; access and refresh tokens; used sign-in proof ids. Codes, tokens and secrets
-- are SHA-256 digests. Lists are JSON arrays of strings.

CREATE TABLE oidc_clients (
    id                        TEXT PRIMARY KEY,
    name                      TEXT NOT NULL,
    secret_digest             TEXT,
    redirect_uris             TEXT NOT NULL,
    post_logout_redirect_uris TEXT NOT NULL,
    allowed_origins           TEXT NOT NULL,
    first_party               BIGINT NOT NULL,
    id_token_alg              TEXT NOT NULL,
    device                    BIGINT NOT NULL,
    source                    TEXT NOT NULL,
    created_at                BIGINT NOT NULL
);

CREATE TABLE oidc_consents (
    user_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    client_id  TEXT NOT NULL REFERENCES oidc_clients(id) ON DELETE CASCADE,
    scope      TEXT NOT NULL,
    granted_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, client_id, scope)
);

CREATE TABLE signing_keys (
    kid         TEXT PRIMARY KEY,
    alg         TEXT NOT NULL,
    private_jwk TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    retired_at  BIGINT
);

CREATE TABLE oidc_requests (
    id         TEXT PRIMARY KEY,
    payload    TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX oidc_requests_by_expiry ON oidc_requests (expires_at);

CREATE TABLE oidc_grants (
    id         TEXT PRIMARY KEY,
    client_id  TEXT NOT NULL REFERENCES oidc_clients(id) ON DELETE CASCADE,
    user_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    scope      TEXT NOT NULL,
    auth_time  BIGINT NOT NULL,
    amr        TEXT NOT NULL,
    sid        TEXT NOT NULL,
    nonce      TEXT,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX oidc_grants_by_expiry ON oidc_grants (expires_at);
CREATE INDEX oidc_grants_by_user ON oidc_grants (user_id);

CREATE TABLE oidc_codes (
    digest         TEXT PRIMARY KEY,
    grant_id       TEXT NOT NULL REFERENCES oidc_grants(id) ON DELETE CASCADE,
    client_id      TEXT NOT NULL,
    redirect_uri   TEXT NOT NULL,
    code_challenge TEXT,
    expires_at     BIGINT NOT NULL,
    used_at        BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX oidc_codes_by_grant ON oidc_codes (grant_id);

CREATE TABLE oidc_tokens (
    digest     TEXT PRIMARY KEY,
    grant_id   TEXT NOT NULL REFERENCES oidc_grants(id) ON DELETE CASCADE,
    client_id  TEXT NOT NULL,
    kind       TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    rotated_at BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX oidc_tokens_by_grant ON oidc_tokens (grant_id);

CREATE TABLE proof_ids (
    jti        TEXT PRIMARY KEY,
    expires_at BIGINT NOT NULL
);
CREATE INDEX proof_ids_by_expiry ON proof_ids (expires_at);
