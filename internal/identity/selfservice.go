package identity

import (
	"context"
	"errors"
	"fmt"

	"github.com/gatehouse-id/gatehouse/internal/store"
)

// The changes people make to their own account from the account page. Like the admin
// changes, each runs as one transaction with its change-feed rows and audit events;
// the web package checks who is asking (the session, a fresh sign-in) and calls these.

// ChangeOwnPassword sets a person's new password, signs out their other sessions
// (keep is the one they are using) and ends the OpenID Connect grants made with the
// old one. It returns the sessions it ended, so the caller's replica can drop them
// from its cache at once.
func (d *Directory) ChangeOwnPassword(ctx context.Context, userID, keep, password string) ([]store.Session, error) {
	if err := CheckPassword(password); err != nil {
		return nil, err
	}
	hash, err := d.Hasher.Hash(ctx, password) // before the transaction: it takes a while
	if err != nil {
		return nil, err
	}
	var ended []store.Session
	err = d.write(ctx, false, func(d *Directory) error {
		u, err := d.Store.UserByID(ctx, userID)
		if err != nil {
			return err
		}
		if err := d.Store.SetPasswordHash(ctx, u.ID, hash); err != nil {
			return err
		}
		if ended, err = d.endSessionsBut(ctx, u, keep); err != nil {
			return err
		}
		if _, err := d.Store.RevokeUserOIDCTokens(ctx, u.ID); err != nil {
			return err
		}
		return d.auditUser(ctx, "user.password_changed", u.Username, u, fmt.Sprintf("%d other sessions signed out", len(ended)))
	})
	return ended, err
}

// endSessionsBut ends every session of u except keep, each on every replica.
func (d *Directory) endSessionsBut(ctx context.Context, u store.User, keep string) ([]store.Session, error) {
	all, err := d.Store.ListSessions(ctx, u.ID)
	if err != nil {
		return nil, err
	}
	var ended []store.Session
	for _, s := range all {
		if s.ID == keep {
			continue
		}
		if err := d.Store.DeleteSession(ctx, s.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
			return nil, err
		}
		if err := d.change(ctx, store.ChangeSession, s.TokenHash); err != nil {
			return nil, err
		}
		ended = append(ended, s)
	}
	return ended, nil
}

// EnrolTOTP records a person's authenticator app (its secret already sealed), spends
// the step of the code they proved it with, and replaces their recovery codes with
// recoveryHashes.
func (d *Directory) EnrolTOTP(ctx context.Context, userID, sealedSecret string, step int64, recoveryHashes []string) error {
	return d.write(ctx, false, func(d *Directory) error {
		u, err := d.Store.UserByID(ctx, userID)
		if err != nil {
			return err
		}
		if err := d.Store.SetTOTP(ctx, u.ID, sealedSecret); err != nil {
			return err
		}
		if _, err := d.Store.UseTOTPStep(ctx, u.ID, step); err != nil {
			return err
		}
		if err := d.Store.SetRecoveryCodes(ctx, u.ID, recoveryHashes); err != nil {
			return err
		}
		if err := d.auditUser(ctx, "credential.added", u.Username, u, "authenticator app"); err != nil {
			return err
		}
		return d.auditUser(ctx, "mfa.recovery_codes_created", u.Username, u, "")
	})
}

// ReplaceRecoveryCodes replaces a person's recovery codes with hashes.
func (d *Directory) ReplaceRecoveryCodes(ctx context.Context, userID string, hashes []string) error {
	return d.write(ctx, false, func(d *Directory) error {
		u, err := d.Store.UserByID(ctx, userID)
		if err != nil {
			return err
		}
		if err := d.Store.SetRecoveryCodes(ctx, u.ID, hashes); err != nil {
			return err
		}
		return d.auditUser(ctx, "mfa.recovery_codes_regenerated", u.Username, u, "")
	})
}

// AddOwnPasskey records a passkey a person registered (already verified); one
// registered before is store.ErrConflict.
func (d *Directory) AddOwnPasskey(ctx context.Context, k store.Passkey) (store.Passkey, error) {
	err := d.write(ctx, false, func(d *Directory) error {
		u, err := d.Store.UserByID(ctx, k.UserID)
		if err != nil {
			return err
		}
		if k, err = d.Store.AddPasskey(ctx, k); err != nil {
			return err
		}
		return d.auditUser(ctx, "credential.added", u.Username, u, fmt.Sprintf("passkey %q", k.Name))
	})
	return k, err
}
