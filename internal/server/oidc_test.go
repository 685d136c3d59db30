package server

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/gatehouse-id/gatehouse/internal/config"
	"github.com/gatehouse-id/gatehouse/internal/identity"
)

// The apps of these tests, as an operator would declare them.
const (
	grafanaSecret = "grafana-secret-0123456789abcdef0123456789"
	robotSecret   = "robot-secret-0123456789abcdef0123456789abc"
	grafanaCB     = "https://grafana.example.com/login/generic_oauth"
	kubectlCB     = "http://127.0.0.1:8000/"
)

func oidcConfig(dbURL string) config.Config {
	cfg := testConfig(dbURL)
	forgejoHash, _ := identity.NewHasher(0).Hash(context.Background(), "forgejo-secret-0123456789abcdef01234567")
	cfg.OIDC.Clients = []config.Client{
		{ID: "grafana", Name: "Grafana", Secret: grafanaSecret, RedirectURIs: []string{grafanaCB},
			PostLogoutRedirectURIs: []string{"https://grafana.example.com/login"}, Groups: []string{"Home Server Admins"}},
		{ID: "forgejo", Name: "Forgejo", Secret: forgejoHash, RedirectURIs: []string{"https://git.example.com/user/oauth2/gatehouse/callback"},
			Groups: []string{"Allow Login Users"}, Consent: "explicit", Subject: "username"},
		{ID: "kubectl", Type: "public", RedirectURIs: []string{kubectlCB}, AllUsers: true,
			GrantTypes: []string{"authorization_code", "refresh_token", "device_code"}},
		{ID: "robot", Secret: robotSecret, GrantTypes: []string{"client_credentials"}, Scopes: []string{"groups"}},
		{ID: "vault", Secret: robotSecret, RedirectURIs: []string{"https://vault.example.com/ui/vault/auth/oidc/oidc/callback"},
			Groups: []string{"Allow Login Users"}, TwoFactor: true},
	}
	return cfg
}

// oidcHarness is Gatehouse at its own address with two people signed in.
type oidcHarness struct {
	*harness
	provider   *gooidc.Provider
	alice, bob *http.Cookie // alice is an admin; bob only a login user
	ctx        context.Context
}

func startOIDC(t *testing.T, dbURL string) *oidcHarness {
	t.Helper()
	h := startSelf(t, oidcConfig(dbURL))
	h.addUser("alice", "Home Server Admins")
	h.addUser("bob", "Allow Login Users")
	_, alice := h.login("alice", "correct horse alice", "")
	_, bob := h.login("bob", "correct horse bob", "")
	ctx := context.Background()
	provider, err := gooidc.NewProvider(ctx, h.srv.URL)
	if err != nil {
		t.Fatalf("discovery: %v", err)
	}
	return &oidcHarness{harness: h, provider: provider, alice: alice, bob: bob, ctx: ctx}
}

// browse follows one authorization URL as a browser with the given session would, and
// returns where Gatehouse sends it.
func (o *oidcHarness) browse(authURL string, sess *http.Cookie) (*http.Response, string) {
	o.t.Helper()
	path := strings.TrimPrefix(authURL, o.srv.URL)
	var cookies []*http.Cookie
	if sess != nil {
		cookies = append(cookies, sess)
	}
	return o.do(req{path: path, cookies: cookies})
}

// code signs in with the code flow and returns the code from the redirect.
func (o *oidcHarness) code(authURL string, sess *http.Cookie, wantState string) string {
	o.t.Helper()
	resp, body := o.browse(authURL, sess)
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusFound || loc == nil || loc.Query().Get("code") == "" {
		o.t.Fatalf("authorize: %d to %q\n%s", resp.StatusCode, resp.Header.Get("Location"), body)
	}
	if q := loc.Query(); q.Get("state") != wantState || q.Get("iss") != o.srv.URL {
		o.t.Fatalf("authorize redirect: state %q iss %q", q.Get("state"), q.Get("iss"))
	}
	return loc.Query().Get("code")
}

func (o *oidcHarness) grafana() *oauth2.Config {
	return &oauth2.Config{ClientID: "grafana", ClientSecret: grafanaSecret, Endpoint: o.provider.Endpoint(), RedirectURL: grafanaCB,
		Scopes: []string{gooidc.ScopeOpenID, "profile", "email", "groups", gooidc.ScopeOfflineAccess}}
}

