package server

import (
	"context"
	"encoding/json"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"github.com/go-jose/go-jose/v4"
	"golang.org/x/oauth2"

	"github.com/gatehouse-id/gatehouse/internal/oidc"
)

// onlineGrafana asks for what Grafana asks by default: no offline_access.
func (o *oidcHarness) onlineGrafana() *oauth2.Config {
	c := o.grafana()
	c.Scopes = []string{gooidc.ScopeOpenID, "profile", "email", "groups"}
	return c
}

// signIn runs the code flow for conf with sess and returns the tokens.
func (o *oidcHarness) signIn(conf *oauth2.Config, sess *http.Cookie) *oauth2.Token {
	o.t.Helper()
	verifier := oauth2.GenerateVerifier()
	authURL := conf.AuthCodeURL("s", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("nonce", "n-1"))
	tok, err := conf.Exchange(o.ctx, o.code(authURL, sess, "s"), oauth2.VerifierOption(verifier))
	if err != nil {
		o.t.Fatalf("exchange: %v", err)
	}
	return tok
}

// idClaims verifies the token's ID token and returns its claims.
func (o *oidcHarness) idClaims(tok *oauth2.Token, clientID string) map[string]any {
	o.t.Helper()
	raw, _ := tok.Extra("id_token").(string)
	idt, err := o.provider.Verifier(&gooidc.Config{ClientID: clientID}).Verify(o.ctx, raw)
	if err != nil {
		o.t.Fatalf("id token: %v", err)
	}
	out := map[string]any{}
	if err := idt.Claims(&out); err != nil {
		o.t.Fatal(err)
	}
	return out
}

func (o *oidcHarness) refreshes(conf *oauth2.Config, tok *oauth2.Token) (*oauth2.Token, error) {
	t := *tok
	t.Expiry = time.Now().Add(-time.Minute)
	return conf.TokenSource(o.ctx, &t).Token()
}

func (o *oidcHarness) forwardAuth(sess *http.Cookie) int {
	o.t.Helper()
	resp, _ := o.do(req{path: "/api/authz/forward-auth", header: traefik("https://app.example.com/"), cookies: []*http.Cookie{sess}})
	return resp.StatusCode
}

// A client allowed to refresh gets a refresh token without offline_access, bound to
// the Gatehouse sign-in (the ID token's sid): a step-up keeps it, signing out ends it
// and its access tokens; an offline_access grant outlives the sign-in.
func TestOIDCOnlineGrantsEndWithTheSignIn(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dbURL string) {
		o := startOIDC(t, dbURL)
		online, offline := o.onlineGrafana(), o.grafana()
		_, sess := o.login("alice", "correct horse alice", "")
		tok := o.signIn(online, sess)
		if tok.RefreshToken == "" {
			t.Fatal("no refresh token without offline_access for a client that may refresh")
		}
		claims := o.idClaims(tok, "grafana")
		sid, _ := claims["sid"].(string)
		if sid == "" {
			t.Fatalf("no sid in the ID token: %v", claims)
		}
		kept := o.signIn(offline, sess)
		if o.idClaims(kept, "grafana")["sid"] != sid {
			t.Fatal("two grants of one sign-in name different sids")
		}

		// Signing in again in the same browser (a step-up) carries the sign-in on.
		_, again := o.loginAs("alice", "correct horse alice", "", nil, sess)
		if again == nil || again.Value == sess.Value {
			t.Fatal("signing in again gave no new session")
		}
		if o.forwardAuth(sess) == http.StatusOK {
			t.Fatal("the replaced session still passes")
		}
		tok, err := o.refreshes(online, tok)
		if err != nil {
			t.Fatalf("refreshing after a step-up: %v", err)
		}
		if got := o.idClaims(tok, "grafana")["sid"]; got != sid {
			t.Fatalf("sid after a step-up = %v, want %s", got, sid)
		}
		// Another person signing in on this browser starts a sign-in of their own.
		_, bobHere := o.loginAs("bob", "correct horse bob", "", nil, again)
		if o.forwardAuth(again) == http.StatusOK {
			t.Fatal("alice's session survived bob signing in on her browser")
		}
		if _, err := o.refreshes(online, tok); oauthErrorCode(err) != "invalid_grant" {
			t.Fatalf("refreshing an online grant after its sign-in ended: %v, want invalid_grant", err)
		}
		if _, err := o.provider.UserInfo(o.ctx, oauth2.StaticTokenSource(tok)); err == nil {
			t.Fatal("an online grant's access token works after its sign-in ended")
		}
		if _, err := o.refreshes(offline, kept); err != nil {
			t.Fatalf("an offline_access grant must outlive the sign-in: %v", err)
		}
		if o.forwardAuth(bobHere) != http.StatusOK {
			t.Fatal("bob's new session does not pass")
		}
	})
}

