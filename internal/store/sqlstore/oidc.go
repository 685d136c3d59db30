package sqlstore

import (
	"context"
	"time"

	"github.com/gatehouse-id/gatehouse/internal/store"
)

// AddOIDCKey stores a new signing key.
func (s *Store) AddOIDCKey(ctx context.Context, k store.OIDCKey) error {
	_, err := s.conn().exec(ctx, "INSERT INTO oidc_keys (id, algorithm, private_key, created_at) VALUES ($1, $2, $3, $4)",
		k.ID, k.Algorithm, k.PrivateKey, toDB(k.CreatedAt))
	return s.mapErr(err, "signing key "+quote(k.ID))
}

// OIDCKeys lists the signing keys, newest first.
func (s *Store) OIDCKeys(ctx context.Context) ([]store.OIDCKey, error) {
	rows, err := s.conn().query(ctx, "SELECT id, algorithm, private_key, created_at FROM oidc_keys ORDER BY created_at DESC, id")
	if err != nil {
		return nil, s.mapErr(err, "signing keys")
	}
	return collect(rows, func(r scanner) (store.OIDCKey, error) {
		var k store.OIDCKey
		var created int64
		err := r.Scan(&k.ID, &k.Algorithm, &k.PrivateKey, &created)
		k.CreatedAt = fromDB(created)
		return k, err
	})
}

// DeleteOIDCKey removes a retired signing key.
func (s *Store) DeleteOIDCKey(ctx context.Context, id string) error {
	return s.mustAffect(ctx, "signing key "+quote(id), "DELETE FROM oidc_keys WHERE id = $1", id)
}

const oidcTokenColumns = "hash, kind, client_id, user_id, family, scope, data, created_at, expires_at, used_at"

// AddOIDCToken stores a token by its hash.
func (s *Store) AddOIDCToken(ctx context.Context, t store.OIDCToken) error {
	if t.CreatedAt.IsZero() {
		t.CreatedAt = time.Now()
	}
	_, err := s.conn().exec(ctx, "INSERT INTO oidc_tokens ("+oidcTokenColumns+") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 0)",
		t.Hash, t.Kind, t.ClientID, t.UserID, t.Family, t.Scope, t.Data, toDB(t.CreatedAt), toDB(t.ExpiresAt))
	return s.mapErr(err, "OIDC "+t.Kind)
}

// OIDCToken finds a token by its hash, expired or not (callers check).
func (s *Store) OIDCToken(ctx context.Context, hash string) (store.OIDCToken, error) {
	t, err := scanOIDCToken(s.conn().queryRow(ctx, "SELECT "+oidcTokenColumns+" FROM oidc_tokens WHERE hash = $1", hash))
	return t, s.mapErr(err, "OIDC token")
}

func scanOIDCToken(r scanner) (store.OIDCToken, error) {
	var t store.OIDCToken
	var created, expires, used int64
	err := r.Scan(&t.Hash, &t.Kind, &t.ClientID, &t.UserID, &t.Family, &t.Scope, &t.Data, &created, &expires, &used)
	t.CreatedAt, t.ExpiresAt, t.UsedAt = fromDB(created), fromDB(expires), fromDB(used)
	return t, err
}

// UserOIDCTokens lists the unexpired tokens issued to a user, oldest first.
func (s *Store) UserOIDCTokens(ctx context.Context, userID string, now time.Time) ([]store.OIDCToken, error) {
	rows, err := s.conn().query(ctx, "SELECT "+oidcTokenColumns+" FROM oidc_tokens WHERE user_id = $1 AND expires_at > $2 ORDER BY created_at, hash",
		userID, toDB(now))
	if err != nil {
		return nil, s.mapErr(err, "OpenID Connect tokens of user")
	}
	return collect(rows, scanOIDCToken)
}

// UseOIDCToken spends a token that is unexpired and unspent.
func (s *Store) UseOIDCToken(ctx context.Context, hash string, now time.Time) (bool, error) {
	n, err := s.conn().execAffected(ctx, "UPDATE oidc_tokens SET used_at = $1 WHERE hash = $2 AND used_at = 0 AND expires_at > $1",
		toDB(now), hash)
	return n == 1, s.mapErr(err, "OIDC token")
}

// DecideOIDCToken records who decided a device authorization and how, once.
func (s *Store) DecideOIDCToken(ctx context.Context, hash, userID, data string) error {
	return s.mustAffect(ctx, "undecided OIDC device code", "UPDATE oidc_tokens SET user_id = $1, data = $2 WHERE hash = $3 AND user_id = ''", userID, data, hash)
}

// DeleteOIDCToken removes one token; removing none is not an error.
func (s *Store) DeleteOIDCToken(ctx context.Context, hash string) error {
	_, err := s.conn().exec(ctx, "DELETE FROM oidc_tokens WHERE hash = $1", hash)
	return s.mapErr(err, "OIDC token")
}

