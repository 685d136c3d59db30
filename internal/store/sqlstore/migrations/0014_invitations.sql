-- Invitations: a short code an admin passes on, with which a person makes their own
-- account and lands in the invitation's groups. Only the code's hash is kept (the
-- code is shown once, like a token). group_ids is a space-separated list; a group
-- deleted meanwhile is skipped. uses counts accounts made with it, up to max_uses;
-- email or domain, when set, is what the new account's address must be.
CREATE TABLE invitations (
    id         TEXT PRIMARY KEY,
    code_hash  TEXT NOT NULL UNIQUE,
    group_ids  TEXT NOT NULL DEFAULT '',
    max_uses   INTEGER NOT NULL,
    uses       INTEGER NOT NULL DEFAULT 0,
    email      TEXT NOT NULL DEFAULT '',
    domain     TEXT NOT NULL DEFAULT '',
    note       TEXT NOT NULL DEFAULT '',
    created_by TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