// RP-Initiated Logout 1.0 with and without id_token_hint: what is provably the
// asker's ends at once, anything else is confirmed first; an app's server calling
// with the hint (oauth2-proxy's backend logout) ends the sign-in the sid names.
func TestOIDCLogoutEndsTheSignIn(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dbURL string) {
		o := startOIDC(t, dbURL)
		conf := o.onlineGrafana()
		after := "https://grafana.example.com/login"
		logout := func(v url.Values, cookies ...*http.Cookie) (*http.Response, string) {
			return o.do(req{path: "/oauth2/logout?" + v.Encode(), cookies: cookies})
		}

		// No hint, client_id and a registered address: a signed-in browser is asked.
		_, sess := o.login("alice", "correct horse alice", "")
		tok := o.signIn(conf, sess)
		resp, page := logout(url.Values{"client_id": {"grafana"}, "post_logout_redirect_uri": {after}, "state": {"bye"}}, sess)
		m := regexp.MustCompile(`name="confirm" value="([^"]+)"`).FindStringSubmatch(page)
		if resp.StatusCode != http.StatusOK || m == nil || !strings.Contains(page, "Grafana") {
			t.Fatalf("logout without a hint: %d, want a confirmation page naming the app\n%s", resp.StatusCode, page)
		}
		if o.forwardAuth(sess) != http.StatusOK {
			t.Fatal("showing the confirmation page signed the browser out")
		}
		csrf := csrfField.FindStringSubmatch(page)[1]
		csrfCookie := cookieNamed(resp, "gatehouse_csrf")
		// The form needs its CSRF token, and belongs to this sign-in.
		if resp, _ := o.do(req{path: "/oauth2/logout", form: url.Values{"confirm": {m[1]}}, cookies: []*http.Cookie{sess}}); resp.StatusCode == http.StatusFound {
			t.Fatal("confirmed without the CSRF token")
		}
		resp, _ = o.do(req{path: "/oauth2/logout", form: url.Values{"confirm": {m[1]}, "csrf_token": {csrf}}, cookies: []*http.Cookie{sess, csrfCookie}})
		if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != after+"?state=bye" {
			t.Fatalf("confirmed logout: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
		}
		if o.forwardAuth(sess) == http.StatusOK {
			t.Fatal("still signed in after confirming")
		}
		if _, err := o.refreshes(conf, tok); oauthErrorCode(err) != "invalid_grant" {
			t.Fatalf("the sign-in's online grant after logout: %v", err)
		}
		// Nobody signed in: nothing to end, straight back to the app.
		resp, _ = logout(url.Values{"client_id": {"grafana"}, "post_logout_redirect_uri": {after}})
		if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != after {
			t.Fatalf("logout signed out already: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
		}
		// Refusals: no app named, an unknown app, an address the app did not register.
		for _, v := range []url.Values{
			{"post_logout_redirect_uri": {after}},
			{"client_id": {"nope"}, "post_logout_redirect_uri": {after}},
			{"client_id": {"grafana"}, "post_logout_redirect_uri": {"https://evil.example.net/"}},
			{"client_id": {"grafana", "forgejo"}},
		} {
			if resp, _ := logout(v); resp.StatusCode != http.StatusBadRequest {
				t.Errorf("logout %v: %d, want 400", v, resp.StatusCode)
			}
		}

		// The app's server calls with the ID token and no cookie: that sign-in ends,
		// another of alice's does not.
		_, sess = o.login("alice", "correct horse alice", "")
		_, other := o.login("alice", "correct horse alice", "")
		tok = o.signIn(conf, sess)
		resp, _ = logout(url.Values{"id_token_hint": {tok.Extra("id_token").(string)}})
		if resp.StatusCode != http.StatusFound {
			t.Fatalf("back-end logout: %d", resp.StatusCode)
		}
		if o.forwardAuth(sess) == http.StatusOK {
			t.Fatal("back-end logout with the ID token did not end the sign-in it names")
		}
		if o.forwardAuth(other) != http.StatusOK {
			t.Fatal("back-end logout ended another sign-in of the same person")
		}
		if _, err := o.refreshes(conf, tok); oauthErrorCode(err) != "invalid_grant" {
			t.Fatalf("refresh after back-end logout: %v", err)
		}
	})
}