// form posts to a back-channel endpoint with HTTP Basic client credentials.
func (o *oidcHarness) form(path, clientID, secret string, values url.Values) (int, map[string]any) {
	o.t.Helper()
	r, _ := http.NewRequest(http.MethodPost, o.srv.URL+path, strings.NewReader(values.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if clientID != "" {
		r.SetBasicAuth(url.QueryEscape(clientID), url.QueryEscape(secret))
	}
	resp, err := client.Do(r)
	if err != nil {
		o.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	out := map[string]any{}
	_ = json.Unmarshal(b, &out)
	return resp.StatusCode, out
}

func oauthErrorCode(err error) string {
	var re *oauth2.RetrieveError
	if e, ok := err.(*oauth2.RetrieveError); ok {
		re = e
		return re.ErrorCode
	}
	if err != nil && strings.Contains(err.Error(), "invalid_grant") {
		return "invalid_grant"
	}
	return ""
}

// The authorization code flow with PKCE as Grafana would run it through x/oauth2 and
// go-oidc: sent to log in, back with a code, tokens, an ID token that verifies with the
// published keys and carries the nonce, groups (names verbatim) and profile; userinfo,
// introspection; refresh rotation; reuse of a code or a rotated refresh token revokes
// the grant; revocation; RP-initiated logout.
func TestOIDCAuthorizationCodeFlow(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dbURL string) {
		o := startOIDC(t, dbURL)
		conf := o.grafana()
		verifier := oauth2.GenerateVerifier()
		authURL := conf.AuthCodeURL("state-1", oauth2.S256ChallengeOption(verifier), gooidc.Nonce("nonce-1"))

		// Not signed in: to the login page, which comes back to this very request.
		resp, _ := o.browse(authURL, nil)
		if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusFound || !strings.HasPrefix(loc, "/login?rd=%2Foauth2%2Fauthorize%3F") {
			t.Fatalf("anonymous authorize: %d to %q", resp.StatusCode, loc)
		}
		tok, err := conf.Exchange(o.ctx, o.code(authURL, o.alice, "state-1"), oauth2.VerifierOption(verifier))
		if err != nil {
			t.Fatalf("exchange: %v", err)
		}
		rawID, _ := tok.Extra("id_token").(string)
		idt, err := o.provider.Verifier(&gooidc.Config{ClientID: "grafana"}).Verify(o.ctx, rawID)
		if err != nil {
			t.Fatalf("id token: %v", err)
		}
		if err := idt.VerifyAccessToken(tok.AccessToken); err != nil {
			t.Fatalf("at_hash: %v", err)
		}
		var c struct {
			Email         string   `json:"email"`
			EmailVerified *bool    `json:"email_verified"`
			Name          string   `json:"name"`
			Username      string   `json:"preferred_username"`
			Groups        []string `json:"groups"`
			AuthTime      int64    `json:"auth_time"`
		}
		if err := idt.Claims(&c); err != nil {
			t.Fatal(err)
		}
		if idt.Nonce != "nonce-1" || c.Email != "alice@example.com" || c.EmailVerified == nil || !*c.EmailVerified ||
			c.Username != "alice" || c.Name != "Alice" || !slices.Equal(c.Groups, []string{"Allow Login Users", "Home Server Admins"}) || c.AuthTime == 0 {
			t.Fatalf("ID token claims: nonce %q %+v", idt.Nonce, c)
		}
		if tok.RefreshToken == "" || tok.Expiry.IsZero() {
			t.Fatal("no refresh token for offline_access")
		}
		info, err := o.provider.UserInfo(o.ctx, oauth2.StaticTokenSource(tok))
		if err != nil || info.Email != "alice@example.com" || info.Subject != idt.Subject {
			t.Fatalf("userinfo: %+v %v", info, err)
		}
		if code, in := o.form("/oauth2/introspect", "grafana", grafanaSecret, url.Values{"token": {tok.AccessToken}}); code != 200 || in["active"] != true || in["username"] != "alice" || in["client_id"] != "grafana" {
			t.Fatalf("introspection: %d %v", code, in)
		}

		// Refresh: a new refresh token each time; the old one used again revokes the grant.
		old := *tok
		tok.Expiry = time.Now().Add(-time.Minute)
		fresh, err := conf.TokenSource(o.ctx, tok).Token()
		if err != nil || fresh.RefreshToken == "" || fresh.RefreshToken == old.RefreshToken || fresh.AccessToken == old.AccessToken {
			t.Fatalf("refresh: %v", err)
		}
		if _, err := o.provider.Verifier(&gooidc.Config{ClientID: "grafana"}).Verify(o.ctx, fresh.Extra("id_token").(string)); err != nil {
			t.Fatalf("refreshed id token: %v", err)
		}
		// Within the reuse grace the rotated token still gets a valid pair: a client
		// refreshing from parallel requests, or retrying after a lost answer.
		old.Expiry = time.Now().Add(-time.Minute)
		retried, err := conf.TokenSource(o.ctx, &old).Token()
		if err != nil || retried.RefreshToken == "" || retried.RefreshToken == fresh.RefreshToken {
			t.Fatalf("the rotated token again within the grace: %v", err)
		}
		// After the grace, a use of it means a copy is in someone else's hands.
		if _, err := o.app.Store.(interface{ DB() *sql.DB }).DB().Exec("UPDATE oidc_tokens SET used_at = used_at - 120000000 WHERE used_at > 0"); err != nil {
			t.Fatal(err)
		}
		old.Expiry = time.Now().Add(-time.Minute)
		if _, err := conf.TokenSource(o.ctx, &old).Token(); oauthErrorCode(err) != "invalid_grant" {
			t.Fatalf("reusing a rotated refresh token after the grace: %v", err)
		}
		fresh.Expiry = time.Now().Add(-time.Minute)
		if _, err := conf.TokenSource(o.ctx, fresh).Token(); oauthErrorCode(err) != "invalid_grant" {
			t.Fatalf("after reuse, the newest refresh token must be revoked too: %v", err)
		}
		if _, err := o.provider.UserInfo(o.ctx, oauth2.StaticTokenSource(fresh)); err == nil {
			t.Fatal("after reuse, the access token must be revoked too")
		}

		// A code redeemed twice: the second gets invalid_grant and the first's tokens go.
		code := o.code(authURL, o.alice, "state-1")
		tok, err = conf.Exchange(o.ctx, code, oauth2.VerifierOption(verifier))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conf.Exchange(o.ctx, code, oauth2.VerifierOption(verifier)); oauthErrorCode(err) != "invalid_grant" {
			t.Fatalf("a reused code: %v", err)
		}
		if code, in := o.form("/oauth2/introspect", "grafana", grafanaSecret, url.Values{"token": {tok.AccessToken}}); code != 200 || in["active"] != false {
			t.Fatalf("tokens of a reused code stay active: %v", in)
		}

		// Revocation of a refresh token takes its grant.
		tok, _ = conf.Exchange(o.ctx, o.code(authURL, o.alice, "state-1"), oauth2.VerifierOption(verifier))
		if code, _ := o.form("/oauth2/revoke", "grafana", grafanaSecret, url.Values{"token": {tok.RefreshToken}}); code != 200 {
			t.Fatalf("revoke: %d", code)
		}
		if code, in := o.form("/oauth2/introspect", "grafana", grafanaSecret, url.Values{"token": {tok.AccessToken}}); code != 200 || in["active"] != false {
			t.Fatalf("after revoking the refresh token, the access token is %v", in)
		}
		if code, _ := o.form("/oauth2/revoke", "grafana", "wrong", url.Values{"token": {tok.RefreshToken}}); code != http.StatusUnauthorized {
			t.Fatalf("revoke with a wrong secret: %d", code)
		}

		// RP-initiated logout with the ID token: signed out, back at the app with state.
		tok, _ = conf.Exchange(o.ctx, o.code(authURL, o.alice, "state-1"), oauth2.VerifierOption(verifier))
		hint := tok.Extra("id_token").(string)
		tampered := hint[:len(hint)-4] + strings.Map(func(r rune) rune { return 'A' + (r-'A'+1)%26 }, strings.ToUpper(hint[len(hint)-4:]))
		resp, body := o.do(req{path: "/oauth2/logout?" + url.Values{"id_token_hint": {tampered}, "post_logout_redirect_uri": {"https://grafana.example.com/login"}}.Encode(), cookies: []*http.Cookie{o.alice}})
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "did not issue") {
			t.Fatalf("logout with a tampered hint: %d", resp.StatusCode)
		}
		resp, _ = o.do(req{path: "/oauth2/logout?" + url.Values{"id_token_hint": {hint}, "post_logout_redirect_uri": {"https://evil.example.net/"}}.Encode(), cookies: []*http.Cookie{o.alice}})
		if resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("logout to an unregistered address: %d %q", resp.StatusCode, resp.Header.Get("Location"))
		}
		// Alice's ID token in Bob's browser: it proves the app, not the browser, so
		// Bob is asked instead of signed out.
		resp, page := o.do(req{path: "/oauth2/logout?" + url.Values{"id_token_hint": {hint}, "post_logout_redirect_uri": {"https://grafana.example.com/login"}}.Encode(), cookies: []*http.Cookie{o.bob}})
		if resp.StatusCode != http.StatusOK || !strings.Contains(page, "bob") || !strings.Contains(page, `name="confirm"`) {
			t.Fatalf("logout with another person's ID token: %d, want the confirmation page", resp.StatusCode)
		}
		if resp, _ := o.do(req{path: "/api/authz/forward-auth", header: traefik("https://app.example.com/"), cookies: []*http.Cookie{o.bob}}); resp.StatusCode != http.StatusOK {
			t.Fatalf("bob was signed out by alice's ID token: %d", resp.StatusCode)
		}
		resp, _ = o.do(req{path: "/oauth2/logout?" + url.Values{"id_token_hint": {hint}, "post_logout_redirect_uri": {"https://grafana.example.com/login"}, "state": {"bye"}}.Encode(), cookies: []*http.Cookie{o.alice}})
		if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "https://grafana.example.com/login?state=bye" {
			t.Fatalf("logout: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
		}
		if resp, _ := o.browse(authURL, o.alice); !strings.HasPrefix(resp.Header.Get("Location"), "/login?") {
			t.Fatal("after logout the Gatehouse session still signs in")
		}
	})
}

