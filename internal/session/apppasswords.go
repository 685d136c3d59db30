package session

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/gatehouse-id/gatehouse/internal/identity"
	"github.com/gatehouse-id/gatehouse/internal/store"
)

// AppPasswordMethod is the Method of a principal that presented an app password.
const AppPasswordMethod = "app_password"

// neverExpires stands in for an app password without an expiry, so the cache's
// expiry check needs no special case.
var neverExpires = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)

// LookupAppPassword resolves an app password to its owner, as Lookup does a cookie:
// verified once (a SHA-256 lookup, never argon2id: the secret is random), then cached
// and found again by a keyed hash of the secret, and dropped on every replica through
// the change feed when it is revoked or its owner changes. (nil, nil) means no such
// app password, or an expired one, or a disabled owner. The principal's
// AppPasswordHosts says where it may be used; checking that, and the username of a
// Basic header, is the caller's. secret is read, never kept: forward auth passes the
// bytes it decoded from an Authorization header.
func (m *Manager) LookupAppPassword(ctx context.Context, secret []byte) (*Principal, error) {
	if !identity.AppPasswordShape(secret) {
		return nil, nil
	}
	key, now := m.cache.keyOfBytes(secret), time.Now()
	if p, ok := m.cache.getByKey(key, now); ok {
		m.markUsed(p.TokenHash, now)
		return p, nil
	}
	hash := identity.HashAppPassword(secret)
	return m.resolve(ctx, hash, key, m.markUsed, func(ctx context.Context, hash string, now time.Time) (*Principal, error) {
		ap, err := m.store.AppPasswordByHash(ctx, hash)
		switch {
		case errors.Is(err, store.ErrNotFound):
			return nil, nil
		case err != nil:
			return nil, err
		case !ap.ExpiresAt.IsZero() && !now.Before(ap.ExpiresAt):
			return nil, nil
		}
		expires := ap.ExpiresAt
		if expires.IsZero() {
			expires = neverExpires
		}
		return m.principal(ctx, store.Session{ID: ap.ID, TokenHash: hash, UserID: ap.UserID, AuthMethod: AppPasswordMethod,
			CreatedAt: ap.CreatedAt, ExpiresAt: expires}, func(p *Principal) { p.AppPasswordHosts = strings.Fields(ap.Hosts) })
	})
}

func (m *Manager) markUsed(hash string, at time.Time) {
	m.seenMu.Lock()
	m.used[hash] = at
	m.seenMu.Unlock()
}
