package oidc

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/gatehouse-id/gatehouse/internal/authn"
	"github.com/gatehouse-id/gatehouse/internal/config"
	"github.com/gatehouse-id/gatehouse/internal/store"
)

const grantDeviceCode = "urn:ietf:params:oauth:grant-type:device_code"

// maxTokenForm bounds a token request: a few hundred bytes in practice.
const maxTokenForm = 16 << 10

// authenticateClient identifies the client of a back-channel request: HTTP Basic
// (client_secret_basic), form fields (client_secret_post), or a public client's bare
// client_id. Secrets are compared in constant time.
func (p *Provider) authenticateClient(r *http.Request) (*config.Client, *oauthError) {
	id, secret, basic := r.BasicAuth()
	if basic && (r.PostForm.Has("client_secret") || r.PostForm.Has("client_assertion")) {
		// One method per request (RFC 6749 2.3): which one would have counted?
		return nil, &oauthError{http.StatusBadRequest, "invalid_request", "authenticate the client one way: HTTP Basic or client_secret in the form, not both"}
	}
	if basic {
		// RFC 6749 2.3.1: both are form-encoded before Basic encoding.
		var err1, err2 error
		id, err1 = url.QueryUnescape(id)
		secret, err2 = url.QueryUnescape(secret)
		if err1 != nil || err2 != nil {
			return nil, &oauthError{http.StatusUnauthorized, "invalid_client", "the Authorization header is not form-encoded client credentials"}
		}
	} else {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	if id == "" {
		return nil, &oauthError{http.StatusUnauthorized, "invalid_client", "say which client is asking: HTTP Basic authentication or client_id"}
	}
	c, ok := p.cfg().OIDC.ClientByID(id)
	unknown := &oauthError{http.StatusUnauthorized, "invalid_client", "unknown client or wrong secret"}
	if !ok {
		return nil, unknown
	}
	if c.Public() {
		if secret != "" {
			return nil, &oauthError{http.StatusUnauthorized, "invalid_client", "a public client sends no secret"}
		}
		return c, nil
	}
	// Secrets are throttled like passwords: each guess of a hashed one is an argon2id
	// run on the shared hasher, and any guess must not be free.
	limits := authn.ClientSecretLimits(authn.Network(p.Pages.ClientAddress(r)), c.ID)
	if wait, err := p.Regulator.Wait(r.Context(), limits...); err != nil {
		return nil, &oauthError{http.StatusServiceUnavailable, "temporarily_unavailable", "Gatehouse cannot reach its database right now"}
	} else if wait > 0 {
		return nil, &oauthError{http.StatusTooManyRequests, "invalid_client",
			fmt.Sprintf("too many wrong client secrets from this address; try again in %d minutes", int(wait.Minutes())+1)}
	}
	if secret == "" || !p.secretMatches(r.Context(), c, secret) {
		p.Audit(store.Event{Kind: "oidc.client_auth_failed", Actor: "anonymous", Target: c.ID})
		if err := p.Regulator.Fail(r.Context(), limits...); err != nil {
			return nil, &oauthError{http.StatusServiceUnavailable, "temporarily_unavailable", "Gatehouse cannot reach its database right now"}
		}
		return nil, unknown
	}
	return c, nil
}

func (p *Provider) secretMatches(ctx context.Context, c *config.Client, secret string) bool {
	if strings.HasPrefix(c.Secret, "$argon2id$") {
		return p.Hasher.Verify(ctx, c.Secret, secret) == nil
	}
	a, b := sha256.Sum256([]byte(secret)), sha256.Sum256([]byte(c.Secret))
	return subtle.ConstantTimeCompare(a[:], b[:]) == 1
}

// token is the token endpoint.
func (p *Provider) token(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxTokenForm)
	if err := r.ParseForm(); err != nil {
		p.writeError(w, badRequest("invalid_request", "the body is not a form of at most 16 KiB"))
		return
	}
	c, oerr := p.authenticateClient(r)
	if oerr != nil {
		p.writeError(w, oerr)
		p.count(r.PostForm.Get("grant_type"), "refused")
		return
	}
	gt := r.PostForm.Get("grant_type")
	name, known := grantNames[gt]
	var resp map[string]any
	var err error
	switch {
	case gt == "":
		err = badRequest("invalid_request", "grant_type is missing")
	case !known:
		err = badRequest("unsupported_grant_type", "grant_type "+clip(gt)+" is not supported")
	case !c.HasGrant(name):
		err = badRequest("unauthorized_client", "this client may not use the "+name+" grant (see its grant_types)")
	case name == "authorization_code":
		resp, err = p.exchangeCode(r, c)
	case name == "refresh_token":
		resp, err = p.refresh(r, c)
	case name == "client_credentials":
		resp, err = p.clientCredentials(r, c)
	default:
		resp, err = p.deviceToken(r, c)
	}
	var oe *oauthError
	result := "issued"
	switch {
	case errors.As(err, &oe):
		result = "refused"
		p.writeError(w, oe)
	case err != nil:
		result = "error"
		p.serverError(w, err)
	default:
		writeJSON(w, http.StatusOK, resp)
	}
	p.count(gt, result)
}

