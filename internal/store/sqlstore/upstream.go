package sqlstore

import (
	"context"
	"database/sql"
	"time"

	"github.com/gatehouse-id/gatehouse/internal/store"
)

const upstreamColumns = "provider, subject, user_id, email, created_at"

func scanUpstream(r scanner) (store.UpstreamIdentity, error) {
	var u store.UpstreamIdentity
	var created int64
	err := r.Scan(&u.Provider, &u.Subject, &u.UserID, &u.Email, &created)
	u.CreatedAt = fromDB(created)
	return u, err
}

// LinkUpstream links an upstream identity to a user; one linked already (to anyone)
// is store.ErrConflict.
func (s *Store) LinkUpstream(ctx context.Context, id store.UpstreamIdentity) error {
	if id.CreatedAt.IsZero() {
		id.CreatedAt = time.Now()
	}
	_, err := s.conn().exec(ctx, "INSERT INTO upstream_identities ("+upstreamColumns+") VALUES ($1, $2, $3, $4, $5)",
		id.Provider, id.Subject, id.UserID, id.Email, toDB(id.CreatedAt))
	return s.mapErr(err, "the "+id.Provider+" account")
}

// UnlinkUpstream removes one of a user's linked identities.
func (s *Store) UnlinkUpstream(ctx context.Context, userID, provider, subject string) error {
	n, err := s.conn().execAffected(ctx, "DELETE FROM upstream_identities WHERE user_id = $1 AND provider = $2 AND subject = $3", userID, provider, subject)
	if err == nil && n == 0 {
		return s.mapErr(sql.ErrNoRows, "the "+provider+" account")
	}
	return s.mapErr(err, "the "+provider+" account")
}

// UpstreamIdentity finds the link of an upstream identity.
func (s *Store) UpstreamIdentity(ctx context.Context, provider, subject string) (store.UpstreamIdentity, error) {
	u, err := scanUpstream(s.conn().queryRow(ctx, "SELECT "+upstreamColumns+" FROM upstream_identities WHERE provider = $1 AND subject = $2", provider, subject))
	return u, s.mapErr(err, "the "+provider+" account")
}

// UpstreamIdentities lists a user's linked identities.
func (s *Store) UpstreamIdentities(ctx context.Context, userID string) ([]store.UpstreamIdentity, error) {
	rows, err := s.conn().query(ctx, "SELECT "+upstreamColumns+" FROM upstream_identities WHERE user_id = $1 ORDER BY provider, subject", userID)
	if err != nil {
		return nil, s.mapErr(err, "linked accounts")
	}
	return collect(rows, scanUpstream)
}

const flowColumns = "state_hash, provider, intent, user_id, invitation, nonce, verifier, return_to, expires_at"

// CreateUpstreamFlow stores a sign-in on its way through a provider.
func (s *Store) CreateUpstreamFlow(ctx context.Context, f store.UpstreamFlow) error {
	_, err := s.conn().exec(ctx, "INSERT INTO upstream_flows ("+flowColumns+") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
		f.StateHash, f.Provider, f.Intent, f.UserID, f.Invitation, f.Nonce, f.Verifier, f.ReturnTo, toDB(f.ExpiresAt))
	return s.mapErr(err, "sign-in through "+f.Provider)
}

// TakeUpstreamFlow deletes and returns the unexpired flow with this state hash, and
// sweeps expired ones.
func (s *Store) TakeUpstreamFlow(ctx context.Context, stateHash string, now time.Time) (store.UpstreamFlow, error) {
	var f store.UpstreamFlow
	var expires int64
	err := s.conn().queryRow(ctx, "DELETE FROM upstream_flows WHERE state_hash = $1 AND expires_at > $2 RETURNING "+flowColumns, stateHash, toDB(now)).
		Scan(&f.StateHash, &f.Provider, &f.Intent, &f.UserID, &f.Invitation, &f.Nonce, &f.Verifier, &f.ReturnTo, &expires)
	f.ExpiresAt = fromDB(expires)
	if err == nil {
		_, _ = s.conn().exec(ctx, "DELETE FROM upstream_flows WHERE expires_at <= $1", toDB(now))
	}
	return f, s.mapErr(err, "sign-in through a provider")
}