// logoutReceiver is an app's back-channel logout endpoint that checks each logout
// token as Back-Channel Logout 1.0 (2.6) says an app must.
type logoutReceiver struct {
	*httptest.Server
	mu     sync.Mutex
	tokens []map[string]any
	errs   []string
	fail   int // answer 503 to this many posts first
}

func newLogoutReceiver(t *testing.T, issuer string) *logoutReceiver {
	lr := &logoutReceiver{}
	lr.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		lr.mu.Lock()
		defer lr.mu.Unlock()
		if lr.fail > 0 {
			lr.fail--
			http.Error(w, "restarting", http.StatusServiceUnavailable)
			return
		}
		claims, err := checkLogoutToken(r, issuer)
		if err != "" {
			lr.errs = append(lr.errs, err)
			http.Error(w, err, http.StatusBadRequest)
			return
		}
		lr.tokens = append(lr.tokens, claims)
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(lr.Close)
	return lr
}

func (lr *logoutReceiver) received() ([]map[string]any, []string) {
	lr.mu.Lock()
	defer lr.mu.Unlock()
	return append([]map[string]any(nil), lr.tokens...), append([]string(nil), lr.errs...)
}

// checkLogoutToken verifies the posted logout token against the issuer's published
// keys and claims, and says what is wrong with it.
func checkLogoutToken(r *http.Request, issuer string) (map[string]any, string) {
	if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" {
		return nil, "not a form post"
	}
	raw := r.PostFormValue("logout_token")
	jws, err := jose.ParseSigned(raw, []jose.SignatureAlgorithm{jose.RS256, jose.ES256})
	if err != nil || len(jws.Signatures) != 1 {
		return nil, "not a JWS"
	}
	if typ, _ := jws.Signatures[0].Protected.ExtraHeaders["typ"].(string); typ != "logout+jwt" {
		return nil, "typ is " + typ
	}
	resp, err := http.Get(issuer + oidc.PathJWKS)
	if err != nil {
		return nil, err.Error()
	}
	defer resp.Body.Close()
	var set jose.JSONWebKeySet
	if b, _ := io.ReadAll(resp.Body); json.Unmarshal(b, &set) != nil {
		return nil, "bad JWKS"
	}
	keys := set.Key(jws.Signatures[0].Header.KeyID)
	if len(keys) != 1 {
		return nil, "unknown kid"
	}
	payload, err := jws.Verify(keys[0])
	if err != nil {
		return nil, "bad signature"
	}
	claims := map[string]any{}
	if json.Unmarshal(payload, &claims) != nil {
		return nil, "bad claims"
	}
	events, _ := claims["events"].(map[string]any)
	exp, _ := claims["exp"].(float64)
	switch {
	case claims["iss"] != issuer:
		return nil, "wrong iss"
	case claims["aud"] != "grafana":
		return nil, "wrong aud"
	case claims["jti"] == nil || claims["iat"] == nil:
		return nil, "no jti or iat"
	case time.Unix(int64(exp), 0).Before(time.Now()):
		return nil, "expired"
	case events == nil || events[oidc.LogoutEvent] == nil:
		return nil, "no back-channel logout event"
	case claims["nonce"] != nil:
		return nil, "a nonce (a logout token must not look like an ID token)"
	case claims["sid"] == nil:
		return nil, "no sid"
	}
	return claims, ""
}