// count records a token endpoint answer; unknown grant types share one label, so a
// client cannot grow the metric.
func (p *Provider) count(grant, result string) {
	if p.Tokens == nil {
		return
	}
	name, known := grantNames[grant]
	if !known {
		name = "other"
	}
	p.Tokens.WithLabelValues(name, result).Inc()
}

// grantNames maps the grant types of token requests to the names clients list them by
// in grant_types (config.OIDCGrantTypes).
var grantNames = map[string]string{
	"authorization_code": "authorization_code", "refresh_token": "refresh_token",
	"client_credentials": "client_credentials", grantDeviceCode: "device_code",
}

func (p *Provider) exchangeCode(r *http.Request, c *config.Client) (map[string]any, error) {
	ctx := r.Context()
	invalid := badRequest("invalid_grant", "the code is unknown, expired, spent, or was issued to another client or redirect_uri")
	t, fresh, err := p.redeem(ctx, c, "code", r.PostForm.Get("code"), invalid)
	if err != nil {
		return nil, err
	}
	if !fresh {
		if !t.UsedAt.IsZero() || time.Now().Before(t.ExpiresAt) {
			// A second redemption: someone copied the code. Everything it gave goes.
			n, err := p.Store.RevokeOIDCFamily(ctx, t.Family)
			if err != nil {
				return nil, err
			}
			p.Audit(store.Event{Kind: "oidc.code_reused", Actor: c.ID, Target: t.UserID, Detail: "revoked the grant's tokens"})
			p.Log.Warn("an authorization code was redeemed twice: the tokens it gave were revoked", "client", c.ID, "tokens", n)
		}
		return nil, invalid
	}
	d := decodeGrant(t.Data)
	redirect := r.PostForm.Get("redirect_uri")
	if redirect != d.RedirectURI && !(redirect == "" && len(c.RedirectURIs) == 1) {
		return nil, invalid
	}
	verifier := r.PostForm.Get("code_verifier")
	switch {
	case d.Challenge == "" && verifier != "":
		return nil, badRequest("invalid_grant", "code_verifier sent, but the authorization request had no code_challenge")
	case d.Challenge != "" && !pkceMatches(d.Challenge, verifier):
		return nil, badRequest("invalid_grant", "code_verifier does not match the code_challenge")
	}
	return p.issue(ctx, c, t.UserID, strings.Fields(t.Scope), t.Family, d, true)
}

// redeem finds a code or refresh token issued to c and spends it, reporting whether
// this call spent it (false: it was spent before, or has expired). A token of another
// kind or client is the invalid error.
func (p *Provider) redeem(ctx context.Context, c *config.Client, kind, value string, invalid *oauthError) (store.OIDCToken, bool, error) {
	t, err := p.Store.OIDCToken(ctx, hashToken(value))
	if errors.Is(err, store.ErrNotFound) || (err == nil && (t.Kind != kind || t.ClientID != c.ID)) {
		return t, false, invalid
	}
	if err != nil {
		return t, false, err
	}
	fresh, err := p.Store.UseOIDCToken(ctx, t.Hash, time.Now())
	return t, fresh, err
}