// Requests that must fail, and how: no redirect to an address the app did not register,
// errors per RFC 6749 otherwise.
func TestOIDCRefusals(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dbURL string) {
		o := startOIDC(t, dbURL)
		conf := o.grafana()
		verifier := oauth2.GenerateVerifier()

		// A redirect_uri that is not registered, or an unknown client: a page, never a redirect.
		bad := *conf
		bad.RedirectURL = "https://evil.example.net/cb"
		if resp, body := o.browse(bad.AuthCodeURL("s", oauth2.S256ChallengeOption(verifier)), o.alice); resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" || !strings.Contains(body, "not one of its redirect_uris") {
			t.Fatalf("wrong redirect_uri: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
		}
		bad = *conf
		bad.ClientID = "nobody"
		if resp, body := o.browse(bad.AuthCodeURL("s"), o.alice); resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "does not know") {
			t.Fatalf("unknown client: %d", resp.StatusCode)
		}

		// Bob is not in Grafana's group: a clear page, no code.
		if resp, body := o.browse(conf.AuthCodeURL("s", oauth2.S256ChallengeOption(verifier)), o.bob); resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "may not use Grafana") || !strings.Contains(body, "Home Server Admins") {
			t.Fatalf("user outside the client's groups: %d", resp.StatusCode)
		}

		// A public client without PKCE: an error back at the app.
		kubectl := &oauth2.Config{ClientID: "kubectl", Endpoint: o.provider.Endpoint(), RedirectURL: "http://127.0.0.1:43121/", Scopes: []string{"openid"}}
		resp, _ := o.browse(kubectl.AuthCodeURL("s"), o.alice)
		if loc, _ := url.Parse(resp.Header.Get("Location")); resp.StatusCode != http.StatusFound || loc.Query().Get("error") != "invalid_request" || loc.Port() != "43121" {
			t.Fatalf("public client without PKCE: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
		}
		// With PKCE, on any loopback port (RFC 8252), without a secret.
		v := oauth2.GenerateVerifier()
		if _, err := kubectl.Exchange(o.ctx, o.code(kubectl.AuthCodeURL("s", oauth2.S256ChallengeOption(v)), o.alice, "s"), oauth2.VerifierOption(v)); err != nil {
			t.Fatalf("public client with PKCE on a loopback port: %v", err)
		}

		// PKCE mismatch; a scope the client may not have; an expired code.
		code := o.code(conf.AuthCodeURL("s", oauth2.S256ChallengeOption(verifier)), o.alice, "s")
		if _, err := conf.Exchange(o.ctx, code, oauth2.VerifierOption(oauth2.GenerateVerifier())); oauthErrorCode(err) != "invalid_grant" {
			t.Fatalf("PKCE mismatch: %v", err)
		}
		robotScopes := &oauth2.Config{ClientID: "robot", ClientSecret: robotSecret, Endpoint: o.provider.Endpoint(), RedirectURL: grafanaCB}
		if resp, body := o.browse(robotScopes.AuthCodeURL("s"), o.alice); resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "Unregistered return address") {
			t.Fatalf("a machine client in the browser: %d", resp.StatusCode)
		}
		code = o.code(conf.AuthCodeURL("s", oauth2.S256ChallengeOption(verifier)), o.alice, "s")
		if _, err := o.app.Store.(interface{ DB() *sql.DB }).DB().Exec("UPDATE oidc_tokens SET expires_at = 1 WHERE kind = 'code'"); err != nil {
			t.Fatal(err)
		}
		if _, err := conf.Exchange(o.ctx, code, oauth2.VerifierOption(verifier)); oauthErrorCode(err) != "invalid_grant" {
			t.Fatalf("expired code: %v", err)
		}
		// A wrong client secret; a grant the client does not have; garbage.
		wrong := *conf
		wrong.ClientSecret = "not-the-secret"
		if _, err := wrong.Exchange(o.ctx, "x"); oauthErrorCode(err) != "invalid_client" {
			t.Fatalf("wrong secret: %v", err)
		}
		if status, body := o.form("/oauth2/token", "grafana", grafanaSecret, url.Values{"grant_type": {"client_credentials"}}); status != 400 || body["error"] != "unauthorized_client" {
			t.Fatalf("a grant the client lacks: %d %v", status, body)
		}
		if status, body := o.form("/oauth2/token", "grafana", grafanaSecret, url.Values{"grant_type": {"password"}}); status != 400 || body["error"] != "unsupported_grant_type" {
			t.Fatalf("an unsupported grant: %d %v", status, body)
		}

		// A client that requires two factors sends a one-factor session to step up.
		vault := &oauth2.Config{ClientID: "vault", ClientSecret: robotSecret, Endpoint: o.provider.Endpoint(),
			RedirectURL: "https://vault.example.com/ui/vault/auth/oidc/oidc/callback", Scopes: []string{"openid"}}
		if resp, _ := o.browse(vault.AuthCodeURL("s"), o.bob); resp.StatusCode != http.StatusFound || !strings.HasPrefix(resp.Header.Get("Location"), "/login/step-up?rd=%2Foauth2%2Fauthorize") {
			t.Fatalf("two-factor client, one-factor session: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
		}
	})
}

// Explicit consent: asked once, remembered; refused means access_denied at the app.
// The sub claim can be the username.
func TestOIDCConsent(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dbURL string) {
		o := startOIDC(t, dbURL)
		forgejo := &oauth2.Config{ClientID: "forgejo", ClientSecret: "forgejo-secret-0123456789abcdef01234567", Endpoint: o.provider.Endpoint(),
			RedirectURL: "https://git.example.com/user/oauth2/gatehouse/callback", Scopes: []string{"openid", "email"}}
		authURL := forgejo.AuthCodeURL("s")
		resp, page := o.browse(authURL, o.bob)
		if resp.StatusCode != http.StatusOK || !strings.Contains(page, "Forgejo") || !strings.Contains(page, "your email address") {
			t.Fatalf("consent page: %d\n%s", resp.StatusCode, page)
		}
		request := regexp.MustCompile(`name="request" value="([^"]+)"`).FindStringSubmatch(page)[1]
		token, csrf := o.formToken("/login")
		resp, _ = o.do(req{path: "/oauth2/consent", cookies: []*http.Cookie{csrf, o.bob}, form: url.Values{"csrf_token": {token}, "request": {request}, "decision": {"deny"}}})
		if loc, _ := url.Parse(resp.Header.Get("Location")); resp.StatusCode != http.StatusFound || loc.Query().Get("error") != "access_denied" {
			t.Fatalf("consent refused: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
		}
		resp, _ = o.do(req{path: "/oauth2/consent", cookies: []*http.Cookie{csrf, o.alice}, form: url.Values{"csrf_token": {token}, "request": {request}, "decision": {"allow"}}})
		if resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("bob's consent request answered by alice: %d", resp.StatusCode)
		}
		resp, _ = o.do(req{path: "/oauth2/consent", cookies: []*http.Cookie{csrf, o.bob}, form: url.Values{"csrf_token": {token}, "request": {request}, "decision": {"allow"}}})
		code, _ := url.Parse(resp.Header.Get("Location"))
		tok, err := forgejo.Exchange(o.ctx, code.Query().Get("code"))
		if err != nil {
			t.Fatalf("exchange after consent (argon2id-hashed client secret): %v", err)
		}
		idt, err := o.provider.Verifier(&gooidc.Config{ClientID: "forgejo"}).Verify(o.ctx, tok.Extra("id_token").(string))
		if err != nil || idt.Subject != "bob" {
			t.Fatalf("sub by username: %v %v", idt, err)
		}
		o.code(authURL, o.bob, "s") // remembered: straight to the code
	})
}

