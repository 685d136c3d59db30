package identity

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/gatehouse-id/gatehouse/internal/store"
)

// The bookkeeping of signing in: spending a one-time code, recording a passkey's use,
// the first-admin setup. The web pages decide whether an answer is right; these
// methods make what follows from it durable, each in one transaction with its audit
// event, so the pages hold a store they can only read from.

// ErrReplay means a one-time answer (a passkey's signed challenge) was used before.
var ErrReplay = errors.New("this answer was used already")

// UseRecoveryCode spends one of a person's unused recovery codes by its hash and
// reports whether it was there; spending it and its audit event commit together.
func (d *Directory) UseRecoveryCode(ctx context.Context, u store.User, hash string) (bool, error) {
	used := false
	err := d.write(ctx, false, func(d *Directory) error {
		var err error
		if used, err = d.Store.UseRecoveryCode(ctx, u.ID, hash); err != nil || !used {
			return err
		}
		return d.auditUser(ctx, "mfa.recovery_code_used", u.Username, u, "")
	})
	return used && err == nil, err
}

// UseTOTPStep records a TOTP time step as used if it is newer than the last one, and
// reports whether it was: one statement, so two replicas never both accept a code.
func (d *Directory) UseTOTPStep(ctx context.Context, userID string, step int64) (bool, error) {
	return d.Store.UseTOTPStep(ctx, userID, step)
}

// UsePasskey records a passkey sign-in: the challenge it answered is spent (a second
// answer to it is ErrReplay), and the credential record (its moved sign count) and
// the time are stored, with an audit event when the authenticator's counter went
// backwards (a possible clone).
func (d *Directory) UsePasskey(ctx context.Context, u store.User, key store.Passkey, challengeHash string, challengeExpires time.Time, record string, cloneWarning bool) error {
	return d.write(ctx, false, func(d *Directory) error {
		fresh, err := d.Store.SpendChallenge(ctx, challengeHash, challengeExpires)
		if err != nil {
			return err
		}
		if !fresh {
			return ErrReplay
		}
		if err := d.Store.UsePasskey(ctx, key.ID, record, time.Now()); err != nil {
			return err
		}
		if cloneWarning {
			return d.auditUser(ctx, "passkey.clone_warning", u.Username, u, "passkey "+key.ID+": its signature counter went backwards")
		}
		return nil
	})
}

// RenameOwnPasskey renames one of a person's passkeys by its exact id.
func (d *Directory) RenameOwnPasskey(ctx context.Context, u store.User, id, name string) error {
	return d.write(ctx, false, func(d *Directory) error {
		if err := d.Store.RenamePasskey(ctx, u.ID, id, name); err != nil {
			return err
		}
		return d.auditUser(ctx, "credential.renamed", u.Username, u, fmt.Sprintf("passkey %s renamed to %q", id, name))
	})
}

// IssueSetupToken stores the hash of a first-admin setup link's token. It is not an
// audit event: the link is printed to the log, and its use is one.
func (d *Directory) IssueSetupToken(ctx context.Context, tokenHash string, expires time.Time) error {
	return d.Store.CreateSetupToken(ctx, tokenHash, expires)
}

// CompleteSetup consumes a setup link and creates the first admin in adminGroup, with
// its audit event, in one transaction.
func (d *Directory) CompleteSetup(ctx context.Context, tokenHash string, u store.User, adminGroup string) (store.SetupResult, error) {
	var res store.SetupResult
	err := d.write(ctx, true, func(d *Directory) error {
		var err error
		if res, err = d.Store.CompleteSetup(ctx, tokenHash, time.Now(), u, adminGroup); err != nil {
			return err
		}
		return d.auditUser(ctx, "setup.completed", res.User.Username, res.User, "admin group: "+res.Group.Name)
	})
	return res, err
}
