package sqlstore

import (
	"context"
	"database/sql"
	"maps"
	"slices"
	"time"

	"github.com/gatehouse-id/gatehouse/internal/store"
)

const appPasswordColumns = "id, user_id, name, hash, hosts, created_at, expires_at, last_used_at"

func scanAppPassword(r scanner) (store.AppPassword, error) {
	var p store.AppPassword
	var created, expires, used int64
	err := r.Scan(&p.ID, &p.UserID, &p.Name, &p.Hash, &p.Hosts, &created, &expires, &used)
	p.CreatedAt, p.ExpiresAt, p.LastUsedAt = fromDB(created), fromDB(expires), fromDB(used)
	return p, err
}

// CreateAppPassword stores a new app password; a name the person already uses is
// store.ErrConflict.
func (s *Store) CreateAppPassword(ctx context.Context, p store.AppPassword) (store.AppPassword, error) {
	p.ID = NewID()
	if p.CreatedAt.IsZero() {
		p.CreatedAt = time.Now().UTC().Truncate(time.Microsecond)
	}
	_, err := s.conn().exec(ctx, "INSERT INTO app_passwords ("+appPasswordColumns+") VALUES ($1, $2, $3, $4, $5, $6, $7, 0)",
		p.ID, p.UserID, p.Name, p.Hash, p.Hosts, toDB(p.CreatedAt), toDB(p.ExpiresAt))
	return p, s.mapErr(err, "app password "+quote(p.Name))
}

// AppPasswordByHash finds an app password by the hash of its secret, expired or not.
func (s *Store) AppPasswordByHash(ctx context.Context, hash string) (store.AppPassword, error) {
	p, err := scanAppPassword(s.conn().queryRow(ctx, "SELECT "+appPasswordColumns+" FROM app_passwords WHERE hash = $1", hash))
	return p, s.mapErr(err, "app password")
}

// AppPasswords lists a person's app passwords by name.
func (s *Store) AppPasswords(ctx context.Context, userID string) ([]store.AppPassword, error) {
	rows, err := s.conn().query(ctx, "SELECT "+appPasswordColumns+" FROM app_passwords WHERE user_id = $1 ORDER BY name", userID)
	if err != nil {
		return nil, s.mapErr(err, "listing app passwords")
	}
	return collect(rows, scanAppPassword)
}

// DeleteAppPassword removes one of a person's app passwords by its exact id and
// returns it (its hash is what other replicas must drop from their caches).
func (s *Store) DeleteAppPassword(ctx context.Context, userID, id string) (store.AppPassword, error) {
	p, err := scanAppPassword(s.conn().queryRow(ctx, "DELETE FROM app_passwords WHERE id = $1 AND user_id = $2 RETURNING "+appPasswordColumns, id, userID))
	return p, s.mapErr(err, "app password "+quote(id))
}

// TouchAppPasswords records last-use times in one batch (hash → time), in key order
// for the same reason as TouchSessions.
func (s *Store) TouchAppPasswords(ctx context.Context, used map[string]time.Time) error {
	if len(used) == 0 {
		return nil
	}
	return s.inTx(ctx, func(c counted, _ *sql.Tx) error {
		for _, hash := range slices.Sorted(maps.Keys(used)) {
			at := used[hash]
			if _, err := c.exec(ctx, "UPDATE app_passwords SET last_used_at = $1 WHERE hash = $2 AND last_used_at < $1", toDB(at), hash); err != nil {
				return s.mapErr(err, "app password last use")
			}
		}
		return nil
	})
}
