-- Failed guesses of anything a client can guess (a password, a second-factor code, a
-- client secret, a device code, a setup link), counted per key in a fixed window. The
-- table is shared by every replica, so three replicas allow no more guesses than one.
-- A key names what is guessed and by whom ("password|net:203.0.113.7|user:alice").
-- Rows whose window has ended are swept by housekeeping, so the table stays bounded
-- by the guessing rate times the window.
CREATE TABLE throttle (
    key          TEXT PRIMARY KEY,
    failures     INTEGER NOT NULL,
    window_start BIGINT NOT NULL
);
CREATE INDEX throttle_window ON throttle (window_start);
