package identity

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
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
	var b [32]byte
	_, _ = rand.Read(b[:])
	token = base64.RawURLEncoding.EncodeToString(b[:])
	now := time.Now()
	expires = now.Add(SignInLinkLifetime)
	err = d.write(ctx, false, func(d *Directory) error {
		u, err := d.Store.UserByUsername(ctx, username)
		if err != nil {
			return err
		}
		if u.Disabled {
			return invalidf("username", "user %q is disabled: enable them first (`gatehouse user enable %s`), then make the link", u.Username, u.Username)
		}
		if _, err := d.Store.DeleteSignInLinks(ctx, u.ID, now); err != nil {
			return err
		}
		if err := d.Store.CreateSignInLink(ctx, store.SignInLink{TokenHash: HashLinkToken(token), UserID: u.ID, CreatedBy: actor, CreatedAt: now, ExpiresAt: expires}); err != nil {
			return err
		}
		return d.auditUser(ctx, "user.signin_link_created", actor, u, "valid until "+expires.UTC().Format(time.RFC3339), "expires", expires.UTC().Format(time.RFC3339))
	})
	if err != nil {
		return "", time.Time{}, err
	}
	return token, expires, nil
}

// UseSignInLink spends the link whose token hashes to tokenHash and returns its
// person, who may then be signed in: once only, even with two uses at once, and
// never for a person disabled since (store.ErrNotFound either way).
func (d *Directory) UseSignInLink(ctx context.Context, tokenHash string) (store.User, error) {
	var u store.User
	err := d.write(ctx, false, func(d *Directory) error {
		l, err := d.Store.UseSignInLink(ctx, tokenHash, time.Now())
		if err != nil {
			return err
		}
		if u, err = d.Store.UserByID(ctx, l.UserID); err != nil {
			return err
		}
		if u.Disabled {
			return fmt.Errorf("sign-in link: %w (the person is disabled)", store.ErrNotFound)
		}
		return d.auditUser(ctx, "user.signin_link_used", u.Username, u, "made by "+l.CreatedBy)
	})
	return u, err
}
