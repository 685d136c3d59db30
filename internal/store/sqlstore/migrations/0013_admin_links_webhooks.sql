-- One-time sign-in links an admin makes for a person (one with no password, say): the
-- link signs them in once, within its lifetime, so they can set a password or add a
-- passkey. Only the token's hash is kept; the row goes with its user.
CREATE TABLE signin_links (
    token_hash TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_by TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX signin_links_user ON signin_links (user_id);

-- Webhooks read the same outbox as the JSON log: hooked_at 0 marks an event not yet
-- routed to the configured webhooks. Events written before this migration are not sent.
ALTER TABLE events ADD COLUMN hooked_at BIGINT NOT NULL DEFAULT 1;
CREATE INDEX events_unhooked ON events (id) WHERE hooked_at = 0;

-- One row per event and webhook: the body as it is signed and sent (kept here, so
-- pruning the audit log never loses a delivery), and where its attempts stand.
-- state is pending, delivered or failed; a pending row is claimed by moving next_at.
CREATE TABLE webhook_deliveries (
    id          {{serial}},
    webhook     TEXT NOT NULL,
    event_id    BIGINT NOT NULL,
    event_kind  TEXT NOT NULL,
    body        TEXT NOT NULL,
    state       TEXT NOT NULL DEFAULT 'pending',
    attempts    INTEGER NOT NULL DEFAULT 0,
    created_at  BIGINT NOT NULL,
    next_at     BIGINT NOT NULL,
    finished_at BIGINT NOT NULL DEFAULT 0,
    last_status INTEGER NOT NULL DEFAULT 0,
    last_error  TEXT NOT NULL DEFAULT '',
    UNIQUE (webhook, event_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_at) WHERE state = 'pending';
