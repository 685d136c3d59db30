-- Audit events are also the outbox the JSON log reads from: a change writes its event
-- in its own transaction, and a replica claims unlogged events (logged_at 0) and logs
-- them, so an event is logged once it is committed, and only then, whichever process
-- made it (a CLI command too). Events written before this migration were logged when
-- they happened. target_id is the id of what the event is about (a user's, a group's)
-- beside its name in target; fields holds the event's data as a JSON object.
ALTER TABLE events ADD COLUMN target_id TEXT NOT NULL DEFAULT '';
ALTER TABLE events ADD COLUMN fields TEXT NOT NULL DEFAULT '';
ALTER TABLE events ADD COLUMN logged_at BIGINT NOT NULL DEFAULT 1;
CREATE INDEX events_unlogged ON events (id) WHERE logged_at = 0;