// Back-channel logout: when a sign-in ends — here by the person signing out, and by an
// admin revoking every session — the app receives a logout token it can verify, with
// the sid and sub of its ID token, once, even when its first answers fail; a step-up
// sends nothing.
func TestOIDCBackChannelLogout(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dbURL string) {
		cfg := oidcConfig(dbURL)
		o := &oidcHarness{ctx: context.Background()}
		srv := httptest.NewUnstartedServer(nil)
		issuer := "http://" + srv.Listener.Addr().String()
		lr := newLogoutReceiver(t, issuer)
		lr.fail = 1 // the app is restarting when the first logout comes
		cfg.OIDC.Clients[0].BackchannelLogoutURI = lr.URL + "/backchannel"
		cfg.Server.PublicURL = issuer
		cfg.Session.CookieDomain = ""
		o.harness = startOn(t, srv, cfg)
		o.app.OIDC.SetLogoutBackoff(50 * time.Millisecond)
		o.addUser("alice", "Home Server Admins")
		provider, err := gooidc.NewProvider(o.ctx, issuer)
		if err != nil {
			t.Fatal(err)
		}
		o.provider = provider
		conf := o.onlineGrafana()

		_, sess := o.login("alice", "correct horse alice", "")
		claims := o.idClaims(o.signIn(conf, sess), "grafana")
		_, sess = o.loginAs("alice", "correct horse alice", "", nil, sess) // a step-up
		o.logoutForm(sess)
		waitFor(t, "the logout token", func() bool { got, errs := lr.received(); return len(got)+len(errs) > 0 })
		got, errs := lr.received()
		if len(errs) > 0 {
			t.Fatalf("the app rejected logout tokens: %v", errs)
		}
		if len(got) != 1 || got[0]["sid"] != claims["sid"] || got[0]["sub"] != claims["sub"] {
			t.Fatalf("logout tokens %v, want one for sid %v sub %v", got, claims["sid"], claims["sub"])
		}

		// An admin ending every session of the person: the app hears of it too.
		_, sess = o.login("alice", "correct horse alice", "")
		claims = o.idClaims(o.signIn(conf, sess), "grafana")
		if _, err := o.app.Directory().RevokeUserSessions(o.ctx, "cli", "alice"); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the second logout token", func() bool { got, _ := lr.received(); return len(got) > 1 })
		if got, _ := lr.received(); got[1]["sid"] != claims["sid"] {
			t.Fatalf("second logout token for %v, want %v", got[1]["sid"], claims["sid"])
		}
		waitFor(t, "delivered logouts to be forgotten", func() bool { return tableRows(t, o.app.Store)["oidc_logouts"] == 0 })
	})
}

// logoutForm posts the sign-out page's form for sess.
func (o *oidcHarness) logoutForm(sess *http.Cookie) {
	o.t.Helper()
	resp, page := o.do(req{path: "/logout", cookies: []*http.Cookie{sess}})
	m := csrfField.FindStringSubmatch(page)
	if m == nil {
		o.t.Fatalf("sign-out page %d without a form", resp.StatusCode)
	}
	resp, _ = o.do(req{path: "/logout", form: url.Values{"csrf_token": {m[1]}}, cookies: []*http.Cookie{sess, cookieNamed(resp, "gatehouse_csrf")}})
	if resp.StatusCode != http.StatusSeeOther {
		o.t.Fatalf("signing out: %d", resp.StatusCode)
	}
}

