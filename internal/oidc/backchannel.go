package oidc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gatehouse-id/gatehouse/internal/store"
)

// Back-channel logout (OpenID Back-Channel Logout 1.0). When a client with a
// backchannel_logout_uri is given tokens in a sign-in, a row in oidc_logouts waits for
// that sign-in to end. Nothing that ends a sign-in has to remember the apps: signing
// out, an admin revoking sessions, disabling or deleting the user and plain expiry all
// end it the same way, by leaving no unexpired session with its sid. Every replica
// polls for rows whose sign-in has ended; a claim is exclusive until its backoff, so one
// replica delivers each logout, and another takes over if that one dies mid-way.

// LogoutEvent is the events member of a logout token.
const LogoutEvent = "http://schemas.openid.net/event/backchannel-logout"

// logoutBackoff is the pause before a claimed logout may be tried again, times the
// attempts so far: 30 s, 1 min, 1.5 min, … (Provider.SetLogoutBackoff changes it).
const logoutBackoff = 30 * time.Second

// logoutAttempts is how often a logout is tried before it is given up on: the pauses
// add up to about two and a half hours, long enough for an app to be restarted.
const logoutAttempts = 24

// logoutTimeout bounds one delivery: the app answers a logout token at once or not at all.
const logoutTimeout = 5 * time.Second

// WantsLogouts reports whether any client asks for back-channel logouts, so that a
// deployment without one never polls for them.
func (p *Provider) WantsLogouts() bool {
	for i := range p.cfg().OIDC.Clients {
		if p.cfg().OIDC.Clients[i].BackchannelLogoutURI != "" {
			return true
		}
	}
	return false
}

// DeliverLogouts sends every back-channel logout that is due and returns when none is
// left to claim. Failed deliveries wait for their backoff.
func (p *Provider) DeliverLogouts(ctx context.Context) error {
	for ctx.Err() == nil {
		due, err := p.Store.ClaimOIDCLogouts(ctx, time.Now(), p.logoutBackoff(), 20)
		if err != nil || len(due) == 0 {
			return err
		}
		for _, l := range due {
			p.deliverLogout(ctx, l)
		}
	}
	return ctx.Err()
}

// deliverLogout posts one logout token and forgets the logout once the app took it,
// refused it (a 4xx: retrying sends the same token), or after the last attempt.
func (p *Provider) deliverLogout(ctx context.Context, l store.OIDCLogout) {
	c, ok := p.cfg().OIDC.ClientByID(l.ClientID)
	if !ok || c.BackchannelLogoutURI == "" { // the app left the config, or stopped asking
		p.forgetLogout(ctx, l)
		return
	}
	err := p.postLogout(ctx, c.ID, c.BackchannelLogoutURI, l)
	var refused *logoutRefused
	switch {
	case err == nil:
		p.Audit(store.Event{Kind: "oidc.backchannel_logout", Actor: "gatehouse", Target: c.ID, Detail: "sign-in " + l.SID})
	case errors.As(err, &refused) || l.Attempts >= logoutAttempts:
		p.Log.Error("back-channel logout given up: the app may still have the sign-in", "client", c.ID, "attempts", l.Attempts, "error", err.Error())
		p.Audit(store.Event{Kind: "oidc.backchannel_logout_failed", Actor: "gatehouse", Target: c.ID, Detail: clip(err.Error())})
	default:
		p.Log.Warn("back-channel logout failed; it is tried again", "client", c.ID, "attempt", l.Attempts,
			"next_in", (p.logoutBackoff() * time.Duration(l.Attempts)).String(), "error", err.Error())
		return
	}
	p.forgetLogout(ctx, l)
}

func (p *Provider) logoutBackoff() time.Duration {
	if d := time.Duration(p.backoff.Load()); d > 0 {
		return d
	}
	return logoutBackoff
}

func (p *Provider) forgetLogout(ctx context.Context, l store.OIDCLogout) {
	if err := p.Store.DeleteOIDCLogout(ctx, l.SID, l.ClientID); err != nil {
		// Left claimed: it is sent again after its backoff, which apps must accept.
		p.Log.Warn("forgetting a delivered back-channel logout failed", "client", l.ClientID, "error", err.Error())
	}
}

// logoutRefused is an app's 4xx answer to a logout token.
type logoutRefused struct{ status int }

func (e *logoutRefused) Error() string {
	return fmt.Sprintf("the app refused the logout token with HTTP %d", e.status)
}

// postLogout signs and sends the logout token for l to uri.
func (p *Provider) postLogout(ctx context.Context, clientID, uri string, l store.OIDCLogout) error {
	token, err := p.logoutToken(ctx, clientID, l)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, logoutTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, uri, strings.NewReader(url.Values{"logout_token": {token}}.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := logoutClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	switch {
	case resp.StatusCode/100 == 2:
		return nil
	case resp.StatusCode/100 == 4:
		return &logoutRefused{resp.StatusCode}
	default:
		return fmt.Errorf("the app answered the logout token with HTTP %d", resp.StatusCode)
	}
}

// logoutClient follows no redirects: a logout token goes where the config says only.
var logoutClient = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// logoutToken makes the signed logout token (Back-Channel Logout 1.0, 2.4): sid always,
// and sub when the user still exists to be named.
func (p *Provider) logoutToken(ctx context.Context, clientID string, l store.OIDCLogout) (string, error) {
	c, _ := p.cfg().OIDC.ClientByID(clientID)
	now := time.Now()
	_, jti := newToken()
	claims := map[string]any{
		"iss": p.issuer(), "aud": clientID, "iat": now.Unix(), "exp": now.Add(2 * time.Minute).Unix(), "jti": jti,
		"sid": l.SID, "events": map[string]any{LogoutEvent: map[string]any{}},
	}
	u, err := p.Store.UserByID(ctx, l.UserID)
	switch {
	case err == nil:
		claims["sub"] = subject(c, u)
	case !errors.Is(err, store.ErrNotFound):
		return "", err
	}
	return p.signTyped(ctx, "logout+jwt", claims)
}
