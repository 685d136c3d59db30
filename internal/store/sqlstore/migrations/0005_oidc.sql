-- OpenID Connect. Signing keys are shared by every replica (so each serves the same
-- JWKS); their private halves are encrypted with the server secret.
CREATE TABLE oidc_keys (
    id          TEXT PRIMARY KEY,
    algorithm   TEXT NOT NULL,
    private_key TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);

-- Every credential the provider hands out: authorization codes, access and refresh
-- tokens, device codes and the user codes people type for them. Only a SHA-256 hash
-- of each is stored. A family is one grant (a code and everything issued from it, or
-- one device authorization): reusing a spent code or refresh token revokes the family.
CREATE TABLE oidc_tokens (
    hash       TEXT PRIMARY KEY,
    kind       TEXT NOT NULL,
    client_id  TEXT NOT NULL,
    user_id    TEXT NOT NULL DEFAULT '',
    family     TEXT NOT NULL,
    scope      TEXT NOT NULL DEFAULT '',
    data       TEXT NOT NULL DEFAULT '{}',
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX oidc_tokens_family ON oidc_tokens (family);
CREATE INDEX oidc_tokens_expiry ON oidc_tokens (expires_at);

-- Consent a user gave a client (explicit-consent clients only), with the scopes.
CREATE TABLE oidc_consents (
    user_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    client_id  TEXT NOT NULL,
    scope      TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, client_id)
);