// response_mode query, fragment and form_post, and nothing else; a person an app does
// not allow gets a page whose button hands the app access_denied.
func TestOIDCResponseModes(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dbURL string) {
		o := startOIDC(t, dbURL)
		conf := o.grafana()
		verifier := oauth2.GenerateVerifier()
		auth := func(mode string, sess *http.Cookie) (*http.Response, string) {
			return o.browse(conf.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("response_mode", mode)), sess)
		}
		resp, _ := auth("fragment", o.alice)
		loc, _ := url.Parse(resp.Header.Get("Location"))
		frag, _ := url.ParseQuery(loc.Fragment)
		if resp.StatusCode != http.StatusFound || loc.RawQuery != "" || frag.Get("code") == "" || frag.Get("state") != "st" {
			t.Fatalf("fragment: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
		}
		resp, page := auth("form_post", o.alice)
		code := regexp.MustCompile(`name="code" value="([^"]+)"`).FindStringSubmatch(page)
		if resp.StatusCode != http.StatusOK || !strings.Contains(page, `action="`+grafanaCB+`"`) || code == nil ||
			!strings.Contains(page, `name="state" value="st"`) || !strings.Contains(page, "<button") ||
			!strings.Contains(resp.Header.Get("Content-Security-Policy"), "script-src 'sha256-") {
			t.Fatalf("form_post: %d %v\n%s", resp.StatusCode, resp.Header, page)
		}
		if _, err := conf.Exchange(o.ctx, code[1], oauth2.VerifierOption(verifier)); err != nil {
			t.Fatalf("the posted code: %v", err)
		}
		resp, _ = auth("web_message", o.alice)
		loc, _ = url.Parse(resp.Header.Get("Location"))
		if resp.StatusCode != http.StatusFound || loc.Query().Get("error") != "invalid_request" {
			t.Fatalf("an unknown response_mode: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
		}
		// Bob may not use Grafana: the page explains, its button tells the app.
		resp, page = auth("", o.bob)
		link := regexp.MustCompile(`href="([^"]+)">Back to Grafana`).FindStringSubmatch(page)
		if resp.StatusCode != http.StatusForbidden || link == nil {
			t.Fatalf("not allowed: %d\n%s", resp.StatusCode, page)
		}
		back, _ := url.Parse(html.UnescapeString(link[1]))
		if !strings.HasPrefix(back.String(), grafanaCB+"?") || back.Query().Get("error") != "access_denied" || back.Query().Get("state") != "st" {
			t.Fatalf("the way back: %q", link[1])
		}
	})
}

