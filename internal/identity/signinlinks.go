package identity

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/gatehouse-id/gatehouse/internal/store"
)

// SignInLinkLifetime is how long an admin's one-time sign-in link works: long enough
// to pass it on by message and be opened the next day, short enough that a forgotten
// one does not lie around.
const SignInLinkLifetime = 24 * time.Hour

// SignInLinkPath is where a sign-in link points on Gatehouse's public URL; the token
// follows as ?token=.
const SignInLinkPath = "/signin-link"

// HashLinkToken is what is stored of a link's token (its SHA-256, in hex): the
// database never holds a token that would sign someone in.
func HashLinkToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// IssueSignInLink makes a one-time link that signs username in once within
// SignInLinkLifetime, so a person without a password (user add --no-password) can set
// one or add a passkey; it returns the token, which is shown once. A disabled person
// gets none. Making a link ends the person's earlier unused links.
func (d *Directory) IssueSignInLink(ctx context.Context, actor, username string) (token string, expires time.Time, err error) {
	err = d.write(ctx, false, func(d *Directory) error {
		u, err := d.Store.UserByUsername(ctx, username)
		if err != nil {
			return err
		}
		if u.Disabled {
			return invalidf("username", "user %q is disabled: enable them first (`gatehouse user enable %s`), then make the link", u.Username, u.Username)
		}
		if token, expires, err = d.issueLink(ctx, actor, u, store.LinkSignIn, SignInLinkLifetime); err != nil {
			return err
		}
		return d.auditUser(ctx, "user.signin_link_created", actor, u, "valid until "+expires.UTC().Format(time.RFC3339), "expires", expires.UTC().Format(time.RFC3339))
	})
	if err != nil {
		return "", time.Time{}, err
	}
	return token, expires, nil
}

// issueLink stores a new one-time link of purpose for u, ending u's earlier ones of
// that purpose, inside the current write; it returns the token.
func (d *Directory) issueLink(ctx context.Context, actor string, u store.User, purpose string, lifetime time.Duration) (string, time.Time, error) {
	var b [32]byte
	_, _ = rand.Read(b[:])
	token := base64.RawURLEncoding.EncodeToString(b[:])
	now := time.Now()
	if _, err := d.Store.DeleteSignInLinks(ctx, u.ID, purpose, now); err != nil {
		return "", time.Time{}, err
	}
	expires := now.Add(lifetime)
	err := d.Store.CreateSignInLink(ctx, store.SignInLink{TokenHash: HashLinkToken(token), UserID: u.ID, CreatedBy: actor, Purpose: purpose, CreatedAt: now, ExpiresAt: expires})
	return token, expires, err
}

// UseSignInLink spends the link whose token hashes to tokenHash and returns its
// person, who may then be signed in, and what the link was for: once only, even with
// two uses at once, and never for a person disabled since (store.ErrNotFound either
// way). A password-reset link ends the person's sessions first, so the sign-in it
// makes is the only one left. A verify link signs nobody in: use ConfirmEmail.
func (d *Directory) UseSignInLink(ctx context.Context, tokenHash string) (store.User, string, error) {
	var u store.User
	var purpose string
	err := d.write(ctx, false, func(d *Directory) error {
		l, err := d.Store.SignInLinkValid(ctx, tokenHash, time.Now())
		if err != nil {
			return err
		}
		if l.Purpose == store.LinkVerify {
			return fmt.Errorf("sign-in link: %w (it confirms an address)", store.ErrNotFound)
		}
		if l, err = d.Store.UseSignInLink(ctx, tokenHash, time.Now()); err != nil {
			return err
		}
		purpose = l.Purpose
		if u, err = d.Store.UserByID(ctx, l.UserID); err != nil {
			return err
		}
		if u.Disabled {
			return fmt.Errorf("sign-in link: %w (the person is disabled)", store.ErrNotFound)
		}
		if purpose == store.LinkReset {
			if _, err := d.endAllSessions(ctx, u.ID); err != nil {
				return err
			}
			return d.auditUser(ctx, "user.password_reset_link_used", u.Username, u, "their other sessions ended")
		}
		return d.auditUser(ctx, "user.signin_link_used", u.Username, u, "made by "+l.CreatedBy)
	})
	return u, purpose, err
}

// PasswordResetLifetime is how long a password-reset link works.
const PasswordResetLifetime = time.Hour

// EmailLinkLifetime is how long an address confirmation link works.
const EmailLinkLifetime = 24 * time.Hour

// CanMail says whether Gatehouse sends mail (smtp.host is set).
func (d *Directory) CanMail() bool {
	if d.Mail == nil {
		return false
	}
	_, ok := d.Mail("reset", "probe@example.com", nil)
	return ok
}

