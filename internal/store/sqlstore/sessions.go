package sqlstore

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/gatehouse-id/gatehouse/internal/store"
)

const sessionColumns = "id, token_hash, user_id, auth_method, created_at, expires_at, last_seen_at, ip, user_agent, sid"

func scanSession(r scanner) (store.Session, error) {
	var ss store.Session
	dest, done := sessionFields(&ss)
	err := r.Scan(dest...)
	done()
	return ss, err
}

// sessionFields are the scan destinations of sessionColumns; done converts what
// they read into ss.
func sessionFields(ss *store.Session) (dest []any, done func()) {
	var created, expires, seen int64
	return []any{&ss.ID, &ss.TokenHash, &ss.UserID, &ss.AuthMethod, &created, &expires, &seen, &ss.IP, &ss.UserAgent, &ss.SID},
		func() { ss.CreatedAt, ss.ExpiresAt, ss.LastSeenAt = fromDB(created), fromDB(expires), fromDB(seen) }
}

// signedInSQL reads a session, its user and the user's direct groups in one
// statement: a row per membership, or one with a NULL group when there is none.
var signedInSQL = "SELECT " + qualified("s", sessionColumns) + ", " + qualified("u", userColumns) +
	", m.group_id FROM sessions s JOIN users u ON u.id = s.user_id LEFT JOIN memberships m ON m.user_id = s.user_id" +
	" WHERE s.token_hash = $1 ORDER BY m.group_id"

// qualified prefixes each of a comma-separated column list with a table alias.
func qualified(alias, columns string) string {
	parts := strings.Split(columns, ", ")
	for i, c := range parts {
		parts[i] = alias + "." + c
	}
	return strings.Join(parts, ", ")
}

// SignedIn reads what a session's first sight needs in one query (three before:
// the session, its user, the user's groups), which is most of a first sight's cost.
func (s *Store) SignedIn(ctx context.Context, tokenHash string) (store.Session, store.User, []string, error) {
	var ss store.Session
	var u store.User
	rows, err := s.conn().query(ctx, signedInSQL, tokenHash)
	if err != nil {
		return ss, u, nil, s.mapErr(err, "session")
	}
	defer rows.Close()
	sDest, sDone := sessionFields(&ss)
	uDest, uDone := userFields(&u)
	var group sql.NullString
	dest := append(append(sDest, uDest...), &group)
	groups := []string{}
	found := false
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return ss, u, nil, s.mapErr(err, "session")
		}
		found = true
		if group.Valid {
			groups = append(groups, group.String)
		}
	}
	if err := rows.Err(); err != nil {
		return ss, u, nil, s.mapErr(err, "session")
	}
	if !found {
		return ss, u, nil, store.ErrNotFound
	}
	sDone()
	uDone()
	return ss, u, groups, nil
}

// CreateSession stores a new session; the caller chooses ID and TokenHash.
func (s *Store) CreateSession(ctx context.Context, ss store.Session) error {
	return s.createSession(ctx, s.conn(), ss)
}

func (s *Store) createSession(ctx context.Context, c counted, ss store.Session) error {
	_, err := c.exec(ctx, "INSERT INTO sessions ("+sessionColumns+") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
		ss.ID, ss.TokenHash, ss.UserID, ss.AuthMethod, toDB(ss.CreatedAt), toDB(ss.ExpiresAt), toDB(ss.LastSeenAt), ss.IP, ss.UserAgent, cmp.Or(ss.SID, ss.ID))
	return s.mapErr(err, "session")
}

// SessionByTokenHash finds a session by the hash of its cookie value.
func (s *Store) SessionByTokenHash(ctx context.Context, tokenHash string) (store.Session, error) {
	ss, err := scanSession(s.conn().queryRow(ctx, "SELECT "+sessionColumns+" FROM sessions WHERE token_hash = $1", tokenHash))
	return ss, s.mapErr(err, "session")
}

// SessionByID finds a session by its public id.
func (s *Store) SessionByID(ctx context.Context, id string) (store.Session, error) {
	ss, err := scanSession(s.conn().queryRow(ctx, "SELECT "+sessionColumns+" FROM sessions WHERE id = $1", id))
	return ss, s.mapErr(err, "session "+quote(id))
}

// ListSessions returns a user's sessions (all sessions for ""), newest first.
func (s *Store) ListSessions(ctx context.Context, userID string) ([]store.Session, error) {
	q, args := "SELECT "+sessionColumns+" FROM sessions ORDER BY created_at DESC", []any{}
	if userID != "" {
		q, args = "SELECT "+sessionColumns+" FROM sessions WHERE user_id = $1 ORDER BY created_at DESC", []any{userID}
	}
	rows, err := s.conn().query(ctx, q, args...)
	if err != nil {
		return nil, s.mapErr(err, "listing sessions")
	}
	return collect(rows, scanSession)
}

// DeleteSession removes one session by public id.
func (s *Store) DeleteSession(ctx context.Context, id string) error {
	return s.mustAffect(ctx, "session "+quote(id), "DELETE FROM sessions WHERE id = $1", id)
}

// DeleteUserSessions removes every session of a user and says how many there were.
func (s *Store) DeleteUserSessions(ctx context.Context, userID string) (int, error) {
	n, err := s.conn().execAffected(ctx, "DELETE FROM sessions WHERE user_id = $1", userID)
	return n, s.mapErr(err, "sessions of user")
}

