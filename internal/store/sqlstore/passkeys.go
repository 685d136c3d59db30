package sqlstore

import (
	"context"
	"time"

	"github.com/gatehouse-id/gatehouse/internal/store"
)

const passkeyColumns = "id, user_id, credential_id, name, data, created_at, last_used_at"

func scanPasskey(r scanner) (store.Passkey, error) {
	var p store.Passkey
	var created, used int64
	err := r.Scan(&p.ID, &p.UserID, &p.CredentialID, &p.Name, &p.Data, &created, &used)
	p.CreatedAt, p.LastUsedAt = fromDB(created), fromDB(used)
	return p, err
}

// AddPasskey stores a newly registered passkey under a new id; ErrConflict when the
// credential id is registered already (to anyone).
func (s *Store) AddPasskey(ctx context.Context, p store.Passkey) (store.Passkey, error) {
	p.ID, p.CreatedAt = NewID(), time.Now().UTC().Truncate(time.Microsecond)
	_, err := s.conn().exec(ctx, "INSERT INTO passkeys ("+passkeyColumns+") VALUES ($1, $2, $3, $4, $5, $6, 0)",
		p.ID, p.UserID, p.CredentialID, p.Name, p.Data, toDB(p.CreatedAt))
	return p, s.mapErr(err, "passkey "+quote(p.Name))
}

// Passkeys lists a user's passkeys, oldest first.
func (s *Store) Passkeys(ctx context.Context, userID string) ([]store.Passkey, error) {
	rows, err := s.conn().query(ctx, "SELECT "+passkeyColumns+" FROM passkeys WHERE user_id = $1 ORDER BY created_at, id", userID)
	if err != nil {
		return nil, s.mapErr(err, "listing passkeys")
	}
	return collect(rows, scanPasskey)
}

// PasskeyByCredentialID finds a passkey by the authenticator's credential id.
func (s *Store) PasskeyByCredentialID(ctx context.Context, credentialID string) (store.Passkey, error) {
	p, err := scanPasskey(s.conn().queryRow(ctx, "SELECT "+passkeyColumns+" FROM passkeys WHERE credential_id = $1", credentialID))
	return p, s.mapErr(err, "passkey")
}

// UsePasskey stores a passkey's updated record after a sign-in.
func (s *Store) UsePasskey(ctx context.Context, id, data string, at time.Time) error {
	return s.mustAffect(ctx, "passkey", "UPDATE passkeys SET data = $1, last_used_at = $2 WHERE id = $3", data, toDB(at), id)
}

// RenamePasskey renames one of a user's passkeys.
func (s *Store) RenamePasskey(ctx context.Context, userID, id, name string) error {
	return s.mustAffect(ctx, "passkey", "UPDATE passkeys SET name = $1 WHERE id = $2 AND user_id = $3", name, id, userID)
}

// DeletePasskey removes one of a user's passkeys.
func (s *Store) DeletePasskey(ctx context.Context, userID, id string) error {
	return s.mustAffect(ctx, "passkey", "DELETE FROM passkeys WHERE id = $1 AND user_id = $2", id, userID)
}

// SpendChallenge records an answered challenge; false when it was answered before.
func (s *Store) SpendChallenge(ctx context.Context, hash string, expires time.Time) (bool, error) {
	n, err := s.conn().execAffected(ctx, "INSERT INTO spent_challenges (hash, expires_at) VALUES ($1, $2) ON CONFLICT (hash) DO NOTHING",
		hash, toDB(expires))
	return n == 1, s.mapErr(err, "WebAuthn challenge")
}

// DeleteSpentChallenges sweeps challenges whose signed form has expired anyway.
func (s *Store) DeleteSpentChallenges(ctx context.Context, now time.Time) (int, error) {
	n, err := s.conn().execAffected(ctx, "DELETE FROM spent_challenges WHERE expires_at <= $1", toDB(now))
	return n, s.mapErr(err, "spent challenges")
}
