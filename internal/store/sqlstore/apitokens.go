package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
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

// StartIdempotent claims an idempotency key for a request (reqHash identifies it). It
// returns started when this call claimed it, or the record already there: finished
// (Status set), or in progress (Status 0) — one claimed before stale is taken over.
func (s *Store) StartIdempotent(ctx context.Context, tokenID, key, reqHash string, now, stale time.Time) (store.IdempotentRecord, bool, error) {
	var rec store.IdempotentRecord
	started := false
	err := s.inTx(ctx, func(c counted, _ *sql.Tx) error {
		n, err := c.execAffected(ctx, `INSERT INTO api_idempotency (token_id, key, request_hash, created_at) VALUES ($1, $2, $3, $4)
			ON CONFLICT (token_id, key) DO UPDATE SET request_hash = excluded.request_hash, created_at = excluded.created_at
			WHERE api_idempotency.status = 0 AND api_idempotency.created_at < $5`, tokenID, key, reqHash, toDB(now), toDB(stale))
		if err != nil {
			return err
		}
		if started = n == 1; started {
			rec.RequestHash = reqHash
			return nil
		}
		return c.queryRow(ctx, "SELECT request_hash, status, headers, body FROM api_idempotency WHERE token_id = $1 AND key = $2", tokenID, key).
			Scan(&rec.RequestHash, &rec.Status, &rec.Headers, &rec.Body)
	})
	return rec, started, s.mapErr(err, "idempotency key")
}

// FinishIdempotent records the answer to a claimed key.
func (s *Store) FinishIdempotent(ctx context.Context, tokenID, key string, rec store.IdempotentRecord) error {
	_, err := s.conn().exec(ctx, "UPDATE api_idempotency SET status = $1, headers = $2, body = $3 WHERE token_id = $4 AND key = $5",
		rec.Status, rec.Headers, rec.Body, tokenID, key)
	return s.mapErr(err, "idempotency key")
}

// AbandonIdempotent frees a claimed key whose request failed, so a retry can run.
func (s *Store) AbandonIdempotent(ctx context.Context, tokenID, key string) error {
	_, err := s.conn().exec(ctx, "DELETE FROM api_idempotency WHERE token_id = $1 AND key = $2 AND status = 0", tokenID, key)
	return s.mapErr(err, "idempotency key")
}

// DeleteOldIdempotency sweeps keys claimed before before.
func (s *Store) DeleteOldIdempotency(ctx context.Context, before time.Time) (int, error) {
	n, err := s.conn().execAffected(ctx, "DELETE FROM api_idempotency WHERE created_at < $1", toDB(before))
	return n, s.mapErr(err, "idempotency keys")
}

// placeholders makes "$1, $2, …" for n arguments and the arguments themselves.
func placeholders(ids []string) (string, []any) {
	marks, args := make([]string, len(ids)), make([]any, len(ids))
	for i, id := range ids {
		marks[i], args[i] = fmt.Sprintf("$%d", i+1), id
	}
	return strings.Join(marks, ", "), args
}

// GroupIDsOfUsers returns the direct group ids of each of the users, in one query: a
// page of a user listing costs one more statement, not one per user.
func (s *Store) GroupIDsOfUsers(ctx context.Context, userIDs []string) (map[string][]string, error) {
	out := map[string][]string{}
	if len(userIDs) == 0 {
		return out, nil
	}
	marks, args := placeholders(userIDs)
	rows, err := s.conn().query(ctx, "SELECT user_id, group_id FROM memberships WHERE user_id IN ("+marks+") ORDER BY group_id", args...)
	if err != nil {
		return nil, s.mapErr(err, "groups of users")
	}
	pairs, err := collect(rows, func(r scanner) ([2]string, error) {
		var p [2]string
		return p, r.Scan(&p[0], &p[1])
	})
	for _, p := range pairs {
		out[p[0]] = append(out[p[0]], p[1])
	}
	return out, err
}

// UsersByIDs returns the users with these ids (those that exist), in one query.
func (s *Store) UsersByIDs(ctx context.Context, ids []string) ([]store.User, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	marks, args := placeholders(ids)
	rows, err := s.conn().query(ctx, "SELECT "+userColumns+" FROM users WHERE id IN ("+marks+") ORDER BY username", args...)
	if err != nil {
		return nil, s.mapErr(err, "users")
	}
	return collect(rows, scanUser)
}