// RevokeOIDCFamily deletes every token of one grant.
func (s *Store) RevokeOIDCFamily(ctx context.Context, family string) (int, error) {
	n, err := s.conn().execAffected(ctx, "DELETE FROM oidc_tokens WHERE family = $1", family)
	return n, s.mapErr(err, "OIDC grant")
}

// DeleteExpiredOIDCTokens sweeps expired tokens.
func (s *Store) DeleteExpiredOIDCTokens(ctx context.Context, now time.Time) (int, error) {
	n, err := s.conn().execAffected(ctx, "DELETE FROM oidc_tokens WHERE expires_at <= $1", toDB(now))
	return n, s.mapErr(err, "expired OIDC tokens")
}

// OIDCConsent returns the scopes a user consented to for a client.
func (s *Store) OIDCConsent(ctx context.Context, userID, clientID string) (string, error) {
	var scope string
	err := s.conn().queryRow(ctx, "SELECT scope FROM oidc_consents WHERE user_id = $1 AND client_id = $2", userID, clientID).Scan(&scope)
	return scope, s.mapErr(err, "consent")
}

// SetOIDCConsent records (or widens) a user's consent for a client.
func (s *Store) SetOIDCConsent(ctx context.Context, userID, clientID, scope string) error {
	_, err := s.conn().exec(ctx, `INSERT INTO oidc_consents (user_id, client_id, scope, created_at) VALUES ($1, $2, $3, $4)
		ON CONFLICT (user_id, client_id) DO UPDATE SET scope = excluded.scope, created_at = excluded.created_at`,
		userID, clientID, scope, toDB(time.Now()))
	return s.mapErr(err, "consent")
}

// RevokeUserOIDCTokens deletes every OpenID Connect token issued to a user (codes,
// access and refresh tokens, decided device codes): their grants end with their
// sessions.
func (s *Store) RevokeUserOIDCTokens(ctx context.Context, userID string) (int, error) {
	if userID == "" {
		return 0, nil // client-credentials tokens have no user: never "every token of nobody"
	}
	n, err := s.conn().execAffected(ctx, "DELETE FROM oidc_tokens WHERE user_id = $1", userID)
	return n, s.mapErr(err, "OpenID Connect tokens of user")
}

// AddOIDCLogout asks to tell client, by back-channel logout, when sign-in sid ends.
// Asking twice is asking once.
func (s *Store) AddOIDCLogout(ctx context.Context, l store.OIDCLogout) error {
	_, err := s.conn().exec(ctx, "INSERT INTO oidc_logouts (sid, client_id, user_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
		l.SID, l.ClientID, l.UserID)
	return s.mapErr(err, "back-channel logout of "+quote(l.ClientID))
}

// ClaimOIDCLogouts takes up to limit logouts that are due at now — their sign-in has
// no unexpired session left — for this caller alone: each claimed row's next attempt
// moves to now + backoff × attempts, so another replica claims it only if this one
// fails to deliver and delete it by then.
func (s *Store) ClaimOIDCLogouts(ctx context.Context, now time.Time, backoff time.Duration, limit int) ([]store.OIDCLogout, error) {
	// The outer next_at test is checked again on a row another replica claimed while
	// this statement waited for its lock, so a row is never claimed twice at once.
	rows, err := s.conn().query(ctx, `UPDATE oidc_logouts SET attempts = attempts + 1, next_at = $1 + CAST($2 AS BIGINT) * (attempts + 1)
		WHERE next_at <= $1 AND (sid, client_id) IN (
			SELECT l.sid, l.client_id FROM oidc_logouts l
			WHERE l.next_at <= $1 AND NOT EXISTS (SELECT 1 FROM sessions ss WHERE ss.sid = l.sid AND ss.expires_at > $1)
			ORDER BY l.next_at LIMIT $3)
		RETURNING sid, client_id, user_id, attempts`, toDB(now), backoff.Microseconds(), limit)
	if err != nil {
		return nil, s.mapErr(err, "claiming back-channel logouts")
	}
	return collect(rows, func(r scanner) (store.OIDCLogout, error) {
		var l store.OIDCLogout
		return l, r.Scan(&l.SID, &l.ClientID, &l.UserID, &l.Attempts)
	})
}

// DeleteOIDCLogout forgets a logout that was delivered or given up on.
func (s *Store) DeleteOIDCLogout(ctx context.Context, sid, clientID string) error {
	_, err := s.conn().exec(ctx, "DELETE FROM oidc_logouts WHERE sid = $1 AND client_id = $2", sid, clientID)
	return s.mapErr(err, "back-channel logout of "+quote(clientID))
}
