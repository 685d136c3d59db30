package identity

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/gatehouse-id/gatehouse/internal/store"
)

// AppPasswordPrefix starts every app password. Forward auth treats an Authorization
// header as an app password only when it carries this prefix, so an app's own Basic
// credentials behind a rule that accepts app passwords are left alone (never looked
// up, never counted as failed guesses), and secret scanners can recognise a leak.
const AppPasswordPrefix = "gatehouse-app-"

// appPasswordSecretLen is the length of the random part: 32 base32 characters, 160
// bits, in lower case so a person can type it into a phone.
const appPasswordSecretLen = 32

// MaxAppPasswordHosts bounds how many host patterns one app password names.
const MaxAppPasswordHosts = 20

var appPasswordEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// HashAppPassword is how an app password is stored and looked up. The secret is 160
// random bits, so a fast hash is enough and forward auth can look one up on a cache
// miss without an argon2id run. It takes bytes so that forward auth can hash what it
// decoded from a Basic header without copying it into a string first.
func HashAppPassword[S ~string | ~[]byte](secret S) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// AppPasswordShape reports whether s looks like an app password (prefix, length,
// alphabet), checked before any lookup so garbage costs no query.
func AppPasswordShape[S ~string | ~[]byte](s S) bool {
	if len(s) != len(AppPasswordPrefix)+appPasswordSecretLen || string(s[:len(AppPasswordPrefix)]) != AppPasswordPrefix {
		return false
	}
	for i := len(AppPasswordPrefix); i < len(s); i++ {
		if c := s[i]; !(c >= 'a' && c <= 'z' || c >= '2' && c <= '7') {
			return false
		}
	}
	return true
}

// CheckHostPattern validates a host an app password is for: a DNS name, or "*." and
// a domain for every subdomain (as in access rules).
func CheckHostPattern(h string) error {
	name := strings.TrimPrefix(h, "*.")
	bad := name == "" || len(h) > 253 || strings.Contains(name, "*") || strings.HasPrefix(name, ".") || strings.HasSuffix(name, ".") || strings.Contains(name, "..")
	for i := 0; i < len(name) && !bad; i++ {
		c := name[i]
		bad = !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.')
	}
	if bad {
		return fmt.Errorf("host %q: give a lower-case host name like dav.example.com, or *.example.com for every subdomain (no port, no scheme)", h)
	}
	return nil
}

// CreateAppPassword makes a named app password for username, good for hosts only and
// for lifetime (0: until revoked), and returns its secret, shown this once.
func (d *Directory) CreateAppPassword(ctx context.Context, actor, username, name string, hosts []string, lifetime time.Duration) (string, store.AppPassword, error) {
	if err := CheckDisplayName(name); err != nil || strings.TrimSpace(name) == "" || len(name) > 64 {
		return "", store.AppPassword{}, &FieldError{"name", fmt.Sprintf("app password name %q: give 1 to 64 printable characters naming the client, like \"phone calendar\"", name)}
	}
	for i := range hosts {
		hosts[i] = strings.ToLower(strings.TrimSpace(hosts[i]))
	}
	hosts = slices.Compact(slices.Sorted(slices.Values(hosts)))
	if len(hosts) == 0 || len(hosts) > MaxAppPasswordHosts {
		return "", store.AppPassword{}, &FieldError{"hosts", fmt.Sprintf("app password %q: name the 1 to %d hosts it may open, like dav.example.com", name, MaxAppPasswordHosts)}
	}
	for _, h := range hosts {
		if err := CheckHostPattern(h); err != nil {
			return "", store.AppPassword{}, &FieldError{"hosts", err.Error()}
		}
	}
	if lifetime < 0 {
		return "", store.AppPassword{}, &FieldError{"expires", "an app password's lifetime cannot be negative"}
	}
	u, err := d.Store.UserByUsername(ctx, username)
	if err != nil {
		return "", store.AppPassword{}, err
	}
	var b [appPasswordSecretLen * 5 / 8]byte
	_, _ = rand.Read(b[:])
	secret := AppPasswordPrefix + appPasswordEncoding.EncodeToString(b[:])
	now := time.Now().UTC().Truncate(time.Microsecond)
	p := store.AppPassword{UserID: u.ID, Name: name, Hash: HashAppPassword(secret), Hosts: strings.Join(hosts, " "), CreatedAt: now}
	if lifetime > 0 {
		p.ExpiresAt = now.Add(lifetime)
	}
	err = d.write(ctx, false, func(d *Directory) error {
		if p, err = d.Store.CreateAppPassword(ctx, p); err != nil {
			return err
		}
		return d.auditUser(ctx, "app_password.created", actor, u, fmt.Sprintf("%q for %s", name, p.Hosts),
			"app_password_id", p.ID, "name", name, "hosts", p.Hosts)
	})
	if err != nil {
		return "", p, err
	}
	return secret, p, nil
}

// AppPasswords lists a person's app passwords by name.
func (d *Directory) AppPasswords(ctx context.Context, username string) ([]store.AppPassword, error) {
	u, err := d.Store.UserByUsername(ctx, username)
	if err != nil {
		return nil, err
	}
	return d.Store.AppPasswords(ctx, u.ID)
}

// RevokeAppPassword deletes one of a person's app passwords by its exact id or name,
// and drops it from every replica's cache in the same transaction.
func (d *Directory) RevokeAppPassword(ctx context.Context, actor, username, idOrName string) (store.AppPassword, error) {
	u, err := d.Store.UserByUsername(ctx, username)
	if err != nil {
		return store.AppPassword{}, err
	}
	var gone store.AppPassword
	err = d.write(ctx, false, func(d *Directory) error {
		all, err := d.Store.AppPasswords(ctx, u.ID)
		if err != nil {
			return err
		}
		i := slices.IndexFunc(all, func(p store.AppPassword) bool { return p.ID == idOrName || p.Name == idOrName })
		if i < 0 {
			return fmt.Errorf("%s has no app password with the id or name %q (list them with: gatehouse app-password list %s): %w",
				u.Username, idOrName, u.Username, store.ErrNotFound)
		}
		if gone, err = d.Store.DeleteAppPassword(ctx, u.ID, all[i].ID); err != nil {
			return err
		}
		if err := d.change(ctx, store.ChangeSession, gone.Hash); err != nil {
			return err
		}
		return d.auditUser(ctx, "app_password.revoked", actor, u, fmt.Sprintf("%q", gone.Name), "app_password_id", gone.ID, "name", gone.Name)
	})
	return gone, err
}

// FieldError is a value a service refused: the field it came in and what to give
// instead. Callers show Detail as it is (a page) or name Field with it (the API).
type FieldError struct{ Field, Detail string }

func (e *FieldError) Error() string { return e.Detail }
