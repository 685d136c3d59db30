-- Leases let exactly one replica run a background job at a time: a row per job, held
-- until expires_at (unix microseconds) unless its holder renews it.
CREATE TABLE leases (
    name       TEXT PRIMARY KEY,
    holder     TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
