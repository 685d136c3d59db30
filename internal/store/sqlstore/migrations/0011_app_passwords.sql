-- App passwords: credentials a person makes for one client (a CalDAV app, a phone's
-- mail app, a script) that forward auth accepts as HTTP Basic or Bearer, on rules
-- that opt in, for the hosts listed here only (space-separated patterns). The secret is
-- 160 random bits, so its SHA-256 hash is enough; a name is unique per person.
CREATE TABLE app_passwords (
    id           TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    hash         TEXT NOT NULL UNIQUE,
    hosts        TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    last_used_at BIGINT NOT NULL DEFAULT 0,
    UNIQUE (user_id, name)
);

-- A person's OpenID Connect grants are listed (and all revoked) by user.
CREATE INDEX oidc_tokens_user ON oidc_tokens (user_id);
