package identity

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/gatehouse-id/gatehouse/internal/store"
)

// APIScopes are what an admin API token may be allowed, one capability each.
var APIScopes = []string{
	"users:read", "users:write", "groups:read", "groups:write",
	"credentials:read", "credentials:write", "sessions:read", "sessions:revoke",
	"audit:read", "tokens:read", "tokens:write",
}

// DefaultAPIScopes are a new token's when none are named: reading people and groups.
var DefaultAPIScopes = []string{"users:read", "groups:read"}

// DefaultAPITokenLifetime is a new token's when none is named; "never" must be asked.
const DefaultAPITokenLifetime = 90 * 24 * time.Hour

// APITokenPrefix starts every token, so that secret scanners and people recognise one.
const APITokenPrefix = "gatehouse_"

// ErrScopeNotHeld means a token was asked to hold a scope its maker does not hold.
var ErrScopeNotHeld = errors.New("a token cannot be given a scope its maker does not hold")

// HashAPIToken is how a token is stored and looked up.
func HashAPIToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// CheckAPITokenName validates a token's name.
func CheckAPITokenName(name string) error {
	if err := CheckDisplayName(name); err != nil || strings.TrimSpace(name) == "" || len(name) > 64 {
		return fmt.Errorf("token name %q: give 1 to 64 printable characters, like \"homepage widget\"", name)
	}
	return nil
}

// CheckAPIScopes validates scope names.
func CheckAPIScopes(scopes []string) error {
	for _, s := range scopes {
		if !slices.Contains(APIScopes, s) {
			return fmt.Errorf("unknown scope %q: use %s", s, strings.Join(APIScopes, ", "))
		}
	}
	return nil
}

// CreateAPIToken makes a named token with scopes, lasting lifetime (0: never), and
// returns its value, shown this once. maker is who asks ("cli", or a token's name)
// and holds makerScopes (nil: every scope, as the CLI on the server does).
func (d *Directory) CreateAPIToken(ctx context.Context, maker string, makerScopes []string, name string, scopes []string, lifetime time.Duration) (string, store.APIToken, error) {
	if err := CheckAPITokenName(name); err != nil {
		return "", store.APIToken{}, err
	}
	if len(scopes) == 0 {
		scopes = DefaultAPIScopes
	}
	if err := CheckAPIScopes(scopes); err != nil {
		return "", store.APIToken{}, err
	}
	for _, s := range scopes {
		if makerScopes != nil && !slices.Contains(makerScopes, s) {
			return "", store.APIToken{}, fmt.Errorf("%w: %s", ErrScopeNotHeld, s)
		}
	}
	if lifetime < 0 {
		return "", store.APIToken{}, errors.New("a token's lifetime cannot be negative")
	}
	var b [32]byte
	_, _ = rand.Read(b[:])
	token := APITokenPrefix + base64.RawURLEncoding.EncodeToString(b[:])
	now := time.Now().UTC().Truncate(time.Microsecond)
	t := store.APIToken{Name: name, Hash: HashAPIToken(token), Scopes: strings.Join(slices.Compact(slices.Sorted(slices.Values(scopes))), " "),
		CreatedBy: maker, CreatedAt: now}
	if lifetime > 0 {
		t.ExpiresAt = now.Add(lifetime)
	}
	err := d.write(ctx, false, func(d *Directory) error {
		var err error
		if t, err = d.Store.CreateAPIToken(ctx, t); err != nil {
			return err
		}
		expires := "never expires"
		if !t.ExpiresAt.IsZero() {
			expires = "expires " + t.ExpiresAt.Format(time.RFC3339)
		}
		return d.audit(ctx, "token.created", maker, name, t.ID, t.Scopes+"; "+expires)
	})
	if err != nil {
		return "", t, err
	}
	return token, t, nil
}

// RevokeAPIToken deletes a token by exact id or name.
func (d *Directory) RevokeAPIToken(ctx context.Context, actor, idOrName string) error {
	return d.write(ctx, false, func(d *Directory) error {
		all, err := d.Store.ListAPITokens(ctx)
		if err != nil {
			return err
		}
		i := slices.IndexFunc(all, func(t store.APIToken) bool { return t.ID == idOrName || t.Name == idOrName })
		if i < 0 {
			return fmt.Errorf("no API token has the id or name %q (list them with: gatehouse token list): %w", idOrName, store.ErrNotFound)
		}
		if err := d.Store.DeleteAPIToken(ctx, all[i].ID); err != nil {
			return err
		}
		return d.audit(ctx, "token.revoked", actor, all[i].Name, all[i].ID, "")
	})
}