// pkceMatches checks an S256 challenge (RFC 7636 4.6).
func pkceMatches(challenge, verifier string) bool {
	if !challengePattern.MatchString(verifier) {
		return false
	}
	sum := sha256.Sum256([]byte(verifier))
	return subtle.ConstantTimeCompare([]byte(base64.RawURLEncoding.EncodeToString(sum[:])), []byte(challenge)) == 1
}

func (p *Provider) refresh(r *http.Request, c *config.Client) (map[string]any, error) {
	ctx := r.Context()
	invalid := badRequest("invalid_grant", "the refresh token is unknown, expired, revoked, or was issued to another client")
	t, err := p.Store.OIDCToken(ctx, hashToken(r.PostForm.Get("refresh_token")))
	if errors.Is(err, store.ErrNotFound) || (err == nil && (t.Kind != "refresh" || t.ClientID != c.ID)) {
		return nil, invalid
	}
	if err != nil {
		return nil, err
	}
	// A request that is refused leaves the token as it was: checked before spending.
	scopes := strings.Fields(t.Scope)
	if asked := strings.Fields(r.PostForm.Get("scope")); len(asked) > 0 {
		for _, s := range asked {
			if !slices.Contains(scopes, s) {
				return nil, badRequest("invalid_scope", "a refresh may only narrow the scopes granted: "+clip(s)+" was not")
			}
		}
		scopes = asked
	}
	fresh, err := p.Store.UseOIDCToken(ctx, t.Hash, time.Now())
	if err != nil {
		return nil, err
	}
	if !fresh {
		// Spent before (or expired). Within the reuse grace that is a client racing
		// itself — parallel requests refreshing at once, or a retry after a lost
		// answer — and it gets a valid pair of its own; after it, a copy of the token
		// is in someone else's hands, and the whole grant goes.
		if t, err = p.Store.OIDCToken(ctx, t.Hash); err != nil {
			return nil, invalid
		}
		switch {
		case t.UsedAt.IsZero():
			return nil, invalid // expired unused
		case time.Since(t.UsedAt) <= p.cfg().OIDC.RefreshReuseGrace.D():
			// fall through to issue
		default:
			if _, err := p.Store.RevokeOIDCFamily(ctx, t.Family); err != nil {
				return nil, err
			}
			p.Audit(store.Event{Kind: "oidc.refresh_token_reused", Actor: c.ID, Target: t.UserID, Detail: "revoked the grant"})
			p.Log.Warn("a rotated refresh token was used again after the reuse grace: the grant is revoked", "client", c.ID, "user", t.UserID)
			return nil, invalid
		}
	}
	d := decodeGrant(t.Data)
	d.Nonce = "" // a nonce belongs to the first ID token only
	return p.issue(ctx, c, t.UserID, scopes, t.Family, d, true)
}

func (p *Provider) clientCredentials(r *http.Request, c *config.Client) (map[string]any, error) {
	var scopes []string
	for _, s := range strings.Fields(r.PostForm.Get("scope")) {
		if s == "openid" || s == "offline_access" || !slices.Contains(c.AllowedScopes(), s) {
			return nil, badRequest("invalid_scope", "scope "+clip(s)+" is not available to a client acting for itself")
		}
		scopes = append(scopes, s)
	}
	_, family := newToken()
	return p.issue(r.Context(), c, "", scopes, family, grantData{}, false)
}