// Machine clients get tokens for themselves; CLI tools sign in with the device flow.
func TestOIDCClientCredentialsAndDeviceFlow(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dbURL string) {
		o := startOIDC(t, dbURL)
		cc := clientcredentials.Config{ClientID: "robot", ClientSecret: robotSecret, TokenURL: o.provider.Endpoint().TokenURL, Scopes: []string{"groups"}}
		tok, err := cc.Token(o.ctx)
		if err != nil || tok.AccessToken == "" || tok.RefreshToken != "" || tok.Extra("id_token") != nil {
			t.Fatalf("client credentials: %+v %v", tok, err)
		}
		if code, in := o.form("/oauth2/introspect", "robot", robotSecret, url.Values{"token": {tok.AccessToken}}); code != 200 || in["active"] != true || in["sub"] != "robot" {
			t.Fatalf("introspecting a client token: %v", in)
		}
		if _, err := o.provider.UserInfo(o.ctx, oauth2.StaticTokenSource(tok)); err == nil {
			t.Fatal("userinfo answered for a token with no user")
		}
		cc.Scopes = []string{"openid"}
		if _, err := cc.Token(o.ctx); err == nil {
			t.Fatal("client credentials with openid")
		}
		if code, _ := o.form("/oauth2/introspect", "kubectl", "", url.Values{"token": {tok.AccessToken}}); code != http.StatusUnauthorized {
			t.Fatalf("a public client introspecting: %d", code)
		}

		kubectl := &oauth2.Config{ClientID: "kubectl", Endpoint: o.provider.Endpoint(), Scopes: []string{"openid", "groups", "offline_access"}}
		if kubectl.Endpoint.DeviceAuthURL == "" {
			t.Fatal("discovery does not name the device authorization endpoint")
		}
		da, err := kubectl.DeviceAuth(o.ctx)
		if err != nil || !regexp.MustCompile(`^[B-Z]{4}-[B-Z]{4}$`).MatchString(da.UserCode) || !strings.HasSuffix(da.VerificationURI, "/device") {
			t.Fatalf("device authorization: %+v %v", da, err)
		}
		if status, body := o.form("/oauth2/token", "", "", url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:device_code"}, "device_code": {da.DeviceCode}, "client_id": {"kubectl"}}); status != 400 || body["error"] != "authorization_pending" {
			t.Fatalf("polling before the user answered: %d %v", status, body)
		}
		// The person types the code (lower case, no dash) and approves.
		token, csrf := o.formToken("/login")
		typed := strings.ToLower(strings.ReplaceAll(da.UserCode, "-", ""))
		_, page := o.do(req{path: "/device", cookies: []*http.Cookie{csrf, o.bob}, form: url.Values{"csrf_token": {token}, "user_code": {typed}}})
		if !strings.Contains(page, "kubectl") || !strings.Contains(page, "Sign the device in") {
			t.Fatalf("device confirmation page:\n%s", page)
		}
		_, page = o.do(req{path: "/device", cookies: []*http.Cookie{csrf, o.bob}, form: url.Values{"csrf_token": {token}, "user_code": {typed}, "decision": {"approve"}}})
		if !strings.Contains(page, "signed in as bob") {
			t.Fatalf("after approving:\n%s", page)
		}
		da.Interval = 1
		tok, err = kubectl.DeviceAccessToken(o.ctx, da)
		if err != nil || tok.RefreshToken == "" {
			t.Fatalf("device token: %v", err)
		}
		idt, err := o.provider.Verifier(&gooidc.Config{ClientID: "kubectl"}).Verify(o.ctx, tok.Extra("id_token").(string))
		if err != nil {
			t.Fatal(err)
		}
		var c struct{ Groups []string }
		idt.Claims(&c)
		if !slices.Equal(c.Groups, []string{"Allow Login Users"}) {
			t.Fatalf("device flow groups: %v", c.Groups)
		}
		if status, body := o.form("/oauth2/token", "", "", url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:device_code"}, "device_code": {da.DeviceCode}, "client_id": {"kubectl"}}); status != 400 || body["error"] != "expired_token" {
			t.Fatalf("the device code used twice: %d %v", status, body)
		}

		// A refused code ends in access_denied; an unknown code is explained.
		da, _ = kubectl.DeviceAuth(o.ctx)
		o.do(req{path: "/device", cookies: []*http.Cookie{csrf, o.bob}, form: url.Values{"csrf_token": {token}, "user_code": {da.UserCode}, "decision": {"deny"}}})
		if status, body := o.form("/oauth2/token", "", "", url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:device_code"}, "device_code": {da.DeviceCode}, "client_id": {"kubectl"}}); status != 400 || body["error"] != "access_denied" {
			t.Fatalf("refused device: %d %v", status, body)
		}
		if resp, page := o.do(req{path: "/device", cookies: []*http.Cookie{csrf, o.bob}, form: url.Values{"csrf_token": {token}, "user_code": {"BBBB-BBBB"}}}); resp.StatusCode != http.StatusBadRequest || !strings.Contains(page, "unknown, expired or used") {
			t.Fatalf("unknown user code: %d", resp.StatusCode)
		}
		// Guessing codes is throttled like guessing passwords, even a right code then.
		da, _ = kubectl.DeviceAuth(o.ctx)
		for range 10 {
			o.do(req{path: "/device", cookies: []*http.Cookie{csrf, o.bob}, form: url.Values{"csrf_token": {token}, "user_code": {"CCCC-CCCC"}}})
		}
		if resp, page := o.do(req{path: "/device", cookies: []*http.Cookie{csrf, o.bob}, form: url.Values{"csrf_token": {token}, "user_code": {da.UserCode}}}); resp.StatusCode != http.StatusTooManyRequests || !strings.Contains(page, "Too many wrong codes") {
			t.Fatalf("after 11 wrong codes: %d", resp.StatusCode)
		}

		metrics := o.metrics()
		for _, want := range []string{`gatehouse_oidc_token_requests_total{grant_type="client_credentials",result="issued"} 1`,
			`gatehouse_oidc_token_requests_total{grant_type="device_code",result="issued"} 1`,
			`gatehouse_oidc_token_requests_total{grant_type="device_code",result="refused"} 3`} {
			if !strings.Contains(metrics, want) {
				t.Errorf("metrics lack %s", want)
			}
		}
	})
}

