package sqlstore

import (
	"context"
	"database/sql"
	"time"
)

// SetTOTP replaces a user's TOTP secret and resets its last used step.
func (s *Store) SetTOTP(ctx context.Context, userID, secret string) error {
	_, err := s.conn().exec(ctx, `INSERT INTO totp_secrets (user_id, secret, last_step, created_at) VALUES ($1, $2, 0, $3)
		ON CONFLICT (user_id) DO UPDATE SET secret = excluded.secret, last_step = 0, created_at = excluded.created_at`,
		userID, secret, toDB(time.Now()))
	return s.mapErr(err, "TOTP of user id "+quote(userID))
}

// TOTPSecrets lists every stored TOTP secret by user id.
func (s *Store) TOTPSecrets(ctx context.Context) (map[string]string, error) {
	rows, err := s.conn().query(ctx, "SELECT user_id, secret FROM totp_secrets")
	if err != nil {
		return nil, s.mapErr(err, "listing TOTP secrets")
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var id, secret string
		if err := rows.Scan(&id, &secret); err != nil {
			return nil, s.mapErr(err, "listing TOTP secrets")
		}
		out[id] = secret
	}
	return out, s.mapErr(rows.Err(), "listing TOTP secrets")
}

// ReplaceTOTPSecret swaps a stored secret for another if it is still old.
func (s *Store) ReplaceTOTPSecret(ctx context.Context, userID, old, replacement string) (bool, error) {
	n, err := s.conn().execAffected(ctx, "UPDATE totp_secrets SET secret = $1 WHERE user_id = $2 AND secret = $3", replacement, userID, old)
	return n == 1, s.mapErr(err, "TOTP of user id "+quote(userID))
}

// TOTP returns a user's secret and last accepted step.
func (s *Store) TOTP(ctx context.Context, userID string) (string, int64, error) {
	var secret string
	var last int64
	err := s.conn().queryRow(ctx, "SELECT secret, last_step FROM totp_secrets WHERE user_id = $1", userID).Scan(&secret, &last)
	return secret, last, s.mapErr(err, "TOTP of user id "+quote(userID))
}

// UseTOTPStep records step as used when it is newer than the last accepted one.
func (s *Store) UseTOTPStep(ctx context.Context, userID string, step int64) (bool, error) {
	n, err := s.conn().execAffected(ctx, "UPDATE totp_secrets SET last_step = $1 WHERE user_id = $2 AND last_step < $1", step, userID)
	return n == 1, s.mapErr(err, "TOTP of user id "+quote(userID))
}

// DeleteTOTP removes a user's TOTP secret; removing none is not an error.
func (s *Store) DeleteTOTP(ctx context.Context, userID string) error {
	_, err := s.conn().exec(ctx, "DELETE FROM totp_secrets WHERE user_id = $1", userID)
	return s.mapErr(err, "TOTP of user id "+quote(userID))
}

// SetRecoveryCodes replaces a user's recovery codes in one transaction.
func (s *Store) SetRecoveryCodes(ctx context.Context, userID string, hashes []string) error {
	return s.inTx(ctx, func(c counted, _ *sql.Tx) error {
		if _, err := c.exec(ctx, "DELETE FROM recovery_codes WHERE user_id = $1", userID); err != nil {
			return s.mapErr(err, "recovery codes")
		}
		for _, h := range hashes {
			if _, err := c.exec(ctx, "INSERT INTO recovery_codes (user_id, hash) VALUES ($1, $2)", userID, h); err != nil {
				return s.mapErr(err, "recovery codes")
			}
		}
		return nil
	})
}

// UseRecoveryCode spends an unused code; false when it is unknown or spent.
func (s *Store) UseRecoveryCode(ctx context.Context, userID, hash string) (bool, error) {
	n, err := s.conn().execAffected(ctx, "UPDATE recovery_codes SET used_at = $1 WHERE user_id = $2 AND hash = $3 AND used_at = 0",
		toDB(time.Now()), userID, hash)
	return n == 1, s.mapErr(err, "recovery codes")
}

// UnusedRecoveryCodes counts a user's codes still unspent.
func (s *Store) UnusedRecoveryCodes(ctx context.Context, userID string) (int, error) {
	var n int
	err := s.conn().queryRow(ctx, "SELECT COUNT(*) FROM recovery_codes WHERE user_id = $1 AND used_at = 0", userID).Scan(&n)
	return n, s.mapErr(err, "recovery codes")
}
