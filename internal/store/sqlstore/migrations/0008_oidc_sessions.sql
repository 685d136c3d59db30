-- A session's sid is what apps know the sign-in by (the ID token's "sid" claim). When
-- the same person signs in again in the same browser (a step-up, say) the new session
-- keeps the old one's sid, so the grants apps hold for that sign-in live on; a sign-in
-- ends, for apps, only when no unexpired session has its sid.
ALTER TABLE sessions ADD COLUMN sid TEXT NOT NULL DEFAULT '';
UPDATE sessions SET sid = id;
CREATE INDEX sessions_sid ON sessions (sid);

-- Apps that asked to hear, by OpenID Back-Channel Logout, when a sign-in they were
-- given ends. A row waits here while the sign-in lasts; once it has ended, one replica
-- at a time claims the row (next_at moves forward with each attempt), posts a logout
-- token to the app, and deletes the row when the app accepts it or after the last try.
CREATE TABLE oidc_logouts (
    sid       TEXT NOT NULL,
    client_id TEXT NOT NULL,
    user_id   TEXT NOT NULL,
    attempts  INTEGER NOT NULL DEFAULT 0,
    next_at   BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (sid, client_id)
);
CREATE INDEX oidc_logouts_next ON oidc_logouts (next_at);
