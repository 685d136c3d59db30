-- Sign-in with other identity providers. An upstream identity (a provider's id and
-- the subject it names a person by) is linked to one account; the pair is unique.
CREATE TABLE upstream_identities (
    provider   TEXT NOT NULL,
    subject    TEXT NOT NULL,
    user_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    email      TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL,
    PRIMARY KEY (provider, subject)
);
CREATE INDEX upstream_identities_user ON upstream_identities (user_id);

-- A sign-in on its way through a provider, by the hash of its state: what it is for
-- (sign in, link to user_id, or join with the invitation whose code hashes to
-- invitation), its nonce and PKCE verifier, and where to go after. Held here, not in
-- the browser, so nothing is lost on the way; used once, and gone after ten minutes.
CREATE TABLE upstream_flows (
    state_hash  TEXT PRIMARY KEY,
    provider    TEXT NOT NULL,
    intent      TEXT NOT NULL,
    user_id     TEXT NOT NULL DEFAULT '',
    invitation  TEXT NOT NULL DEFAULT '',
    nonce       TEXT NOT NULL,
    verifier    TEXT NOT NULL,
    return_to   TEXT NOT NULL DEFAULT '',
    expires_at  BIGINT NOT NULL
);