// issue makes the tokens of a grant: an access token always, an ID token for openid,
// and, when the client may refresh, a refresh token: an online one, ending with the
// Gatehouse sign-in the grant was given in, or for offline_access one that outlives it. The user must
// still exist, be enabled and be allowed to use the client.
func (p *Provider) issue(ctx context.Context, c *config.Client, userID string, scopes []string, family string, d grantData, forUser bool) (map[string]any, error) {
	now := time.Now()
	accessTTL, idTTL, refreshTTL := c.Lifetimes()
	var idClaims map[string]any
	if forUser {
		u, groups, err := p.user(ctx, userID)
		if errors.Is(err, store.ErrNotFound) || errors.Is(err, errDisabled) || (err == nil && !p.allowed(c, groups)) {
			if _, err := p.Store.RevokeOIDCFamily(ctx, family); err != nil {
				return nil, err
			}
			return nil, badRequest("invalid_grant", "the user no longer exists, is disabled, or may no longer use this app")
		}
		if err != nil {
			return nil, err
		}
		idClaims = claims(c, u, groups, scopes)
	}
	refreshEnds := now.Add(refreshTTL)
	if forUser && d.SID != "" {
		ends, err := p.signInEnds(ctx, d.SID, userID)
		if err != nil {
			return nil, err
		}
		if online(d, scopes) {
			if ends.IsZero() {
				if _, err := p.Store.RevokeOIDCFamily(ctx, family); err != nil {
					return nil, err
				}
				return nil, badRequest("invalid_grant", "the Gatehouse sign-in this grant was given in has ended (signed out, revoked or expired); sign in again")
			}
			refreshEnds = minTime(refreshEnds, ends)
		}
		if c.BackchannelLogoutURI != "" && !ends.IsZero() {
			if err := p.Store.AddOIDCLogout(ctx, store.OIDCLogout{SID: d.SID, ClientID: c.ID, UserID: userID}); err != nil {
				return nil, err
			}
		}
	}
	access, accessHash := newToken()
	scope := strings.Join(scopes, " ")
	tokenData := grantData{AuthTime: d.AuthTime, AMR: d.AMR, SID: d.SID}.encode()
	if err := p.Store.AddOIDCToken(ctx, store.OIDCToken{Hash: accessHash, Kind: "access", ClientID: c.ID, UserID: userID,
		Family: family, Scope: scope, Data: tokenData, CreatedAt: now, ExpiresAt: now.Add(accessTTL)}); err != nil {
		return nil, err
	}
	resp := map[string]any{"access_token": access, "token_type": "Bearer", "expires_in": int(accessTTL.Seconds()), "scope": scope}
	if forUser && c.HasGrant("refresh_token") && (d.SID != "" || slices.Contains(scopes, "offline_access")) {
		refresh, refreshHash := newToken()
		if err := p.Store.AddOIDCToken(ctx, store.OIDCToken{Hash: refreshHash, Kind: "refresh", ClientID: c.ID, UserID: userID,
			Family: family, Scope: scope, Data: tokenData, CreatedAt: now, ExpiresAt: refreshEnds}); err != nil {
			return nil, err
		}
		resp["refresh_token"] = refresh
	}
	if forUser && slices.Contains(scopes, "openid") {
		idClaims["iss"] = p.issuer()
		idClaims["aud"] = c.ID
		idClaims["azp"] = c.ID
		idClaims["iat"] = now.Unix()
		idClaims["exp"] = now.Add(idTTL).Unix()
		if d.AuthTime != 0 {
			idClaims["auth_time"] = d.AuthTime
		}
		if d.Nonce != "" {
			idClaims["nonce"] = d.Nonce
		}
		if len(d.AMR) > 0 {
			idClaims["amr"] = d.AMR
		}
		if d.SID != "" {
			idClaims["sid"] = d.SID
		}
		sum := sha256.Sum256([]byte(access))
		idClaims["at_hash"] = base64.RawURLEncoding.EncodeToString(sum[:16])
		idToken, err := p.sign(ctx, idClaims)
		if err != nil {
			return nil, err
		}
		resp["id_token"] = idToken
	}
	return resp, nil
}

// signInEnds says until when the Gatehouse sign-in sid of userID lasts: the latest
// expiry of its unexpired sessions, zero once it has ended (signed out, revoked,
// expired).
func (p *Provider) signInEnds(ctx context.Context, sid, userID string) (time.Time, error) {
	sessions, err := p.Store.SessionsBySID(ctx, sid)
	if err != nil {
		return time.Time{}, err
	}
	var ends time.Time
	now := time.Now()
	for _, s := range sessions {
		if s.UserID == userID && s.ExpiresAt.After(now) && s.ExpiresAt.After(ends) {
			ends = s.ExpiresAt
		}
	}
	return ends, nil
}

// online reports whether a grant lasts only as long as the sign-in it was given in.
func online(d grantData, scopes []string) bool {
	return d.SID != "" && !slices.Contains(scopes, "offline_access")
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}
