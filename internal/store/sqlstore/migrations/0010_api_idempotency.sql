-- Idempotency keys of the admin API: a create sent again with the same
-- Idempotency-Key by the same token gets the first answer again instead of a second
-- object or a conflict. status 0 marks a request still in progress. Rows older than a
-- day are swept by housekeeping.
CREATE TABLE api_idempotency (
    token_id     TEXT NOT NULL,
    key          TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    status       INTEGER NOT NULL DEFAULT 0,
    headers      TEXT NOT NULL DEFAULT '',
    body         TEXT NOT NULL DEFAULT '',
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (token_id, key)
);
CREATE INDEX api_idempotency_created ON api_idempotency (created_at);
