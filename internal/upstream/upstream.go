// Package upstream owns signing people in with other OpenID Connect providers, as
// their relying party: discovery (cached an hour, the last good copy kept while the
// provider is down), the authorization request with PKCE (S256) and a nonce, the code
// exchange, every check of the ID token (signature by the provider's published keys,
// issuer, audience, authorized party, expiry, nonce), and the userinfo read for claims
// the ID token leaves out. What a provider says is only believed as it says it: an
// email counts as verified only when email_verified is true.
package upstream

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/gatehouse-id/gatehouse/internal/config"
	"github.com/gatehouse-id/gatehouse/internal/identity"
)

// Timeout bounds each request to a provider.
const Timeout = 10 * time.Second

// discoveryTTL is how long a provider's discovery document and keys are used before
// they are read again; staleFor is how long a stale copy serves while the provider
// cannot be reached.
const (
	discoveryTTL = time.Hour
	staleFor     = 24 * time.Hour
)

// maxBody bounds what is read of a provider's answer.
const maxBody = 1 << 20

// Metadata is what Gatehouse reads of a provider's discovery document.
type Metadata struct {
	Issuer                string   `json:"issuer"`
	AuthorizationEndpoint string   `json:"authorization_endpoint"`
	TokenEndpoint         string   `json:"token_endpoint"`
	UserinfoEndpoint      string   `json:"userinfo_endpoint"`
	JWKSURI               string   `json:"jwks_uri"`
	TokenAuthMethods      []string `json:"token_endpoint_auth_methods_supported"`
}

type discovered struct {
	meta    Metadata
	keys    jose.JSONWebKeySet
	fetched time.Time
}

// Client talks to the configured providers; it is safe for concurrent use.
type Client struct {
	// HTTP sends the requests; nil: one that follows no redirects from the token
	// and userinfo endpoints.
	HTTP *http.Client

	mu    sync.Mutex
	cache map[string]*discovered // by issuer
}

var defaultHTTP = &http.Client{Timeout: Timeout, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

func (c *Client) http() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return defaultHTTP
}

