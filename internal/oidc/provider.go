// Package oidc owns Gatehouse's OpenID Connect provider: discovery, the signing keys
// and their JWKS, the authorization code flow with PKCE, refresh tokens with rotation
// and reuse detection, client credentials, the device authorization grant, userinfo,
// introspection, revocation and RP-initiated logout.
//
// Clients are code (config.OIDC). Everything issued is data: codes and tokens are
// random values stored only as SHA-256 hashes, so any replica can redeem what another
// issued and nothing lives in process memory. The authorize step rides on the
// Gatehouse login session, so someone signed in for forward auth is not asked again.
// Pages people see (consent, "not allowed", the device code form) are drawn by the
// web package through the Pages interface.
package oidc

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/gatehouse-id/gatehouse/internal/authn"
	"github.com/gatehouse-id/gatehouse/internal/config"
	"github.com/gatehouse-id/gatehouse/internal/identity"
	"github.com/gatehouse-id/gatehouse/internal/serverkey"
	"github.com/gatehouse-id/gatehouse/internal/session"
	"github.com/gatehouse-id/gatehouse/internal/signed"
	"github.com/gatehouse-id/gatehouse/internal/store"
)

// The provider's endpoints, below server.public_url.
const (
	PathDiscovery           = "/.well-known/openid-configuration"
	PathAuthorize           = "/oauth2/authorize"
	PathConsent             = "/oauth2/consent"
	PathToken               = "/oauth2/token"
	PathUserinfo            = "/oauth2/userinfo"
	PathJWKS                = "/oauth2/jwks"
	PathIntrospect          = "/oauth2/introspect"
	PathRevoke              = "/oauth2/revoke"
	PathLogout              = "/oauth2/logout"
	PathDeviceAuthorization = "/oauth2/device_authorization"
	PathDevice              = "/device"
)

// Pages draws what people see during OpenID Connect flows; the web package implements
// it with Gatehouse's templates, CSRF protection and session cookie.
type Pages interface {
	// Current returns who is signed in on this browser, or nil.
	Current(r *http.Request) *session.Principal
	// LoginURL and StepUpURL send the browser to sign in, or to add a second factor,
	// and come back to returnTo (a path on Gatehouse).
	LoginURL(returnTo string) string
	StepUpURL(returnTo string) string
	// ReauthURL asks whoever is signed in to sign in again, then returns to returnTo.
	ReauthURL(returnTo string) string
	// Message shows one sentence people can act on.
	Message(w http.ResponseWriter, r *http.Request, status int, title, text string)
	// Consent asks the signed-in user to let an app have some scopes.
	Consent(w http.ResponseWriter, r *http.Request, v ConsentView)
	// Device asks the signed-in user for a device's code, or to confirm it.
	Device(w http.ResponseWriter, r *http.Request, v DeviceView)
	// CheckForm reads a posted form and checks its CSRF token; when it returns false it
	// has answered the request.
	CheckForm(w http.ResponseWriter, r *http.Request) bool
	// EndSession signs the browser out of Gatehouse.
	EndSession(w http.ResponseWriter, r *http.Request) error
	// RevokeSession ends a session on every replica, as an admin's revocation does;
	// actor names who asked (the app).
	RevokeSession(ctx context.Context, actor string, s store.Session) error
	// NotAllowed tells the signed-in person they may not use an app, with a way back
	// that tells the app so.
	NotAllowed(w http.ResponseWriter, r *http.Request, v NotAllowedView)
	// ConfirmLogout asks the signed-in person whether to sign out, for an app.
	ConfirmLogout(w http.ResponseWriter, r *http.Request, v LogoutView)
	// ClientAddress is the address the request came from, believing only the proxies
	// the operator named: what guesses of device codes and client secrets are counted by.
	ClientAddress(r *http.Request) string
}

// ConsentView is what the consent page shows.
type ConsentView struct {
	Client  string   // the app's name
	Scopes  []string // what it asks for
	Request string   // the signed authorization request to post back
}

// NotAllowedView is what the "not allowed" page shows.
type NotAllowedView struct {
	Text   string // why, and whom to ask
	Client string // the app's name
	Return string // the app's redirect URI with error=access_denied
}

// LogoutView is what the sign-out confirmation page shows.
type LogoutView struct {
	Client  string // the app's name
	Request string // the signed logout request to post back as "confirm"
}

// DeviceView is what the device page shows: the code form, or a code to confirm.
type DeviceView struct {
	Status   int // the HTTP status; 0 is 200, or 400 with an Error
	UserCode string
	Client   string   // set when confirming
	Scopes   []string // set when confirming
	Error    string
}