// mail writes a mail of kind to to into the outbox, in the current write; nothing
// when no SMTP server is configured.
func (d *Directory) mail(ctx context.Context, kind, to string, data map[string]string) error {
	if d.Mail == nil || to == "" {
		return nil
	}
	m, ok := d.Mail(kind, to, data)
	if !ok {
		return nil
	}
	return d.Store.EnqueueMail(ctx, m)
}

// RequestPasswordReset mails a one-time reset link to the confirmed address of the
// account named by who (a username, or a confirmed address), when there is one and
// mail is sent. It says nothing of whether there was: the page answers the same
// either way, so it tells nobody which accounts or addresses exist.
func (d *Directory) RequestPasswordReset(ctx context.Context, who string) error {
	who = strings.TrimSpace(who)
	u, err := d.Store.UserByUsername(ctx, who)
	if errors.Is(err, store.ErrNotFound) && strings.Contains(who, "@") {
		var users []store.User
		if users, err = d.Store.UsersByEmail(ctx, who); err == nil && len(users) == 1 {
			u = users[0]
		} else if err == nil {
			return nil
		}
	}
	if errors.Is(err, store.ErrNotFound) || err == nil && (u.Email == "" || u.Disabled) || !d.CanMail() {
		return nil
	}
	if err != nil {
		return err
	}
	return d.write(ctx, false, func(d *Directory) error {
		token, _, err := d.issueLink(ctx, "password reset", u, store.LinkReset, PasswordResetLifetime)
		if err != nil {
			return err
		}
		if err := d.mail(ctx, "reset", u.Email, map[string]string{"Name": cmpName(u), "Username": u.Username, "Path": SignInLinkPath + "?token=" + token}); err != nil {
			return err
		}
		return d.auditUser(ctx, "user.password_reset_requested", "anonymous", u, "link mailed to the confirmed address")
	})
}

// RequestEmailConfirmation mails a confirmation link to the address waiting in a
// person's email_pending, when there is one and mail is sent; it reports whether it
// did.
func (d *Directory) RequestEmailConfirmation(ctx context.Context, userID string) (bool, error) {
	if !d.CanMail() {
		return false, nil
	}
	sent := false
	err := d.write(ctx, false, func(d *Directory) error {
		u, err := d.Store.UserByID(ctx, userID)
		if err != nil || u.EmailPending == "" {
			return err
		}
		token, _, err := d.issueLink(ctx, u.Username, u, store.LinkVerify, EmailLinkLifetime)
		if err != nil {
			return err
		}
		sent = true
		return d.mail(ctx, "verify", u.EmailPending, map[string]string{"Name": cmpName(u), "Username": u.Username, "Path": VerifyEmailPath + "?token=" + token})
	})
	return sent, err
}

// VerifyEmailPath is where an address confirmation link points (?token=).
const VerifyEmailPath = "/verify-email"

// ConfirmEmail spends a confirmation link: the address waiting in email_pending
// becomes the person's confirmed one (what apps are told, email_verified true).
func (d *Directory) ConfirmEmail(ctx context.Context, tokenHash string) (store.User, error) {
	var u store.User
	err := d.write(ctx, false, func(d *Directory) error {
		l, err := d.Store.SignInLinkValid(ctx, tokenHash, time.Now())
		if err == nil && l.Purpose != store.LinkVerify {
			err = fmt.Errorf("confirmation link: %w", store.ErrNotFound)
		}
		if err == nil {
			_, err = d.Store.UseSignInLink(ctx, tokenHash, time.Now())
		}
		if err == nil {
			u, err = d.Store.UserByID(ctx, l.UserID)
		}
		if err != nil {
			return err
		}
		if u.EmailPending == "" {
			return fmt.Errorf("confirmation link: %w (no address waits to be confirmed)", store.ErrNotFound)
		}
		confirmed, none := u.EmailPending, ""
		if u, err = d.Store.UpdateUser(ctx, u.ID, store.UserUpdate{Email: &confirmed, EmailPending: &none}); err != nil {
			return err
		}
		if err := d.change(ctx, store.ChangeUser, u.ID); err != nil {
			return err
		}
		return d.auditUser(ctx, "user.email_confirmed", u.Username, u, confirmed)
	})
	return u, err
}

// NotifyNewSignIn mails a person that their account was signed in to from a browser
// new to it, when they have a confirmed address and mail is sent.
func (d *Directory) NotifyNewSignIn(ctx context.Context, u store.User, detail string) error {
	if u.Email == "" || !d.CanMail() {
		return nil
	}
	return d.write(ctx, false, func(d *Directory) error {
		return d.mail(ctx, "new_sign_in", u.Email, map[string]string{"Name": cmpName(u), "Username": u.Username, "Detail": detail,
			"When": time.Now().UTC().Format("Mon 2 Jan 2006 15:04 UTC")})
	})
}

func cmpName(u store.User) string {
	if u.DisplayName != "" {
		return u.DisplayName
	}
	return u.Username
}