// Discovery states only what is true: every member is checked against what the
// provider does, and a member this test does not know fails it, so nothing new is
// advertised unchecked.
func TestOIDCDiscoveryIsTrue(t *testing.T) {
	o := startOIDC(t, backends[0].url(t))
	_, body := o.do(req{path: oidc.PathDiscovery})
	doc := map[string]any{}
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		t.Fatal(err)
	}
	strs := func(k string) []string {
		var out []string
		for _, v := range doc[k].([]any) {
			out = append(out, v.(string))
		}
		return out
	}
	status := func(method, path string) int {
		r, _ := http.NewRequest(method, o.srv.URL+path, strings.NewReader(""))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := client.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	// A full sign-in gives the tokens the claims are checked on.
	conf := o.grafana()
	tok := o.signIn(conf, o.alice)
	idClaims := o.idClaims(tok, "grafana")
	info := map[string]any{}
	if ui, err := o.provider.UserInfo(o.ctx, oauth2.StaticTokenSource(tok)); err != nil || ui.Claims(&info) != nil {
		t.Fatalf("userinfo: %v", err)
	}
	checks := map[string]func(){
		"issuer": func() {
			if doc["issuer"] != o.srv.URL || idClaims["iss"] != o.srv.URL {
				t.Errorf("issuer %v, ID tokens say %v", doc["issuer"], idClaims["iss"])
			}
		},
		"response_types_supported": func() {
			if got := strs("response_types_supported"); len(got) != 1 || got[0] != "code" {
				t.Errorf("response types %v", got)
			}
			if resp, _ := o.browse(conf.AuthCodeURL("s", oauth2.SetAuthURLParam("response_type", "token")), o.alice); !strings.Contains(resp.Header.Get("Location"), "unsupported_response_type") {
				t.Error("an unadvertised response type was not refused")
			}
		},
		"response_modes_supported": func() {
			for _, mode := range strs("response_modes_supported") {
				resp, page := o.browse(conf.AuthCodeURL("s", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()), oauth2.SetAuthURLParam("response_mode", mode)), o.alice)
				if !strings.Contains(resp.Header.Get("Location")+page, "code=") && !strings.Contains(page, `name="code"`) {
					t.Errorf("response_mode %s gave no code: %d", mode, resp.StatusCode)
				}
			}
		},
		"grant_types_supported": func() {
			for _, g := range strs("grant_types_supported") {
				if code, out := o.form(oidc.PathToken, "robot", robotSecret, url.Values{"grant_type": {g}}); code == http.StatusOK && g != "client_credentials" || out["error"] == "unsupported_grant_type" {
					t.Errorf("grant type %s: %d %v", g, code, out)
				}
			}
		},
		"scopes_supported": func() {
			for _, sc := range strs("scopes_supported") {
				if !strings.Contains(" "+tok.Extra("scope").(string)+" ", " "+sc+" ") {
					t.Errorf("scope %s is advertised but was not granted to a client that asked for it", sc)
				}
			}
		},
		"claims_supported": func() {
			for _, c := range strs("claims_supported") {
				if _, inID := idClaims[c]; !inID && info[c] == nil {
					t.Errorf("claim %s is advertised but neither the ID token nor userinfo has it", c)
				}
			}
		},
		"code_challenge_methods_supported": func() {
			if got := strs("code_challenge_methods_supported"); len(got) != 1 || got[0] != "S256" {
				t.Errorf("code challenge methods %v", got)
			}
			plain := conf.AuthCodeURL("s", oauth2.SetAuthURLParam("code_challenge", strings.Repeat("a", 43)), oauth2.SetAuthURLParam("code_challenge_method", "plain"))
			if resp, _ := o.browse(plain, o.alice); !strings.Contains(resp.Header.Get("Location"), "invalid_request") {
				t.Error("plain PKCE was not refused")
			}
		},
		"id_token_signing_alg_values_supported": func() {}, // RS256 here, ES256 in TestOIDCES256
		"subject_types_supported":               func() {},
		"token_endpoint_auth_methods_supported": func() {
			for _, m := range strs("token_endpoint_auth_methods_supported") {
				var code int
				switch m {
				case "client_secret_basic":
					code, _ = o.form(oidc.PathToken, "robot", robotSecret, url.Values{"grant_type": {"client_credentials"}})
				case "client_secret_post":
					code, _ = o.form(oidc.PathToken, "", "", url.Values{"grant_type": {"client_credentials"}, "client_id": {"robot"}, "client_secret": {robotSecret}})
				case "none":
					code, _ = o.form(oidc.PathDeviceAuthorization, "", "", url.Values{"client_id": {"kubectl"}})
				default:
					t.Errorf("unchecked auth method %s", m)
				}
				if code != http.StatusOK {
					t.Errorf("auth method %s: %d", m, code)
				}
			}
		},
		"introspection_endpoint_auth_methods_supported": func() {
			if code, in := o.form(oidc.PathIntrospect, "grafana", grafanaSecret, url.Values{"token": {tok.AccessToken}}); code != http.StatusOK || in["active"] != true {
				t.Errorf("introspection: %d %v", code, in)
			}
		},
		"revocation_endpoint_auth_methods_supported":     func() {},
		"authorization_response_iss_parameter_supported": func() {}, // o.code checks iss on every redirect
		"request_parameter_supported": func() {
			if resp, _ := o.browse(conf.AuthCodeURL("s", oauth2.SetAuthURLParam("request", "x")), o.alice); !strings.Contains(resp.Header.Get("Location"), "request_not_supported") {
				t.Error("request objects are not refused")
			}
		},
		"request_uri_parameter_supported": func() {
			if resp, _ := o.browse(conf.AuthCodeURL("s", oauth2.SetAuthURLParam("request_uri", "x")), o.alice); !strings.Contains(resp.Header.Get("Location"), "request_uri_not_supported") {
				t.Error("request_uri is not refused")
			}
		},
		"claims_parameter_supported":   func() {},
		"backchannel_logout_supported": func() {}, // TestOIDCBackChannelLogout
		"backchannel_logout_session_supported": func() {
			if idClaims["sid"] == nil {
				t.Error("sid advertised but not in ID tokens")
			}
		},
	}
	for k, v := range doc {
		if s, ok := v.(string); ok && strings.HasSuffix(k, "_endpoint") || k == "jwks_uri" {
			path := strings.TrimPrefix(s, o.srv.URL)
			if !strings.HasPrefix(s, o.srv.URL) || (status(http.MethodGet, path) == http.StatusNotFound && status(http.MethodPost, path) == http.StatusNotFound) {
				t.Errorf("%s %s does not answer", k, s)
			}
			continue
		}
		check, ok := checks[k]
		if !ok {
			t.Errorf("discovery advertises %s, which no check covers", k)
			continue
		}
		check()
	}
}

