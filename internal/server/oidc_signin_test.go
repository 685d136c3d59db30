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
	tok, err := conf.Exchange(o.ctx, o.code(conf.AuthCodeURL("s", oauth2.S256ChallengeOption(verifier)), sess, "s"), oauth2.VerifierOption(verifier))
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
