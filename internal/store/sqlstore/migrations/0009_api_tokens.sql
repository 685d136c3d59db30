-- Tokens for the admin HTTP API (/api/v1). Only a SHA-256 hash of each is kept (the
-- token is 256 random bits, so a fast hash is enough); scopes are space-separated;
-- expires_at 0 means "never", which only an explicit request gives.
CREATE TABLE api_tokens (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL UNIQUE,
    hash         TEXT NOT NULL UNIQUE,
    scopes       TEXT NOT NULL,
    created_by   TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    last_used_at BIGINT NOT NULL DEFAULT 0,
    last_used_ip TEXT NOT NULL DEFAULT ''
);