// Refreshes of one token racing on two replicas (PostgreSQL and PgBouncer) all get a
// working pair, and the grant lives on: the reuse grace is kept in the database, not in
// a replica's memory.
func TestOIDCParallelRefreshesAcrossReplicas(t *testing.T) {
	for _, b := range backends[1:] {
		t.Run(b.name, func(t *testing.T) {
			dbURL := b.url(t)
			one := startOIDC(t, dbURL)
			cfg := oidcConfig(dbURL)
			cfg.Server.PublicURL, cfg.Session.CookieDomain = one.srv.URL, "" // one issuer for both
			two := start(t, cfg)
			tok := one.signIn(one.onlineGrafana(), one.alice)
			refresh := func(h *harness, token string) (int, map[string]any) {
				return (&oidcHarness{harness: h}).form(oidc.PathToken, "grafana", grafanaSecret,
					url.Values{"grant_type": {"refresh_token"}, "refresh_token": {token}})
			}
			var wg sync.WaitGroup
			answers := make(chan map[string]any, 8)
			for i := range 8 {
				h := one.harness
				if i%2 == 1 {
					h = two
				}
				wg.Go(func() {
					status, body := refresh(h, tok.RefreshToken)
					if status != http.StatusOK {
						body["status"] = status
					}
					answers <- body
				})
			}
			wg.Wait()
			close(answers)
			var last string
			for a := range answers {
				if a["status"] != nil || a["refresh_token"] == nil {
					t.Fatalf("a parallel refresh across replicas failed: %v", a)
				}
				last = a["refresh_token"].(string)
			}
			if status, body := refresh(two, last); status != http.StatusOK {
				t.Fatalf("the grant after parallel refreshes on two replicas: %d %v", status, body)
			}
			if strings.Contains(one.logText()+two.logText(), "refresh_token_reused") {
				t.Fatal("parallel refreshes were taken for a stolen token")
			}
		})
	}
}