// Challenge is the PKCE code challenge (S256) of a verifier.
func Challenge(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// AuthURL is where to send the browser to sign in with p.
func (c *Client) AuthURL(ctx context.Context, p config.LoginProvider, redirectURI, state, nonce, verifier string) (string, error) {
	endpoint := ""
	switch p.Type {
	case "github":
		endpoint = cmpOr(p.AuthURL, GitHubAuthURL)
	case "facebook":
		endpoint = cmpOr(p.AuthURL, FacebookAuthURL)
	default:
		d, err := c.discover(ctx, p.IssuerURL(), false)
		if err != nil {
			return "", err
		}
		endpoint = d.meta.AuthorizationEndpoint
	}
	u, err := url.Parse(endpoint)
	if err != nil {
		return "", fmt.Errorf("%s: its authorization endpoint %q is not a URL", p.ID, endpoint)
	}
	q := u.Query()
	q.Set("response_type", "code")
	q.Set("client_id", p.ClientID)
	q.Set("redirect_uri", redirectURI)
	scopes := strings.Join(p.ScopeList(), " ")
	if p.Type == "facebook" {
		scopes = strings.Join(p.ScopeList(), ",")
	}
	q.Set("scope", scopes)
	q.Set("state", state)
	q.Set("code_challenge", Challenge(verifier))
	q.Set("code_challenge_method", "S256")
	switch p.Type {
	case "oidc", "google":
		q.Set("nonce", nonce)
	}
	if p.Type == "google" && len(p.AllowedDomains) == 1 {
		q.Set("hd", p.AllowedDomains[0]) // a hint for Google's account chooser only: the answer's hd claim is what is checked
	}
	u.RawQuery = q.Encode()
	return u.String(), nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// Result is a verified sign-in at a provider.
type Result struct {
	identity.UpstreamClaims
	AMR []string // how the provider says the person signed in
	// HostedDomain is Google's hd claim: the Workspace domain of the account.
	HostedDomain string
	// Orgs are the GitHub organizations the person is a member of (with allowed_orgs).
	Orgs []string
}

// Exchange trades a code for tokens, checks what the provider says, and returns who
// signed in.
func (c *Client) Exchange(ctx context.Context, p config.LoginProvider, redirectURI, code, verifier, nonce string) (Result, error) {
	switch p.Type {
	case "github":
		return c.github(ctx, p, redirectURI, code, verifier)
	case "facebook":
		return c.facebook(ctx, p, redirectURI, code)
	}
	d, err := c.discover(ctx, p.IssuerURL(), false)
	if err != nil {
		return Result{}, err
	}
	form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {redirectURI}, "code_verifier": {verifier}}
	basic := len(d.meta.TokenAuthMethods) == 0 || slices.Contains(d.meta.TokenAuthMethods, "client_secret_basic")
	if !basic {
		form.Set("client_id", p.ClientID)
		form.Set("client_secret", p.ClientSecret)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.meta.TokenEndpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return Result{}, fmt.Errorf("%s: its token_endpoint %q is not a URL", p.ID, d.meta.TokenEndpoint)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if basic { // RFC 6749 2.3.1: each part form-encoded first
		req.SetBasicAuth(url.QueryEscape(p.ClientID), url.QueryEscape(p.ClientSecret))
	}
	var tokens struct {
		IDToken     string `json:"id_token"`
		AccessToken string `json:"access_token"`
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	status, err := c.getJSON(req, &tokens)
	switch {
	case err != nil:
		return Result{}, fmt.Errorf("%s: exchanging the code: %w", p.ID, err)
	case status != http.StatusOK || tokens.Error != "":
		return Result{}, fmt.Errorf("%s refused the code (HTTP %d %s %s): check client_id, client_secret and that the redirect URI is registered", p.ID, status, tokens.Error, tokens.Description)
	case tokens.IDToken == "":
		return Result{}, fmt.Errorf("%s answered without an ID token: is openid among the scopes?", p.ID)
	}
	claims, err := c.verify(ctx, p, d, tokens.IDToken, nonce)
	if err != nil {
		return Result{}, fmt.Errorf("%s: the ID token: %w", p.ID, err)
	}
	if claims.Email == nil && d.meta.UserinfoEndpoint != "" && tokens.AccessToken != "" {
		if err := c.userinfo(ctx, d.meta.UserinfoEndpoint, tokens.AccessToken, claims); err != nil {
			return Result{}, fmt.Errorf("%s: userinfo: %w", p.ID, err)
		}
	}
	r := Result{UpstreamClaims: identity.UpstreamClaims{Provider: p.ID, Subject: claims.Subject, Name: claims.Name, PreferredUsername: claims.PreferredUsername,
		EmailVerified: bool(claims.EmailVerified)}, AMR: claims.AMR, HostedDomain: claims.HostedDomain}
	if claims.Email != nil {
		r.Email = *claims.Email
	}
	if r.Email == "" {
		r.EmailVerified = false
	}
	return r, nil
}

// idClaims are the claims Gatehouse reads of an ID token or userinfo answer.
type idClaims struct {
	jwt.Claims
	Nonce             string   `json:"nonce"`
	AuthorizedParty   string   `json:"azp"`
	Email             *string  `json:"email"`
	EmailVerified     truthy   `json:"email_verified"`
	Name              string   `json:"name"`
	PreferredUsername string   `json:"preferred_username"`
	AMR               []string `json:"amr"`
	HostedDomain      string   `json:"hd"`
}

// truthy reads email_verified as true or "true": some providers send a string.
type truthy bool

func (t *truthy) UnmarshalJSON(b []byte) error {
	*t = truthy(string(b) == "true" || string(b) == `"true"`)
	return nil
}

var signatureAlgorithms = []jose.SignatureAlgorithm{jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.ES256, jose.ES384, jose.EdDSA}

// verify checks an ID token's signature against the provider's keys (read again once
// when it names a key the cached set lacks: the provider rotated) and its claims.
func (c *Client) verify(ctx context.Context, p config.LoginProvider, d *discovered, raw, nonce string) (*idClaims, error) {
	tok, err := jwt.ParseSigned(raw, signatureAlgorithms)
	if err != nil {
		return nil, fmt.Errorf("not a signed JWT with an accepted algorithm: %w", err)
	}
	kid := ""
	if len(tok.Headers) > 0 {
		kid = tok.Headers[0].KeyID
	}
	if kid != "" && len(d.keys.Key(kid)) == 0 {
		if d, err = c.discover(ctx, p.IssuerURL(), true); err != nil {
			return nil, err
		}
	}
	var claims idClaims
	if err := tok.Claims(d.keys, &claims); err != nil {
		return nil, fmt.Errorf("its signature does not match the provider's published keys: %w", err)
	}
	if err := claims.ValidateWithLeeway(jwt.Expected{Issuer: d.meta.Issuer, AnyAudience: jwt.Audience{p.ClientID}, Time: time.Now()}, time.Minute); err != nil {
		return nil, err
	}
	switch {
	case claims.Expiry == nil:
		return nil, errors.New("it has no expiry (exp)")
	case len(claims.Audience) > 1 && claims.AuthorizedParty != p.ClientID:
		return nil, fmt.Errorf("it names several audiences and azp %q is not Gatehouse's client id", claims.AuthorizedParty)
	case claims.Nonce != nonce:
		return nil, errors.New("its nonce is not the one this sign-in sent")
	case claims.Subject == "":
		return nil, errors.New("it names nobody (no sub)")
	}
	return &claims, nil
}

// userinfo fills in claims from the userinfo endpoint, for the same subject only.
func (c *Client) userinfo(ctx context.Context, endpoint, accessToken string, claims *idClaims) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+accessToken)
	req.Header.Set("Accept", "application/json")
	var info idClaims
	status, err := c.getJSON(req, &info)
	switch {
	case err != nil:
		return err
	case status != http.StatusOK:
		return fmt.Errorf("HTTP %d", status)
	case info.Subject != claims.Subject:
		return fmt.Errorf("it speaks of subject %q, not the ID token's %q", info.Subject, claims.Subject)
	}
	claims.Email, claims.EmailVerified = info.Email, info.EmailVerified
	if claims.Name == "" {
		claims.Name = info.Name
	}
	if claims.PreferredUsername == "" {
		claims.PreferredUsername = info.PreferredUsername
	}
	return nil
}

// discover returns the provider's metadata and keys: cached for discoveryTTL, read
// again when fresh is set (a key the cache lacks), and a stale copy when the provider
// cannot be reached for up to staleFor.
func (c *Client) discover(ctx context.Context, issuer string, fresh bool) (*discovered, error) {
	c.mu.Lock()
	cached := c.cache[issuer]
	c.mu.Unlock()
	if cached != nil && !fresh && time.Since(cached.fetched) < discoveryTTL {
		return cached, nil
	}
	if cached != nil && fresh && time.Since(cached.fetched) < 10*time.Second {
		return cached, nil // read just now: a token naming an unknown key is not worth another
	}
	d, err := c.fetch(ctx, issuer)
	if err != nil {
		if cached != nil && time.Since(cached.fetched) < staleFor {
			return cached, nil
		}
		return nil, err
	}
	c.mu.Lock()
	if c.cache == nil {
		c.cache = map[string]*discovered{}
	}
	c.cache[issuer] = d
	c.mu.Unlock()
	return d, nil
}

func (c *Client) fetch(ctx context.Context, issuer string) (*discovered, error) {
	ctx, cancel := context.WithTimeout(ctx, Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(issuer, "/")+"/.well-known/openid-configuration", nil)
	if err != nil {
		return nil, err
	}
	d := &discovered{fetched: time.Now()}
	if status, err := c.getJSON(req, &d.meta); err != nil || status != http.StatusOK {
		return nil, fmt.Errorf("reading the discovery document of %s: HTTP %d %v", issuer, status, err)
	}
	switch {
	case strings.TrimSuffix(d.meta.Issuer, "/") != strings.TrimSuffix(issuer, "/"):
		return nil, fmt.Errorf("the discovery document of %s names the issuer %q: set login_providers[].issuer to exactly what the provider names", issuer, d.meta.Issuer)
	case d.meta.AuthorizationEndpoint == "" || d.meta.TokenEndpoint == "" || d.meta.JWKSURI == "":
		return nil, fmt.Errorf("the discovery document of %s lacks an authorization, token or jwks endpoint", issuer)
	}
	req, err = http.NewRequestWithContext(ctx, http.MethodGet, d.meta.JWKSURI, nil)
	if err != nil {
		return nil, err
	}
	if status, err := c.getJSON(req, &d.keys); err != nil || status != http.StatusOK || len(d.keys.Keys) == 0 {
		return nil, fmt.Errorf("reading the signing keys of %s: HTTP %d %v", issuer, status, err)
	}
	return d, nil
}

// postForm sends a form and decodes the JSON answer.
func (c *Client) postForm(ctx context.Context, endpoint string, form url.Values, v any) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	return c.getJSON(req, v)
}

// getBearer reads JSON from an API with an access token.
func (c *Client) getBearer(ctx context.Context, endpoint, token string, v any) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "application/json")
	return c.getJSON(req, v)
}

// getJSON sends req and decodes its JSON answer into v, whatever the status.
func (c *Client) getJSON(req *http.Request, v any) (int, error) {
	resp, err := c.http().Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return resp.StatusCode, err
	}
	if err := json.Unmarshal(body, v); err != nil && resp.StatusCode == http.StatusOK {
		return resp.StatusCode, fmt.Errorf("the answer is not JSON: %w", err)
	}
	return resp.StatusCode, nil
}

// MFA says whether amr names a second factor (RFC 8176).
func MFA(amr []string) bool {
	return slices.ContainsFunc(amr, func(m string) bool {
		return slices.Contains([]string{"mfa", "otp", "hwk", "swk", "sms", "fpt", "face"}, m)
	})
}
