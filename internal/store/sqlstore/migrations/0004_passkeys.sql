-- Passkeys and security keys (WebAuthn credentials), several per user, each with a
-- name the user chose. credential_id is the authenticator's id (base64url), unique
-- across users because a passwordless sign-in finds its user through it. data is the
-- credential record (public key, sign count, flags) as JSON.
CREATE TABLE passkeys (
    id            TEXT PRIMARY KEY,
    user_id       TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    credential_id TEXT NOT NULL UNIQUE,
    name          TEXT NOT NULL,
    data          TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    last_used_at  BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX passkeys_user ON passkeys (user_id);

-- WebAuthn challenges travel signed through the browser, so no row is written when a
-- sign-in starts; a challenge is recorded here once it has been answered, so the same
-- answer is never accepted twice. Rows older than their expiry are swept.
CREATE TABLE spent_challenges (
    hash       TEXT PRIMARY KEY,
    expires_at BIGINT NOT NULL
);
