package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/gatehouse-id/gatehouse/internal/store"
)

const userColumns = "id, username, email, email_pending, display_name, password_hash, disabled, created_at, updated_at"

type scanner interface{ Scan(dest ...any) error }

func scanUser(r scanner) (store.User, error) {
	var u store.User
	dest, done := userFields(&u)
	err := r.Scan(dest...)
	done()
	return u, err
}

// userFields are the scan destinations of userColumns; done converts what they read
// into u.
func userFields(u *store.User) (dest []any, done func()) {
	var created, updated int64
	var disabled int
	return []any{&u.ID, &u.Username, &u.Email, &u.EmailPending, &u.DisplayName, &u.PasswordHash, &disabled, &created, &updated},
		func() {
			u.Disabled = disabled != 0
			u.CreatedAt, u.UpdatedAt = fromDB(created), fromDB(updated)
		}
}

// usernameKey is what makes usernames unique regardless of letter case.
func usernameKey(username string) string { return strings.ToLower(username) }

// CreateUser inserts u with a new id; ErrConflict when the username is taken.
func (s *Store) CreateUser(ctx context.Context, u store.User) (store.User, error) {
	return s.createUser(ctx, s.conn(), u)
}

func (s *Store) createUser(ctx context.Context, c counted, u store.User) (store.User, error) {
	now := time.Now().UTC().Truncate(time.Microsecond)
	u.ID, u.CreatedAt, u.UpdatedAt = NewID(), now, now
	_, err := c.exec(ctx, "INSERT INTO users ("+userColumns+", username_key) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
		u.ID, u.Username, u.Email, u.EmailPending, u.DisplayName, u.PasswordHash, boolDB(u.Disabled), toDB(now), toDB(now), usernameKey(u.Username))
	return u, s.userErr(err, u)
}

// UserByID looks a user up by id.
func (s *Store) UserByID(ctx context.Context, id string) (store.User, error) {
	u, err := scanUser(s.conn().queryRow(ctx, "SELECT "+userColumns+" FROM users WHERE id = $1", id))
	return u, s.mapErr(err, "user id "+quote(id))
}

// UserByUsername looks a user up by username, ignoring letter case only.
func (s *Store) UserByUsername(ctx context.Context, username string) (store.User, error) {
	u, err := scanUser(s.conn().queryRow(ctx, "SELECT "+userColumns+" FROM users WHERE username_key = $1", usernameKey(username)))
	return u, s.mapErr(err, "user "+quote(username))
}

// UsersByEmail finds users by their confirmed email, letter case aside (a sign-in
// that links by email: rare, so no index).
func (s *Store) UsersByEmail(ctx context.Context, email string) ([]store.User, error) {
	rows, err := s.conn().query(ctx, "SELECT "+userColumns+" FROM users WHERE email <> '' AND lower(email) = lower($1) ORDER BY username_key", email)
	if err != nil {
		return nil, s.mapErr(err, "users by email")
	}
	return collect(rows, scanUser)
}

// ListUsers returns every user ordered by username.
func (s *Store) ListUsers(ctx context.Context) ([]store.User, error) {
	rows, err := s.conn().query(ctx, "SELECT "+userColumns+" FROM users ORDER BY username_key")
	if err != nil {
		return nil, s.mapErr(err, "listing users")
	}
	return collect(rows, scanUser)
}

// UpdateUser changes the non-nil fields of upd, and only those: a statement that
// wrote back every field it had read would undo a change another writer made to the
// others in between (a profile save bringing back a user an admin just disabled).
func (s *Store) UpdateUser(ctx context.Context, id string, upd store.UserUpdate) (store.User, error) {
	now := time.Now().UTC().Truncate(time.Microsecond)
	set, args := []string{"updated_at = $1"}, []any{toDB(now)}
	column := func(name string, v any) {
		args = append(args, v)
		set = append(set, fmt.Sprintf("%s = $%d", name, len(args)))
	}
	if upd.Email != nil {
		column("email", *upd.Email)
	}
	if upd.EmailPending != nil {
		column("email_pending", *upd.EmailPending)
	}
	if upd.DisplayName != nil {
		column("display_name", *upd.DisplayName)
	}
	if upd.Disabled != nil {
		column("disabled", boolDB(*upd.Disabled))
	}
	args = append(args, id)
	u, err := scanUser(s.conn().queryRow(ctx, fmt.Sprintf("UPDATE users SET %s WHERE id = $%d RETURNING %s",
		strings.Join(set, ", "), len(args), userColumns), args...))
	if err != nil && upd.Email != nil && s.dialect.IsUniqueViolation(err) {
		return u, s.userErr(err, store.User{Email: *upd.Email})
	}
	return u, s.mapErr(err, "user id "+quote(id))
}

// userErr maps a failed write of u, telling a taken email address from a taken
// username: both are ErrConflict, but the person needs to know which.
func (s *Store) userErr(err error, u store.User) error {
	if err != nil && s.dialect.IsUniqueViolation(err) && strings.Contains(err.Error(), "users_email_key") {
		return fmt.Errorf("email address %s is used by another account: %w", quote(u.Email), store.ErrConflict)
	}
	return s.mapErr(err, "user "+quote(u.Username))
}

// SetPasswordHash replaces a user's password hash.
func (s *Store) SetPasswordHash(ctx context.Context, id, hash string) error {
	return s.mustAffect(ctx, "user id "+quote(id),
		"UPDATE users SET password_hash = $1, updated_at = $2 WHERE id = $3", hash, toDB(time.Now()), id)
}

// DeleteUser removes a user with their memberships and sessions.
func (s *Store) DeleteUser(ctx context.Context, id string) error {
	return s.mustAffect(ctx, "user id "+quote(id), "DELETE FROM users WHERE id = $1", id)
}

// mustAffect runs a statement that targets one exact row and reports ErrNotFound
// when there was none.
func (s *Store) mustAffect(ctx context.Context, what, query string, args ...any) error {
	n, err := s.conn().execAffected(ctx, query, args...)
	if err != nil {
		return s.mapErr(err, what)
	}
	if n == 0 {
		return s.mapErr(sql.ErrNoRows, what)
	}
	return nil
}

func collect[T any](rows *sql.Rows, scan func(scanner) (T, error)) ([]T, error) {
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

func quote(s string) string { return `"` + s + `"` }