// Provider is the OpenID Connect provider.
type Provider struct {
	Store  store.Store
	Config func() *config.Config
	Hasher *identity.Hasher // checks client secrets given as argon2id hashes
	Pages  Pages
	Audit  func(store.Event)
	Log    *slog.Logger
	// AdminGroups pass every client, as they pass every forward-auth rule.
	AdminGroups func() []string
	// Tokens, when set, counts token endpoint answers by grant type and result.
	Tokens *prometheus.CounterVec
	// Regulator throttles wrong client secrets and device codes, in the database.
	Regulator *authn.Regulator

	key  serverkey.Key
	ring keyring
	// backoff, when set, replaces the 30 s unit of back-channel logout retries.
	backoff atomic.Int64
}

// SetLogoutBackoff replaces the 30 s unit of back-channel logout retries (tests
// shorten it).
func (p *Provider) SetLogoutBackoff(d time.Duration) { p.backoff.Store(int64(d)) }

// SetKey sets the server key, which seals signing keys and signs consent requests.
func (p *Provider) SetKey(k serverkey.Key) { p.key = k }

func (p *Provider) cfg() *config.Config { return p.Config() }

func (p *Provider) issuer() string { return strings.TrimSuffix(p.cfg().Server.PublicURL, "/") }

func (p *Provider) signedKey() signed.Key {
	return signed.Key(p.key.Derive("gatehouse oidc signed requests"))
}

// Routes registers the provider's endpoints on mux.
func (p *Provider) Routes(mux *http.ServeMux) {
	public := func(h http.HandlerFunc) http.HandlerFunc { return corsAny(h) }
	mux.HandleFunc("GET "+PathDiscovery, public(p.discovery))
	mux.HandleFunc("GET "+PathJWKS, public(p.jwks))
	mux.HandleFunc("GET "+PathAuthorize, p.authorize)
	mux.HandleFunc("POST "+PathAuthorize, p.authorize)
	mux.HandleFunc("POST "+PathConsent, p.consent)
	for _, path := range []string{PathToken, PathUserinfo, PathRevoke, PathDeviceAuthorization} {
		mux.HandleFunc("OPTIONS "+path, p.cors(nil))
	}
	mux.HandleFunc("POST "+PathToken, p.cors(p.token))
	mux.HandleFunc("GET "+PathUserinfo, p.cors(p.userinfo))
	mux.HandleFunc("POST "+PathUserinfo, p.cors(p.userinfo))
	mux.HandleFunc("POST "+PathIntrospect, p.introspect)
	mux.HandleFunc("POST "+PathRevoke, p.cors(p.revoke))
	mux.HandleFunc("GET "+PathLogout, p.logout)
	mux.HandleFunc("POST "+PathLogout, p.logout)
	mux.HandleFunc("POST "+PathDeviceAuthorization, p.cors(p.deviceAuthorization))
	mux.HandleFunc("GET "+PathDevice, p.devicePage)
	mux.HandleFunc("POST "+PathDevice, p.deviceDecide)
}

// corsAny lets any web page read public documents (discovery, keys).
func corsAny(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Access-Control-Allow-Origin", "*")
		h(w, r)
	}
}

// cors lets single-page apps call the back-channel endpoints from the browser: an
// origin may when it is the origin of a registered redirect URI. A nil handler answers
// the preflight only.
func (p *Provider) cors(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		if origin != "" && p.knownOrigin(origin) {
			hdr := w.Header()
			hdr.Set("Access-Control-Allow-Origin", origin)
			hdr.Add("Vary", "Origin")
			if r.Method == http.MethodOptions {
				hdr.Set("Access-Control-Allow-Methods", "GET, POST")
				hdr.Set("Access-Control-Allow-Headers", "Authorization, Content-Type")
				hdr.Set("Access-Control-Max-Age", "600")
			}
		}
		if h == nil {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		h(w, r)
	}
}

func (p *Provider) knownOrigin(origin string) bool {
	for i := range p.cfg().OIDC.Clients {
		for _, uri := range p.cfg().OIDC.Clients[i].RedirectURIs {
			u, err := url.Parse(uri)
			if err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Scheme+"://"+u.Host == origin {
				return true
			}
		}
	}
	return false
}

func (p *Provider) discovery(w http.ResponseWriter, r *http.Request) {
	iss := p.issuer()
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer":                                         iss,
		"authorization_endpoint":                         iss + PathAuthorize,
		"token_endpoint":                                 iss + PathToken,
		"userinfo_endpoint":                              iss + PathUserinfo,
		"jwks_uri":                                       iss + PathJWKS,
		"end_session_endpoint":                           iss + PathLogout,
		"introspection_endpoint":                         iss + PathIntrospect,
		"revocation_endpoint":                            iss + PathRevoke,
		"device_authorization_endpoint":                  iss + PathDeviceAuthorization,
		"response_types_supported":                       []string{"code"},
		"response_modes_supported":                       responseModes[1:],
		"grant_types_supported":                          []string{"authorization_code", "refresh_token", "client_credentials", grantDeviceCode},
		"subject_types_supported":                        []string{"public"},
		"id_token_signing_alg_values_supported":          []string{"RS256", "ES256"},
		"scopes_supported":                               config.OIDCScopes,
		"claims_supported":                               []string{"iss", "sub", "aud", "azp", "exp", "iat", "auth_time", "nonce", "amr", "at_hash", "sid", "name", "preferred_username", "email", "email_verified", "groups"},
		"token_endpoint_auth_methods_supported":          authMethods,
		"introspection_endpoint_auth_methods_supported":  authMethods[:2],
		"revocation_endpoint_auth_methods_supported":     authMethods,
		"code_challenge_methods_supported":               []string{"S256"},
		"authorization_response_iss_parameter_supported": true,
		"request_parameter_supported":                    false,
		"request_uri_parameter_supported":                false,
		"claims_parameter_supported":                     false,
		"backchannel_logout_supported":                   true,
		"backchannel_logout_session_supported":           true,
	})
}

