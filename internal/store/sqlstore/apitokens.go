package sqlstore

import (
	"context"
	"time"

	"github.com/gatehouse-id/gatehouse/internal/store"
)

const apiTokenColumns = "id, name, hash, scopes, created_by, created_at, expires_at, last_used_at, last_used_ip"

func scanAPIToken(r scanner) (store.APIToken, error) {
	var t store.APIToken
	var created, expires, used int64
	err := r.Scan(&t.ID, &t.Name, &t.Hash, &t.Scopes, &t.CreatedBy, &created, &expires, &used, &t.LastUsedIP)
	t.CreatedAt, t.ExpiresAt, t.LastUsedAt = fromDB(created), fromDB(expires), fromDB(used)
	return t, err
}

// CreateAPIToken stores a new token; a name in use is store.ErrConflict.
func (s *Store) CreateAPIToken(ctx context.Context, t store.APIToken) (store.APIToken, error) {
	t.ID = NewID()
	if t.CreatedAt.IsZero() {
		t.CreatedAt = time.Now().UTC().Truncate(time.Microsecond)
	}
	_, err := s.conn().exec(ctx, "INSERT INTO api_tokens ("+apiTokenColumns+") VALUES ($1, $2, $3, $4, $5, $6, $7, 0, '')",
		t.ID, t.Name, t.Hash, t.Scopes, t.CreatedBy, toDB(t.CreatedAt), toDB(t.ExpiresAt))
	return t, s.mapErr(err, "API token "+quote(t.Name))
}

// APITokenByHash finds a token by the hash of its value, expired or not.
func (s *Store) APITokenByHash(ctx context.Context, hash string) (store.APIToken, error) {
	t, err := scanAPIToken(s.conn().queryRow(ctx, "SELECT "+apiTokenColumns+" FROM api_tokens WHERE hash = $1", hash))
	return t, s.mapErr(err, "API token")
}

// ListAPITokens lists every token, by name.
func (s *Store) ListAPITokens(ctx context.Context) ([]store.APIToken, error) {
	rows, err := s.conn().query(ctx, "SELECT "+apiTokenColumns+" FROM api_tokens ORDER BY name")
	if err != nil {
		return nil, s.mapErr(err, "API tokens")
	}
	return collect(rows, scanAPIToken)
}

// DeleteAPIToken revokes a token by id.
func (s *Store) DeleteAPIToken(ctx context.Context, id string) error {
	return s.mustAffect(ctx, "API token "+quote(id), "DELETE FROM api_tokens WHERE id = $1", id)
}

// TouchAPIToken records a token's last use, at most moving it forward.
func (s *Store) TouchAPIToken(ctx context.Context, id string, at time.Time, ip string) error {
	_, err := s.conn().exec(ctx, "UPDATE api_tokens SET last_used_at = $1, last_used_ip = $2 WHERE id = $3 AND last_used_at < $1",
		toDB(at), ip, id)
	return s.mapErr(err, "API token "+quote(id))
}

// ListUsersAfter returns up to limit users whose username sorts after after, in
// username order: a page of a listing that stays right while users are added.
func (s *Store) ListUsersAfter(ctx context.Context, after string, limit int) ([]store.User, error) {
	rows, err := s.conn().query(ctx, "SELECT "+userColumns+" FROM users WHERE username > $1 ORDER BY username LIMIT $2", after, limit)
	if err != nil {
		return nil, s.mapErr(err, "listing users")
	}
	return collect(rows, scanUser)
}
