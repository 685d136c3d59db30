-- Email addresses are unique ignoring letter case, and an address a person typed for
-- themselves waits in email_pending until it is confirmed (an admin's change counts as
-- confirmed): headers and ID-token claims only ever carry a confirmed address, so
-- nobody can become "the admin's email" to an app by typing it.
ALTER TABLE users ADD COLUMN email_pending TEXT NOT NULL DEFAULT '';

-- Before uniqueness, an address several accounts share stays with the oldest of them;
-- the others keep it as their pending address, so nothing typed is lost and an admin
-- can sort them out.
UPDATE users SET email_pending = email, email = ''
WHERE email <> '' AND EXISTS (
    SELECT 1 FROM users AS older
    WHERE lower(older.email) = lower(users.email)
      AND (older.created_at < users.created_at OR (older.created_at = users.created_at AND older.id < users.id))
);

CREATE UNIQUE INDEX users_email_key ON users (lower(email)) WHERE email <> '';
