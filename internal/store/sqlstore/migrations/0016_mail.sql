-- Email: mails wait here, written in the transaction of the change that sends them,
-- until the replica holding the "mail" lease hands them to the SMTP server; a failure
-- is tried again with growing pauses (state pending), up to a day (then failed).
CREATE TABLE mail_outbox (
    id          {{serial}},
    kind        TEXT NOT NULL,
    to_addr     TEXT NOT NULL,
    subject     TEXT NOT NULL,
    text_body   TEXT NOT NULL,
    html_body   TEXT NOT NULL DEFAULT '',
    state       TEXT NOT NULL DEFAULT 'pending',
    attempts    INTEGER NOT NULL DEFAULT 0,
    created_at  BIGINT NOT NULL,
    next_at     BIGINT NOT NULL,
    finished_at BIGINT NOT NULL DEFAULT 0,
    last_error  TEXT NOT NULL DEFAULT ''
);
CREATE INDEX mail_outbox_due ON mail_outbox (next_at) WHERE state = 'pending';

-- What a one-time link does: signin (an admin's sign-in link), reset (a forgotten
-- password: it also ends the person's other sessions) or verify (confirms the address
-- waiting in users.email_pending).
ALTER TABLE signin_links ADD COLUMN purpose TEXT NOT NULL DEFAULT 'signin';