// Two replicas on one PostgreSQL database publish the same keys; a key made by one
// signs tokens the other's JWKS verifies; old keys stay until their tokens expired.
func TestOIDCKeyRotationAcrossReplicas(t *testing.T) {
	for _, b := range backends {
		if b.name == "sqlite" {
			continue
		}
		t.Run(b.name, func(t *testing.T) {
			dbURL := b.url(t)
			one := startOIDC(t, dbURL)
			cfg := oidcConfig(dbURL)
			cfg.Server.PublicURL, cfg.Session.CookieDomain = one.srv.URL, "" // one issuer for both
			two := start(t, cfg)
			jwks := func(h *harness) []string {
				_, body := h.do(req{path: "/oauth2/jwks"})
				var set struct{ Keys []struct{ Kid string } }
				json.Unmarshal([]byte(body), &set)
				var ids []string
				for _, k := range set.Keys {
					ids = append(ids, k.Kid)
				}
				return ids
			}
			conf := one.grafana()
			v := oauth2.GenerateVerifier()
			before, err := conf.Exchange(one.ctx, one.code(conf.AuthCodeURL("s", oauth2.S256ChallengeOption(v)), one.alice, "s"), oauth2.VerifierOption(v))
			if err != nil {
				t.Fatal(err)
			}
			first := jwks(one.harness)
			if len(first) != 1 || !slices.Equal(jwks(two), first) {
				t.Fatalf("replicas publish %v and %v", first, jwks(two))
			}

			newKid, err := two.app.OIDC.RotateKeys(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if got := jwks(one.harness); len(got) != 2 || got[0] != newKid || !slices.Equal(got, jwks(two)) {
				t.Fatalf("after rotating on replica two: %v and %v", got, jwks(two))
			}
			// Replica two signs with the new key; replica one's keys verify it, and the
			// token from before the rotation still verifies at replica two.
			twoKeys := gooidc.NewRemoteKeySet(one.ctx, two.srv.URL+"/oauth2/jwks")
			oneKeys := gooidc.NewRemoteKeySet(one.ctx, one.srv.URL+"/oauth2/jwks")
			token, csrf := two.formToken("/login")
			resp, _ := two.do(req{path: "/login", cookies: []*http.Cookie{csrf}, form: url.Values{"username": {"alice"}, "password": {"correct horse alice"}, "csrf_token": {token}}})
			aliceAtTwo := cookieNamed(resp, "gatehouse_session")
			resp, _ = two.do(req{path: strings.TrimPrefix(conf.AuthCodeURL("s", oauth2.S256ChallengeOption(v)), one.srv.URL), cookies: []*http.Cookie{aliceAtTwo}})
			loc, _ := url.Parse(resp.Header.Get("Location"))
			atTwo := *conf
			atTwo.Endpoint.TokenURL = two.srv.URL + "/oauth2/token"
			after, err := atTwo.Exchange(one.ctx, loc.Query().Get("code"), oauth2.VerifierOption(v))
			if err != nil {
				t.Fatal(err)
			}
			verifierAt := func(keys gooidc.KeySet) *gooidc.IDTokenVerifier {
				return gooidc.NewVerifier(one.srv.URL, keys, &gooidc.Config{ClientID: "grafana"})
			}
			if _, err := verifierAt(oneKeys).Verify(one.ctx, after.Extra("id_token").(string)); err != nil {
				t.Fatalf("a token signed by replica two after the rotation, at replica one: %v", err)
			}
			// The new key is published at once but signs only once apps caching the old
			// key set (max-age) have seen it.
			if kid := kidOf(t, after.Extra("id_token").(string)); kid != first[0] {
				t.Fatalf("right after the rotation the token is signed by %s, want the old key %s until the new one has been published long enough", kid, first[0])
			}
			if _, err := two.app.Store.(interface{ DB() *sql.DB }).DB().Exec("UPDATE oidc_keys SET created_at = created_at - 420000000"); err != nil {
				t.Fatal(err)
			}
			if err := two.app.OIDC.MaintainKeys(context.Background()); err != nil { // reads the keys afresh
				t.Fatal(err)
			}
			resp, _ = two.do(req{path: strings.TrimPrefix(conf.AuthCodeURL("s", oauth2.S256ChallengeOption(v)), one.srv.URL), cookies: []*http.Cookie{aliceAtTwo}})
			loc, _ = url.Parse(resp.Header.Get("Location"))
			later, err := atTwo.Exchange(one.ctx, loc.Query().Get("code"), oauth2.VerifierOption(v))
			if err != nil {
				t.Fatal(err)
			}
			if kid := kidOf(t, later.Extra("id_token").(string)); kid != newKid {
				t.Fatalf("seven minutes after the rotation the token is signed by %s, want the new key %s", kid, newKid)
			}
			if _, err := verifierAt(oneKeys).Verify(one.ctx, later.Extra("id_token").(string)); err != nil {
				t.Fatalf("a token signed with the new key, at replica one: %v", err)
			}
			if _, err := verifierAt(twoKeys).Verify(one.ctx, before.Extra("id_token").(string)); err != nil {
				t.Fatalf("a token from before the rotation, at replica two: %v", err)
			}
			if !strings.Contains(two.logText(), `"new OpenID Connect signing key"`) {
				t.Fatal("the rotation was not logged")
			}

			// Long after the rotation, the old key goes; the new one stays.
			if _, err := two.app.Store.(interface{ DB() *sql.DB }).DB().Exec("UPDATE oidc_keys SET created_at = created_at - 10800000000"); err != nil {
				t.Fatal(err)
			}
			if err := one.app.OIDC.MaintainKeys(context.Background()); err != nil {
				t.Fatal(err)
			}
			if got := jwks(two); !slices.Equal(got, []string{newKid}) {
				t.Fatalf("after retirement: %v, want only %s", got, newKid)
			}
		})
	}
}

// The clients of deploy/examples/oidc-clients.yaml (the README's) work as each app
// uses them: its redirect URI, its scopes, its secret (or PKCE for kubectl), and the
// claims it reads.
func TestOIDCExampleClients(t *testing.T) {
	example, err := config.Load("../../deploy/examples/oidc-clients.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(backends[0].url(t))
	cfg.OIDC = example.OIDC
	h := startSelf(t, cfg)
	h.addUser("root", "Home Server Admins")
	_, sess := h.login("root", "correct horse root", "") // one factor: vault will ask for two
	ctx := context.Background()
	provider, err := gooidc.NewProvider(ctx, h.srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	o := &oidcHarness{harness: h, provider: provider, ctx: ctx}
	for _, app := range []struct {
		id, redirect string
		scopes       []string
		claim        string // a claim the app maps, and what it holds
		want         any
	}{
		{"grafana", "https://grafana.example.com/login/generic_oauth", []string{"openid", "profile", "email", "groups"}, "preferred_username", "root"},
		{"forgejo", "https://git.example.com/user/oauth2/gatehouse/callback", []string{"openid", "profile", "email", "groups"}, "sub", "root"},
		{"headscale", "https://headscale.example.com/oidc/callback", []string{"openid", "profile", "email", "groups"}, "email", "root@example.com"},
		{"kubectl", "http://localhost:8000", []string{"openid", "groups", "offline_access"}, "groups", []any{"Allow Login Users", "Home Server Admins"}},
	} {
		func() {
			conf := &oauth2.Config{ClientID: app.id, Endpoint: provider.Endpoint(), RedirectURL: app.redirect, Scopes: app.scopes}
			if app.id != "kubectl" {
				conf.ClientSecret = app.id + "-example-secret-replace-me-0123456789"
			}
			v := oauth2.GenerateVerifier()
			tok, err := conf.Exchange(ctx, o.code(conf.AuthCodeURL("s", oauth2.S256ChallengeOption(v)), sess, "s"), oauth2.VerifierOption(v))
			if err != nil {
				t.Fatalf("%s: exchange: %v", app.id, err)
			}
			idt, err := provider.Verifier(&gooidc.Config{ClientID: app.id}).Verify(ctx, tok.Extra("id_token").(string))
			if err != nil {
				t.Fatal(err)
			}
			var claims map[string]any
			idt.Claims(&claims)
			if !reflect.DeepEqual(claims[app.claim], app.want) {
				t.Fatalf("%s: %s = %#v, want %#v", app.id, app.claim, claims[app.claim], app.want)
			}
			if app.id == "kubectl" && (tok.RefreshToken == "" || time.Until(idt.Expiry) > 16*time.Minute) {
				t.Fatalf("kubectl: refresh token %v, ID token expires in %s", tok.RefreshToken != "", time.Until(idt.Expiry))
			}
		}()
	}
	vault := &oauth2.Config{ClientID: "vault", ClientSecret: "vault-example-secret-replace-me-0123456789", Endpoint: provider.Endpoint(),
		RedirectURL: "http://localhost:8250/oidc/callback", Scopes: []string{"openid", "groups"}}
	if resp, _ := o.browse(vault.AuthCodeURL("s"), sess); !strings.HasPrefix(resp.Header.Get("Location"), "/login/step-up?") {
		t.Fatalf("vault requires two factors: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
}

// Every provider path the README names (in its endpoint table and the app snippets) is
// one that discovery publishes.
func TestReadmeOIDCEndpoints(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	h := startSelf(t, testConfig(backends[0].url(t)))
	_, body := h.do(req{path: "/.well-known/openid-configuration"})
	var doc map[string]any
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		t.Fatal(err)
	}
	published := map[string]bool{"/device": true}
	for _, v := range doc {
		if s, ok := v.(string); ok && strings.HasPrefix(s, h.srv.URL) {
			published[strings.TrimPrefix(s, h.srv.URL)] = true
		}
	}
	named := regexp.MustCompile("(?:auth\\.example\\.com|`)(/oauth2/[a-z_]+|/\\.well-known/openid-configuration)").FindAllStringSubmatch(string(readme), -1)
	if len(named) < 10 {
		t.Fatalf("the README names only %d provider paths", len(named))
	}
	for _, m := range named {
		if !published[m[1]] && m[1] != "/.well-known/openid-configuration" {
			t.Errorf("the README names %s, which discovery does not publish", m[1])
		}
	}
}

// With signing_algorithm ES256 the first key is an ES256 key, and apps verify its ID
// tokens from discovery alone.
func TestOIDCES256(t *testing.T) {
	cfg := oidcConfig(backends[0].url(t))
	cfg.OIDC.SigningAlgorithm = "ES256"
	h := startSelf(t, cfg)
	h.addUser("alice", "Home Server Admins")
	_, sess := h.login("alice", "correct horse alice", "")
	provider, err := gooidc.NewProvider(context.Background(), h.srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	o := &oidcHarness{harness: h, provider: provider, ctx: context.Background()}
	conf := o.grafana()
	v := oauth2.GenerateVerifier()
	tok, err := conf.Exchange(o.ctx, o.code(conf.AuthCodeURL("s", oauth2.S256ChallengeOption(v)), sess, "s"), oauth2.VerifierOption(v))
	if err != nil {
		t.Fatal(err)
	}
	raw := tok.Extra("id_token").(string)
	header, _ := base64.RawURLEncoding.DecodeString(strings.Split(raw, ".")[0])
	if !strings.Contains(string(header), `"alg":"ES256"`) {
		t.Fatalf("ID token header %s", header)
	}
	if _, err := provider.Verifier(&gooidc.Config{ClientID: "grafana"}).Verify(o.ctx, raw); err != nil {
		t.Fatalf("ES256 ID token: %v", err)
	}
}

// prompt=login and max_age ask for a fresh sign-in: the person signs in again (their
// old session ends), and the app gets its code with the new sign-in's auth_time.
func TestOIDCFreshSignIn(t *testing.T) {
	o := startOIDC(t, backends[0].url(t))
	conf := o.grafana()
	v := oauth2.GenerateVerifier()
	pkce := oauth2.S256ChallengeOption(v)
	o.code(conf.AuthCodeURL("s", pkce, oauth2.SetAuthURLParam("max_age", "3600")), o.alice, "s") // recent enough

	for _, opt := range []oauth2.AuthCodeOption{oauth2.SetAuthURLParam("prompt", "login"), oauth2.SetAuthURLParam("max_age", "0")} {
		resp, _ := o.browse(conf.AuthCodeURL("s", pkce, opt), o.alice)
		loc := resp.Header.Get("Location")
		if resp.StatusCode != http.StatusFound || !strings.HasPrefix(loc, "/login?rd=") || !strings.HasSuffix(loc, "&prompt=login") {
			t.Fatalf("fresh sign-in asked: %d to %q", resp.StatusCode, loc)
		}
		resp, page := o.do(req{path: loc, cookies: []*http.Cookie{o.alice}})
		if resp.StatusCode != http.StatusOK || !strings.Contains(page, "sign in again") {
			t.Fatalf("the login page let a signed-in user through: %d", resp.StatusCode)
		}
		rd, _ := url.QueryUnescape(strings.TrimSuffix(strings.TrimPrefix(loc, "/login?rd="), "&prompt=login"))
		old := o.alice
		resp, fresh := o.login("alice", "correct horse alice", rd)
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != rd || fresh == nil {
			t.Fatalf("signing in again: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
		}
		// The login form's own session cookie was not sent here (a new browser jar);
		// the old session still works until its own sign-in is replaced in its browser.
		o.alice = fresh
		tok, err := conf.Exchange(o.ctx, o.code(o.srv.URL+rd, fresh, "s"), oauth2.VerifierOption(v))
		if err != nil {
			t.Fatal(err)
		}
		idt, _ := o.provider.Verifier(&gooidc.Config{ClientID: "grafana"}).Verify(o.ctx, tok.Extra("id_token").(string))
		var c struct {
			AuthTime int64 `json:"auth_time"`
		}
		idt.Claims(&c)
		if time.Since(time.Unix(c.AuthTime, 0)) > 5*time.Second {
			t.Fatalf("auth_time %d is not the fresh sign-in", c.AuthTime)
		}
		if resp, _ := o.browse(o.srv.URL+rd, old); resp.StatusCode != http.StatusFound || !strings.Contains(resp.Header.Get("Location"), "prompt=login") {
			t.Fatalf("the older sign-in satisfied the fresh-login request: %q", resp.Header.Get("Location"))
		}
	}
	resp, _ := o.browse(conf.AuthCodeURL("s", pkce, oauth2.SetAuthURLParam("max_age", "0"), oauth2.SetAuthURLParam("prompt", "none")), o.alice)
	if loc, _ := url.Parse(resp.Header.Get("Location")); loc == nil || loc.Query().Get("error") != "login_required" {
		t.Fatalf("prompt=none with max_age=0: %q", resp.Header.Get("Location"))
	}
	// Gatehouse's own login_after cannot be made up outside to wave an older session
	// through an app's prompt=login.
	for _, forged := range []string{"0", "1", strconv.FormatInt(time.Now().Add(-time.Hour).UnixMilli(), 10)} {
		resp, _ := o.browse(conf.AuthCodeURL("s", pkce, oauth2.SetAuthURLParam("prompt", "login"), oauth2.SetAuthURLParam("login_after", forged)), o.alice)
		if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusFound || !strings.HasPrefix(loc, "/login?rd=") {
			t.Fatalf("prompt=login with a forged login_after=%s: %d to %q, want the login page", forged, resp.StatusCode, loc)
		}
	}
}

// Single-page apps call the token and userinfo endpoints from the browser: the origin
// of a registered redirect URI may, others may not; discovery and keys are for anyone.
func TestOIDCCORS(t *testing.T) {
	h := startSelf(t, oidcConfig(backends[0].url(t)))
	preflight := func(origin string) *http.Response {
		resp, _ := h.do(req{method: http.MethodOptions, path: "/oauth2/token", header: http.Header{"Origin": {origin}, "Access-Control-Request-Method": {"POST"}}})
		return resp
	}
	if resp := preflight("https://grafana.example.com"); resp.StatusCode != http.StatusNoContent ||
		resp.Header.Get("Access-Control-Allow-Origin") != "https://grafana.example.com" || !strings.Contains(resp.Header.Get("Access-Control-Allow-Headers"), "Authorization") {
		t.Fatalf("preflight from a registered origin: %d %v", resp.StatusCode, resp.Header)
	}
	if resp := preflight("https://evil.example.net"); resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("preflight from another origin allowed: %v", resp.Header)
	}
	resp, _ := h.do(req{path: "/.well-known/openid-configuration", header: http.Header{"Origin": {"https://anything.example"}}})
	if resp.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Fatal("discovery is not readable from web pages")
	}
	resp, _ = h.do(req{path: "/oauth2/token", form: url.Values{"grant_type": {"client_credentials"}}, header: http.Header{"Origin": {"https://grafana.example.com"}}})
	if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("Access-Control-Allow-Origin") != "https://grafana.example.com" {
		t.Fatalf("an error answer must be readable by the app too: %d %v", resp.StatusCode, resp.Header)
	}
}

// Whatever ends a person's sessions ends their OpenID Connect grants too: an admin's
// password reset, revoking all their sessions, disabling them, and their own password
// change on the account page leave no refresh or access token working.
func TestOIDCGrantsEndWithSessions(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dbURL string) {
		o := startOIDC(t, dbURL)
		o.addUser("root", "Home Server Admins") // so disabling alice is not refused as the last admin
		dir, ctx := o.app.Directory(), o.ctx
		conf := o.grafana()
		for _, end := range []struct {
			name string
			do   func(sess *http.Cookie)
		}{
			{"an admin sets a new password", func(*http.Cookie) { dir.SetPassword(ctx, "cli", "alice", "correct horse alice") }},
			{"gatehouse session revoke --user", func(*http.Cookie) { dir.RevokeUserSessions(ctx, "cli", "alice") }},
			{"disabling the user", func(*http.Cookie) {
				dir.SetDisabled(ctx, "cli", "alice", true)
				dir.SetDisabled(ctx, "cli", "alice", false)
			}},
			{"their own password change", func(sess *http.Cookie) {
				if status, body := o.post("/account/password", sess, url.Values{"current_password": {"correct horse alice"},
					"new_password": {"correct horse alice"}, "new_password_confirm": {"correct horse alice"}}); status != http.StatusOK || !strings.Contains(body, "must sign in again") {
					t.Fatalf("password change: %d", status)
				}
			}},
		} {
			_, sess := o.login("alice", "correct horse alice", "")
			verifier := oauth2.GenerateVerifier()
			tok, err := conf.Exchange(ctx, o.code(conf.AuthCodeURL("s", oauth2.S256ChallengeOption(verifier)), sess, "s"), oauth2.VerifierOption(verifier))
			if err != nil {
				t.Fatalf("%s: exchange: %v", end.name, err)
			}
			end.do(sess)
			if _, err := o.provider.UserInfo(ctx, oauth2.StaticTokenSource(tok)); err == nil {
				t.Errorf("%s: the access token still works at userinfo", end.name)
			}
			tok.Expiry = time.Now().Add(-time.Minute)
			if _, err := conf.TokenSource(ctx, tok).Token(); oauthErrorCode(err) != "invalid_grant" {
				t.Errorf("%s: refreshing: %v, want invalid_grant", end.name, err)
			}
		}
	})
}

// An address a person types for themselves never reaches an app: the ID token and
// userinfo keep the confirmed one, which is the one email_verified vouches for.
func TestOIDCSendsOnlyTheConfirmedEmail(t *testing.T) {
	o := startOIDC(t, backends[0].url(t))
	if status, body := o.post("/account/profile", o.alice, url.Values{"email": {"root@evil.example"}, "display_name": {"Alice"}}); status != http.StatusOK || !strings.Contains(body, "confirmed") {
		t.Fatalf("profile change: %d", status)
	}
	conf := o.grafana()
	verifier := oauth2.GenerateVerifier()
	tok, err := conf.Exchange(o.ctx, o.code(conf.AuthCodeURL("s", oauth2.S256ChallengeOption(verifier)), o.alice, "s"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	idt, err := o.provider.Verifier(&gooidc.Config{ClientID: "grafana"}).Verify(o.ctx, tok.Extra("id_token").(string))
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Email    string `json:"email"`
		Verified bool   `json:"email_verified"`
	}
	idt.Claims(&c)
	info, err := o.provider.UserInfo(o.ctx, oauth2.StaticTokenSource(tok))
	if err != nil {
		t.Fatal(err)
	}
	if c.Email != "alice@example.com" || !c.Verified || info.Email != "alice@example.com" || !info.EmailVerified {
		t.Fatalf("claims after a self-service change: ID token %+v, userinfo %q %v; want the confirmed address, verified", c, info.Email, info.EmailVerified)
	}
}

// Scopes Gatehouse does not know, or the client may not have, are left out instead of
// failing the sign-in, and the token response says what was granted.
func TestOIDCIgnoresScopesItDoesNotGrant(t *testing.T) {
	o := startOIDC(t, backends[0].url(t))
	conf := o.grafana()
	conf.Scopes = []string{gooidc.ScopeOpenID, "profile", "address", "phone", "vendor:read", "profile"}
	verifier := oauth2.GenerateVerifier()
	tok, err := conf.Exchange(o.ctx, o.code(conf.AuthCodeURL("s", oauth2.S256ChallengeOption(verifier)), o.alice, "s"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("a sign-in asking for unknown scopes: %v", err)
	}
	if granted := tok.Extra("scope"); granted != "openid profile" {
		t.Fatalf("granted scope %q, want \"openid profile\"", granted)
	}
}

// The spec's edges that real relying parties and their test suites check.
func TestOIDCSpecEdges(t *testing.T) {
	o := startOIDC(t, backends[0].url(t))
	base := url.Values{"client_id": {"grafana"}, "redirect_uri": {grafanaCB}, "response_type": {"code"}, "scope": {"openid"}, "state": {"s"}}
	errorOf := func(change func(url.Values)) string {
		t.Helper()
		q := url.Values{}
		for k, v := range base {
			q[k] = append([]string(nil), v...)
		}
		change(q)
		resp, _ := o.do(req{path: "/oauth2/authorize?" + q.Encode(), cookies: []*http.Cookie{o.alice}})
		loc, _ := url.Parse(resp.Header.Get("Location"))
		if resp.StatusCode != http.StatusFound || loc == nil {
			return fmt.Sprintf("page %d", resp.StatusCode)
		}
		return loc.Query().Get("error")
	}
	for _, tc := range []struct {
		name   string
		change func(url.Values)
		want   string
	}{
		{"a parameter given twice", func(q url.Values) { q["scope"] = []string{"openid", "email"} }, "invalid_request"},
		{"no response_type", func(q url.Values) { q.Del("response_type") }, "invalid_request"},
		{"request_uri", func(q url.Values) { q.Set("request_uri", "https://grafana.example.com/r") }, "request_uri_not_supported"},
		{"a request object", func(q url.Values) { q.Set("request", "eyJ") }, "request_not_supported"},
		{"prompt=none with login", func(q url.Values) { q.Set("prompt", "none login") }, "invalid_request"},
		{"an OpenID request without redirect_uri", func(q url.Values) { q.Del("redirect_uri") }, "page 400"},
	} {
		if got := errorOf(tc.change); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}

	// Two client authentication methods at once.
	r, _ := http.NewRequest(http.MethodPost, o.srv.URL+"/oauth2/token", strings.NewReader(url.Values{"grant_type": {"client_credentials"}, "client_secret": {robotSecret}}.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.SetBasicAuth("robot", robotSecret)
	resp, err := client.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("Basic and client_secret together: %d, want 400 invalid_request", resp.StatusCode)
	}

	// userinfo: the scheme is case-insensitive; no token is a challenge without an error code.
	conf := o.grafana()
	verifier := oauth2.GenerateVerifier()
	tok, err := conf.Exchange(o.ctx, o.code(conf.AuthCodeURL("s", oauth2.S256ChallengeOption(verifier)), o.alice, "s"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	if resp, _ := o.do(req{path: "/oauth2/userinfo", header: http.Header{"Authorization": {"bearer " + tok.AccessToken}}}); resp.StatusCode != http.StatusOK {
		t.Errorf("userinfo with a lower-case bearer scheme: %d", resp.StatusCode)
	}
	resp, _ = o.do(req{path: "/oauth2/userinfo"})
	if challenge := resp.Header.Get("WWW-Authenticate"); resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(challenge, "Bearer") || strings.Contains(challenge, "error=") {
		t.Errorf("userinfo without a token: %d %q, want 401 with a bare Bearer challenge", resp.StatusCode, challenge)
	}
}

// kidOf reads the key id from a JWS's protected header.
func kidOf(t *testing.T, jws string) string {
	t.Helper()
	head, _, _ := strings.Cut(jws, ".")
	b, err := base64.RawURLEncoding.DecodeString(head)
	var h struct {
		Kid string `json:"kid"`
	}
	if err != nil || json.Unmarshal(b, &h) != nil {
		t.Fatalf("unreadable JWS header %q", head)
	}
	return h.Kid
}

// Overlapping refreshes, as oauth2-proxy sends from parallel requests, all get valid
// pairs and keep the grant; a refused refresh does not spend the token.
func TestOIDCParallelRefreshesKeepTheGrant(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dbURL string) {
		o := startOIDC(t, dbURL)
		conf := o.grafana()
		verifier := oauth2.GenerateVerifier()
		tok, err := conf.Exchange(o.ctx, o.code(conf.AuthCodeURL("s", oauth2.S256ChallengeOption(verifier)), o.alice, "s"), oauth2.VerifierOption(verifier))
		if err != nil {
			t.Fatal(err)
		}
		refresh := func(rt, scope string) (int, map[string]any) {
			form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}
			if scope != "" {
				form.Set("scope", scope)
			}
			return o.form("/oauth2/token", "grafana", grafanaSecret, form)
		}
		if status, body := refresh(tok.RefreshToken, "openid address"); status != http.StatusBadRequest || body["error"] != "invalid_scope" {
			t.Fatalf("a refresh widening the scopes: %d %v", status, body)
		}
		var wg sync.WaitGroup
		results := make(chan map[string]any, 4)
		for range 4 {
			wg.Go(func() {
				status, body := refresh(tok.RefreshToken, "")
				if status != http.StatusOK {
					body = map[string]any{"status": status, "body": body}
				}
				results <- body
			})
		}
		wg.Wait()
		close(results)
		for body := range results {
			rt, _ := body["refresh_token"].(string)
			if rt == "" {
				t.Fatalf("a parallel refresh failed: %v (the refused one before must not have spent the token either)", body)
			}
			if status, again := refresh(rt, ""); status != http.StatusOK {
				t.Fatalf("a token from a parallel refresh does not refresh: %d %v", status, again)
			}
		}
		if strings.Contains(o.logText(), "refresh_token_reused") {
			t.Fatal("parallel refreshes were taken for a stolen token")
		}
	})
}

// id_token_hint names who the app expects: another person signed in is not handed a
// code for themselves (prompt=none: login_required; otherwise the sign-in page).
func TestOIDCIDTokenHintAtAuthorize(t *testing.T) {
	o := startOIDC(t, backends[0].url(t))
	conf := o.grafana()
	verifier := oauth2.GenerateVerifier()
	pkce := oauth2.S256ChallengeOption(verifier)
	tok, err := conf.Exchange(o.ctx, o.code(conf.AuthCodeURL("s", pkce), o.alice, "s"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	aliceHint := oauth2.SetAuthURLParam("id_token_hint", tok.Extra("id_token").(string))
	none := oauth2.SetAuthURLParam("prompt", "none")
	errorOf := func(resp *http.Response) string {
		loc, _ := url.Parse(resp.Header.Get("Location"))
		if loc == nil {
			return ""
		}
		return loc.Query().Get("error")
	}
	if resp, _ := o.browse(conf.AuthCodeURL("s", pkce, aliceHint, none), o.bob); errorOf(resp) != "login_required" {
		t.Fatalf("bob's browser with alice's hint and prompt=none: %d to %q, want login_required", resp.StatusCode, resp.Header.Get("Location"))
	}
	if resp, _ := o.browse(conf.AuthCodeURL("s", pkce, aliceHint), o.bob); !strings.HasPrefix(resp.Header.Get("Location"), "/login") {
		t.Fatalf("bob's browser with alice's hint: to %q, want the sign-in page", resp.Header.Get("Location"))
	}
	if code := o.code(conf.AuthCodeURL("s", pkce, aliceHint, none), o.alice, "s"); code == "" {
		t.Fatal("alice's own hint in her browser gave no code")
	}
	if resp, _ := o.browse(conf.AuthCodeURL("s", pkce, oauth2.SetAuthURLParam("id_token_hint", "not.a.token")), o.alice); errorOf(resp) != "invalid_request" {
		t.Fatalf("a made-up hint: %q, want invalid_request", resp.Header.Get("Location"))
	}
}