// TouchSessions writes coalesced last-seen times in one transaction.
func (s *Store) TouchSessions(ctx context.Context, seen map[string]time.Time) error {
	if len(seen) == 0 {
		return nil
	}
	// In key order: two replicas writing overlapping batches then lock rows in the
	// same order, and cannot deadlock each other.
	hashes := slices.Sorted(maps.Keys(seen))
	return s.inTx(ctx, func(c counted, _ *sql.Tx) error {
		for _, hash := range hashes {
			at := seen[hash]
			if _, err := c.exec(ctx, "UPDATE sessions SET last_seen_at = $1 WHERE token_hash = $2 AND last_seen_at < $1", toDB(at), hash); err != nil {
				return s.mapErr(err, "session last-seen")
			}
		}
		return nil
	})
}

// DeleteExpiredSessions removes sessions past their expiry.
func (s *Store) DeleteExpiredSessions(ctx context.Context, now time.Time) (int, error) {
	n, err := s.conn().execAffected(ctx, "DELETE FROM sessions WHERE expires_at <= $1", toDB(now))
	return n, s.mapErr(err, "expired sessions")
}

// CountActiveSessions counts unexpired sessions.
func (s *Store) CountActiveSessions(ctx context.Context, now time.Time) (int, error) {
	var n int
	err := s.conn().queryRow(ctx, "SELECT COUNT(*) FROM sessions WHERE expires_at > $1", toDB(now)).Scan(&n)
	return n, s.mapErr(err, "counting sessions")
}

// CreateSetupToken stores the hash of a first-admin setup token.
func (s *Store) CreateSetupToken(ctx context.Context, tokenHash string, expires time.Time) error {
	_, err := s.conn().exec(ctx, "INSERT INTO setup_tokens (token_hash, expires_at) VALUES ($1, $2)", tokenHash, toDB(expires))
	return s.mapErr(err, "setup token")
}

// SetupTokenValid reports whether an unexpired token with this hash exists.
func (s *Store) SetupTokenValid(ctx context.Context, tokenHash string, now time.Time) (bool, error) {
	var n int
	err := s.conn().queryRow(ctx, "SELECT COUNT(*) FROM setup_tokens WHERE token_hash = $1 AND expires_at > $2", tokenHash, toDB(now)).Scan(&n)
	return n > 0, s.mapErr(err, "setup token")
}

// CompleteSetup consumes a setup token and creates the first admin in one transaction:
// either the admin exists with a group and no token is left, or nothing changed.
func (s *Store) CompleteSetup(ctx context.Context, tokenHash string, now time.Time, u store.User, adminGroup string) (store.SetupResult, error) {
	var res store.SetupResult
	err := s.inTx(ctx, func(c counted, _ *sql.Tx) error {
		n, err := c.execAffected(ctx, "DELETE FROM setup_tokens WHERE token_hash = $1 AND expires_at > $2", tokenHash, toDB(now))
		if err != nil {
			return s.mapErr(err, "setup token")
		}
		if n == 0 {
			return fmt.Errorf("setup link: %w (it was used already or has expired: restart gatehouse for a new one)", store.ErrNotFound)
		}
		if _, err := c.exec(ctx, "DELETE FROM setup_tokens"); err != nil {
			return s.mapErr(err, "setup tokens")
		}
		if res.User, err = s.createUser(ctx, c, u); err != nil {
			return err
		}
		if res.Group, err = s.groupByName(ctx, c, adminGroup); err != nil {
			if res.Group, err = s.createGroup(ctx, c, store.Group{Name: adminGroup}); err != nil {
				return err
			}
		}
		_, err = c.exec(ctx, "INSERT INTO memberships (group_id, user_id) VALUES ($1, $2)", res.Group.ID, res.User.ID)
		return s.mapErr(err, "membership")
	})
	return res, err
}

// Setting returns the value stored under key; ErrNotFound when there is none.
func (s *Store) Setting(ctx context.Context, key string) (string, error) {
	var v string
	err := s.conn().queryRow(ctx, "SELECT value FROM settings WHERE key = $1", key).Scan(&v)
	return v, s.mapErr(err, "setting "+quote(key))
}

// DeleteSetting removes the value stored under key, if any.
func (s *Store) DeleteSetting(ctx context.Context, key string) error {
	_, err := s.conn().exec(ctx, "DELETE FROM settings WHERE key = $1", key)
	return s.mapErr(err, "setting "+quote(key))
}

// EnsureSetting stores value under key unless it exists, and returns the stored value.
func (s *Store) EnsureSetting(ctx context.Context, key, value string) (string, error) {
	c := s.conn()
	if _, err := c.exec(ctx, "INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT DO NOTHING", key, value); err != nil {
		return "", s.mapErr(err, "setting "+quote(key))
	}
	var v string
	err := c.queryRow(ctx, "SELECT value FROM settings WHERE key = $1", key).Scan(&v)
	return v, s.mapErr(err, "setting "+quote(key))
}

// SessionsBySID returns the sessions that carry a sign-in's sid, expired or not.
func (s *Store) SessionsBySID(ctx context.Context, sid string) ([]store.Session, error) {
	rows, err := s.conn().query(ctx, "SELECT "+sessionColumns+" FROM sessions WHERE sid = $1 ORDER BY created_at DESC", sid)
	if err != nil {
		return nil, s.mapErr(err, "sessions of sign-in "+quote(sid))
	}
	return collect(rows, scanSession)
}