var authMethods = []string{"client_secret_basic", "client_secret_post", "none"}

func (p *Provider) jwks(w http.ResponseWriter, r *http.Request) {
	// Read afresh: a key another replica just made must be published everywhere at
	// once. Apps fetch this rarely and may cache it for max-age.
	keys, err := p.keys(r.Context(), true)
	if err != nil {
		p.serverError(w, err)
		return
	}
	set := jose.JSONWebKeySet{Keys: make([]jose.JSONWebKey, 0, len(keys))}
	for _, k := range keys {
		set.Keys = append(set.Keys, k.public())
	}
	w.Header().Set("Cache-Control", fmt.Sprintf("public, max-age=%d", int(jwksMaxAge.Seconds())))
	writeJSON(w, http.StatusOK, set)
}

// newToken returns a random 256-bit token and the hash it is stored under.
func newToken() (token, hash string) {
	var b [32]byte
	_, _ = rand.Read(b[:])
	token = base64.RawURLEncoding.EncodeToString(b[:])
	return token, hashToken(token)
}

func hashToken(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:])
}

// allowed reports whether someone in groups may use the client.
func (p *Provider) allowed(c *config.Client, groups []string) bool {
	if c.AllUsers {
		return true
	}
	for _, g := range groups {
		if slices.Contains(c.Groups, g) || slices.Contains(p.AdminGroups(), g) {
			return true
		}
	}
	return false
}

// user loads an enabled user with their effective groups.
func (p *Provider) user(ctx context.Context, id string) (store.User, []string, error) {
	u, err := p.Store.UserByID(ctx, id)
	if err != nil {
		return u, nil, err
	}
	if u.Disabled {
		return u, nil, errDisabled
	}
	direct, err := p.Store.UserGroupIDs(ctx, id)
	if err != nil {
		return u, nil, err
	}
	all, err := p.Store.ListGroups(ctx)
	if err != nil {
		return u, nil, err
	}
	return u, identity.EffectiveGroups(direct, all), nil
}

var errDisabled = errors.New("the account is disabled")

// claims are the identity claims a client gets for a user, by scope.
func claims(c *config.Client, u store.User, groups []string, scopes []string) map[string]any {
	out := map[string]any{"sub": subject(c, u)}
	if slices.Contains(scopes, "profile") {
		out["preferred_username"] = u.Username
		out["name"] = u.DisplayName
		if u.DisplayName == "" {
			out["name"] = u.Username
		}
	}
	if slices.Contains(scopes, "email") && u.Email != "" {
		// Only a confirmed address is ever in User.Email (one a person typed for
		// themselves waits in EmailPending until an admin confirms it), so it is
		// verified in the sense apps check: the account's owner did not choose it
		// unchecked.
		out["email"] = u.Email
		out["email_verified"] = true
	}
	if slices.Contains(scopes, "groups") {
		if groups == nil {
			groups = []string{}
		}
		out["groups"] = groups
	}
	return out
}

func subject(c *config.Client, u store.User) string {
	if c.Subject == "username" {
		return u.Username
	}
	return u.ID
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	if h.Get("Cache-Control") == "" {
		h.Set("Cache-Control", "no-store")
		h.Set("Pragma", "no-cache")
	}
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// oauthError is an error response of RFC 6749 section 5.2 (and its relatives).
type oauthError struct {
	status      int
	code        string
	description string
}

func (e *oauthError) Error() string { return e.code + ": " + e.description }

func badRequest(code, description string) *oauthError {
	return &oauthError{http.StatusBadRequest, code, description}
}

func (p *Provider) writeError(w http.ResponseWriter, e *oauthError) {
	if e.code == "invalid_client" {
		w.Header().Set("WWW-Authenticate", `Basic realm="gatehouse"`)
	}
	writeJSON(w, e.status, map[string]string{"error": e.code, "error_description": e.description})
}

func (p *Provider) serverError(w http.ResponseWriter, err error) {
	p.Log.Error("OpenID Connect request failed on a server error", "error", err.Error())
	writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "temporarily_unavailable",
		"error_description": "Gatehouse cannot reach its database right now; try again shortly."})
}

func signClaims(s jose.Signer, claims any) (string, error) {
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	jws, err := s.Sign(payload)
	if err != nil {
		return "", err
	}
	return jws.CompactSerialize()
}
