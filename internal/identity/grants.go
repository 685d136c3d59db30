package identity

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/gatehouse-id/gatehouse/internal/store"
)

// Grant is what one app holds of a person: the access and refresh tokens of one
// authorization (one token family), however often they were refreshed.
type Grant struct {
	ID        string // the family: revoking it ends every token of the grant
	ClientID  string
	Scope     string
	CreatedAt time.Time // when the authorization was first granted
	ExpiresAt time.Time // when its last token runs out, unless refreshed again
	Offline   bool      // it holds a refresh token
}

// Grants lists a person's live grants, oldest first.
func (d *Directory) Grants(ctx context.Context, username string) ([]Grant, error) {
	u, err := d.Store.UserByUsername(ctx, username)
	if err != nil {
		return nil, err
	}
	tokens, err := d.Store.UserOIDCTokens(ctx, u.ID, time.Now())
	if err != nil {
		return nil, err
	}
	var out []Grant
	index := map[string]int{}
	for _, t := range tokens {
		if t.Kind != "access" && t.Kind != "refresh" || t.Family == "" {
			continue // codes and device codes are sign-ins under way, not grants yet
		}
		i, ok := index[t.Family]
		if !ok {
			i, index[t.Family] = len(out), len(out)
			out = append(out, Grant{ID: t.Family, ClientID: t.ClientID, Scope: t.Scope, CreatedAt: t.CreatedAt})
		}
		g := &out[i]
		g.CreatedAt = minTime(g.CreatedAt, t.CreatedAt)
		if t.ExpiresAt.After(g.ExpiresAt) {
			g.ExpiresAt = t.ExpiresAt
		}
		g.Offline = g.Offline || t.Kind == "refresh"
	}
	return out, nil
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// RevokeGrant ends one of a person's grants by its exact id: the app's access and
// refresh tokens stop working at once, and it must ask the person to sign in again.
func (d *Directory) RevokeGrant(ctx context.Context, actor, username, id string) error {
	u, err := d.Store.UserByUsername(ctx, username)
	if err != nil {
		return err
	}
	grants, err := d.Grants(ctx, username)
	if err != nil {
		return err
	}
	i := slices.IndexFunc(grants, func(g Grant) bool { return g.ID == id })
	if i < 0 {
		return fmt.Errorf("%s has no OpenID Connect grant with the id %q (list them with GET /api/v1/users/%s/grants): %w", username, id, username, store.ErrNotFound)
	}
	return d.write(ctx, false, func(d *Directory) error {
		n, err := d.Store.RevokeOIDCFamily(ctx, id)
		if err != nil {
			return err
		}
		return d.auditUser(ctx, "oidc.grant_revoked", actor, u, fmt.Sprintf("%s (%s): %d tokens", grants[i].ClientID, strings.TrimSpace(grants[i].Scope), n),
			"client_id", grants[i].ClientID, "grant_id", id)
	})
}
