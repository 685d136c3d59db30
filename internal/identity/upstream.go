package identity

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/gatehouse-id/gatehouse/internal/store"
)

// UpstreamClaims is what another identity provider said about the person it signed in.
type UpstreamClaims struct {
	Provider, Subject string
	Email             string
	EmailVerified     bool
	Name              string
	PreferredUsername string
}

// ErrNotLinked is an upstream account that no Gatehouse account is linked to.
var ErrNotLinked = errors.New("no Gatehouse account is linked to this account")

// ErrLinkedElsewhere is an upstream account linked to another Gatehouse account.
var ErrLinkedElsewhere = errors.New("this account is linked to another Gatehouse account already: remove it there first")

// UpstreamUser returns the account an upstream identity is linked to; ErrNotLinked
// if none. A disabled account is refused like a disabled password account.
func (d *Directory) UpstreamUser(ctx context.Context, provider, subject string) (store.User, error) {
	l, err := d.Store.UpstreamIdentity(ctx, provider, subject)
	if errors.Is(err, store.ErrNotFound) {
		return store.User{}, ErrNotLinked
	} else if err != nil {
		return store.User{}, err
	}
	return d.Store.UserByID(ctx, l.UserID)
}

// LinkUpstream links an upstream identity to the account userID: its owner, signed
// in to Gatehouse with a credential of that account in the same browser, or an
// admin. A link to another account is refused (ErrLinkedElsewhere).
func (d *Directory) LinkUpstream(ctx context.Context, actor, userID string, c UpstreamClaims) error {
	return d.write(ctx, false, func(d *Directory) error {
		u, err := d.Store.UserByID(ctx, userID)
		if err != nil {
			return err
		}
		return d.link(ctx, actor, u, c, "linked")
	})
}

func (d *Directory) link(ctx context.Context, actor string, u store.User, c UpstreamClaims, how string) error {
	if l, err := d.Store.UpstreamIdentity(ctx, c.Provider, c.Subject); err == nil {
		if l.UserID == u.ID {
			return nil // linked already: nothing to do
		}
		return ErrLinkedElsewhere
	}
	if err := d.Store.LinkUpstream(ctx, store.UpstreamIdentity{Provider: c.Provider, Subject: c.Subject, UserID: u.ID, Email: c.Email}); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return ErrLinkedElsewhere
		}
		return err
	}
	return d.auditUser(ctx, "credential.added", actor, u, c.Provider+" account "+c.Subject+" "+how,
		"credential_kind", "upstream", "credential_id", UpstreamCredentialID(c.Provider, c.Subject), "provider", c.Provider)
}

// LinkByEmail links an upstream identity whose provider says its email is verified
// to the one account whose confirmed email that is, and returns it: the per-provider
// opt-in (login_providers[].link_by_email). Nothing is linked when the email is not
// verified, when no account or several have it, or when the account is disabled
// (ErrNotLinked).
func (d *Directory) LinkByEmail(ctx context.Context, c UpstreamClaims) (store.User, error) {
	if !c.EmailVerified || c.Email == "" {
		return store.User{}, ErrNotLinked
	}
	var u store.User
	err := d.write(ctx, false, func(d *Directory) error {
		users, err := d.Store.UsersByEmail(ctx, c.Email)
		if err != nil {
			return err
		}
		if len(users) != 1 || users[0].Disabled {
			return ErrNotLinked
		}
		u = users[0]
		return d.link(ctx, u.Username, u, c, "linked by its verified email "+c.Email)
	})
	return u, err
}

// JoinUpstream makes an account for an upstream identity with the invitation whose
// code hashes to invitationHash (OpenSignUp: none, where signup.open), linked to it,
// in one transaction. The username is
// the provider's preferred username, else the email's local part, made fit for a
// username; if that is taken, the same with a suffix derived from the identity, so a
// retry picks the same one. The email is kept only when the provider says it is
// verified.
func (d *Directory) JoinUpstream(ctx context.Context, invitationHash string, c UpstreamClaims) (store.User, error) {
	u := store.User{DisplayName: clipName(c.Name)}
	if c.EmailVerified && CheckEmail(c.Email) == nil {
		u.Email = c.Email
	}
	sum := sha256.Sum256([]byte(c.Provider + "\x00" + c.Subject))
	suffix := hex.EncodeToString(sum[:])[:6]
	base := usernameFrom(c.PreferredUsername)
	if base == "" {
		local, _, _ := strings.Cut(c.Email, "@")
		base = usernameFrom(local)
	}
	if base == "" {
		base = c.Provider + "-" + suffix
	}
	for _, candidate := range []string{base, base + "-" + suffix} {
		if _, err := d.Store.UserByUsername(ctx, candidate); errors.Is(err, store.ErrNotFound) {
			u.Username = candidate
			break
		} else if err != nil {
			return store.User{}, err
		}
	}
	if u.Username == "" {
		return store.User{}, fmt.Errorf("usernames %q and %q are taken: %w", base, base+"-"+suffix, store.ErrConflict)
	}
	return d.join(ctx, invitationHash, u, c.EmailVerified, &store.UpstreamIdentity{Provider: c.Provider, Subject: c.Subject, Email: c.Email})
}

// usernameFrom keeps what a username may hold of s, lower-cased, at most 32 bytes.
func usernameFrom(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || strings.ContainsRune("._-", r) {
			b.WriteRune(r)
		}
		if b.Len() == 32 {
			break
		}
	}
	return strings.Trim(b.String(), ".-_")
}

func clipName(s string) string {
	if CheckDisplayName(s) != nil {
		return ""
	}
	return s
}

// StartUpstreamFlow keeps a sign-in on its way through a provider.
func (d *Directory) StartUpstreamFlow(ctx context.Context, f store.UpstreamFlow) error {
	return d.Store.CreateUpstreamFlow(ctx, f)
}

// TakeUpstreamFlow returns (and forgets) the flow whose state hashes to stateHash.
func (d *Directory) TakeUpstreamFlow(ctx context.Context, stateHash string) (store.UpstreamFlow, error) {
	return d.Store.TakeUpstreamFlow(ctx, stateHash, time.Now())
}
