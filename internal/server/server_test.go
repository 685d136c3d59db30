package server

import (
	"bytes"
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-id/gatehouse/internal/testenv"
)

func TestSetupLinkCreatesTheFirstAdmin(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dbURL string) {
		h := start(t, testConfig(dbURL))
		var out bytes.Buffer
		if err := h.app.PrintSetupLink(context.Background(), &out); err != nil {
			t.Fatal(err)
		}
		m := regexp.MustCompile(`https://auth\.example\.com(/setup\?token=[\w-]{43})`).FindStringSubmatch(out.String())
		if m == nil {
			t.Fatalf("no setup link printed:\n%s", out.String())
		}
		setupPath := m[1]
		token := strings.TrimPrefix(setupPath, "/setup?token=")

		csrfToken, csrf := h.formToken(setupPath)
		form := url.Values{"token": {token}, "username": {"owner"}, "display_name": {"The Owner"}, "email": {"owner@example.com"},
			"password": {"a long passphrase"}, "password_confirm": {"a long passphrase"}, "csrf_token": {csrfToken}}

		bad := url.Values{}
		for k, v := range form {
			bad[k] = v
		}
		bad.Set("csrf_token", "forged")
		if resp, _ := h.do(req{path: "/setup", form: bad, cookies: []*http.Cookie{csrf}}); resp.StatusCode != http.StatusForbidden {
			t.Fatalf("setup with a forged CSRF token: %d, want 403", resp.StatusCode)
		}
		mismatch := url.Values{}
		for k, v := range form {
			mismatch[k] = v
		}
		mismatch.Set("password_confirm", "something else")
		if resp, body := h.do(req{path: "/setup", form: mismatch, cookies: []*http.Cookie{csrf}}); resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "differ") {
			t.Fatalf("setup with differing passwords: %d", resp.StatusCode)
		}

		resp, _ := h.do(req{path: "/setup", form: form, cookies: []*http.Cookie{csrf}})
		sess := cookieNamed(resp, "gatehouse_session")
		if resp.StatusCode != http.StatusSeeOther || sess == nil {
			t.Fatalf("setup: %d, session cookie %v", resp.StatusCode, sess)
		}
		if !sess.HttpOnly || !sess.Secure || sess.SameSite != http.SameSiteLaxMode || sess.Domain != "example.com" || sess.MaxAge < 27*24*3600 {
			t.Fatalf("session cookie attributes: %+v", sess)
		}
		if _, body := h.do(req{path: "/", cookies: []*http.Cookie{sess}}); !strings.Contains(body, "owner") || !strings.Contains(body, "Home Server Admins") {
			t.Fatalf("home page after setup does not show the admin and their group:\n%s", body)
		}
		if resp, _ := h.do(req{path: "/api/authz/forward-auth", header: traefik("https://grafana.example.com/"), cookies: []*http.Cookie{sess}}); resp.StatusCode != http.StatusOK {
			t.Fatalf("the first admin cannot pass forward auth: %d", resp.StatusCode)
		}
		if resp, _ := h.do(req{path: "/setup", form: form, cookies: []*http.Cookie{csrf}}); resp.StatusCode != http.StatusNotFound {
			t.Fatalf("setup link reused: %d, want 404", resp.StatusCode)
		}
		out.Reset()
		if err := h.app.PrintSetupLink(context.Background(), &out); err != nil || out.Len() != 0 {
			t.Fatalf("a setup link was printed although an admin exists: %q %v", out.String(), err)
		}
	})
}

func TestForwardAuthAcrossDialects(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dbURL string) {
		h := start(t, testConfig(dbURL))
		alice := h.addUser("alice", "Allow Login Users")
		h.addUser("bob")
		root := h.addUser("root", "Home Server Admins")

		const app = "https://app.example.com/photos/1?size=big&x=%2F"
		anon := func(name string, r req, want int) *http.Response {
			t.Helper()
			resp, body := h.do(r)
			if resp.StatusCode != want {
				t.Fatalf("%s: %d %q, want %d", name, resp.StatusCode, body, want)
			}
			return resp
		}
		resp := anon("anonymous browser", req{path: "/api/authz/forward-auth", header: traefik(app)}, http.StatusFound)
		wantLogin := "https://auth.example.com/login?rd=" + url.QueryEscape(app)
		if got := resp.Header.Get("Location"); got != wantLogin {
			t.Fatalf("login redirect = %q, want %q", got, wantLogin)
		}
		api := traefik(app)
		api.Set("Accept", "application/json")
		anon("anonymous API client", req{path: "/api/authz/forward-auth", header: api}, http.StatusUnauthorized)
		xhr := traefik(app)
		xhr.Set("X-Requested-With", "XMLHttpRequest")
		anon("anonymous XHR", req{path: "/api/authz/forward-auth", header: xhr}, http.StatusUnauthorized)
		post := traefik(app)
		post.Set("X-Forwarded-Method", "POST")
		anon("anonymous browser POST", req{path: "/api/authz/forward-auth", header: post}, http.StatusUnauthorized)
		nginx := http.Header{"X-Original-Url": {app}, "Accept": {"text/html"}}
		resp = anon("anonymous nginx", req{path: "/api/authz/auth-request", header: nginx}, http.StatusUnauthorized)
		if resp.Header.Get("Location") != wantLogin {
			t.Fatalf("nginx 401 carries Location %q, want %q", resp.Header.Get("Location"), wantLogin)
		}
		anon("anonymous public path", req{path: "/api/authz/forward-auth", header: traefik("https://immich.example.com/api/assets")}, http.StatusOK)
		anon("encoded escape from a public path", req{path: "/api/authz/forward-auth", header: traefik("https://immich.example.com/api/%2e%2e/admin")}, http.StatusBadRequest)
		anon("a public path read in upper case", req{path: "/api/authz/forward-auth", header: traefik("https://immich.example.com/API/assets")}, http.StatusFound)

		// Log in through the form, with the return URL from the redirect.
		resp, sess := h.login("alice", "correct horse alice", app)
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != app || sess == nil {
			t.Fatalf("login: %d to %q, cookie %v", resp.StatusCode, resp.Header.Get("Location"), sess)
		}
		with := []*http.Cookie{sess}
		resp, _ = h.do(req{path: "/api/authz/forward-auth", header: traefik(app), cookies: with})
		want := map[string]string{
			"Remote-User": "alice", "Remote-Groups": "Allow Login Users", "Remote-Email": "alice@example.com", "Remote-Name": "Alice",
			"X-Authentik-Username": "alice", "X-Authentik-Groups": "Allow Login Users", "X-Authentik-Email": "alice@example.com",
			"X-Authentik-Name": "Alice", "X-Authentik-Uid": alice.ID,
		}
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("logged-in member: %d", resp.StatusCode)
		}
		for k, v := range want {
			if got := resp.Header.Get(k); got != v {
				t.Errorf("header %s = %q, want %q", k, got, v)
			}
		}

		// The same session passes every dialect and alias.
		for _, r := range []req{
			{path: "/api/authz/auth-request", header: http.Header{"X-Original-Url": {app}}},
			{path: "/api/authz/auth-request", header: traefik(app)},
			{path: "/api/authz/ext-authz/photos/1?size=big", header: http.Header{"Host": {"app.example.com"}, "X-Forwarded-Proto": {"https"}}},
			{path: "/outpost.goauthentik.io/auth/traefik", header: traefik(app)},
			{path: "/outpost.goauthentik.io/auth/caddy", header: traefik(app)},
			{path: "/outpost.goauthentik.io/auth/nginx", header: http.Header{"X-Original-Url": {app}}},
			{path: "/outpost.goauthentik.io/auth/envoy/photos", header: http.Header{"Host": {"app.example.com"}}},
		} {
			r.cookies = with
			if resp, body := h.do(r); resp.StatusCode != http.StatusOK || resp.Header.Get("Remote-User") != "alice" {
				t.Errorf("%s: %d %q, user %q", r.path, resp.StatusCode, body, resp.Header.Get("Remote-User"))
			}
		}

		// Admin group members inherit the parent group and pass every rule.
		_, rootSess := h.login("root", "correct horse root", "")
		resp, _ = h.do(req{path: "/api/authz/forward-auth", header: traefik("https://grafana.example.com/"), cookies: []*http.Cookie{rootSess}})
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Remote-Groups") != "Allow Login Users,Home Server Admins" ||
			resp.Header.Get("X-Authentik-Groups") != "Allow Login Users|Home Server Admins" || resp.Header.Get("X-Authentik-Uid") != root.ID {
			t.Fatalf("admin: %d groups %q / %q", resp.StatusCode, resp.Header.Get("Remote-Groups"), resp.Header.Get("X-Authentik-Groups"))
		}

		// Logged in but not allowed: 403, in every dialect, and an audit event.
		if resp, _ := h.do(req{path: "/api/authz/forward-auth", header: traefik("https://grafana.example.com/"), cookies: with}); resp.StatusCode != http.StatusForbidden {
			t.Fatalf("alice on grafana: %d, want 403", resp.StatusCode)
		}
		_, bobSess := h.login("bob", "correct horse bob", "")
		if resp, _ := h.do(req{path: "/api/authz/auth-request", header: http.Header{"X-Original-Url": {app}}, cookies: []*http.Cookie{bobSess}}); resp.StatusCode != http.StatusForbidden {
			t.Fatalf("bob (no groups) via nginx: %d, want 403", resp.StatusCode)
		}
		if resp, _ := h.do(req{path: "/api/authz/forward-auth", header: traefik("https://other.example.org/"), cookies: with}); resp.StatusCode != http.StatusForbidden {
			t.Fatalf("host outside every rule: %d, want 403 (default deny)", resp.StatusCode)
		}
		waitFor(t, "access.denied audit events", func() bool {
			evs, _ := h.app.Store.ListEvents(context.Background(), 50)
			n := 0
			for _, e := range evs {
				if e.Kind == "access.denied" {
					n++
				}
			}
			return n == 3
		})

		// Logging out ends the session everywhere.
		csrfToken, csrf := h.formToken("/login")
		resp, _ = h.do(req{path: "/logout", form: url.Values{"csrf_token": {csrfToken}}, cookies: []*http.Cookie{csrf, sess}})
		if cleared := cookieNamed(resp, "gatehouse_session"); resp.StatusCode != http.StatusSeeOther || cleared == nil || cleared.MaxAge >= 0 {
			t.Fatalf("logout: %d, cookie %+v", resp.StatusCode, cleared)
		}
		if resp, _ := h.do(req{path: "/api/authz/forward-auth", header: traefik(app), cookies: with}); resp.StatusCode != http.StatusFound {
			t.Fatalf("after logout: %d, want 302 to login", resp.StatusCode)
		}
	})
}

func TestBadForwardedHeadersName(t *testing.T) {
	h := start(t, testConfig(backends[0].url(t)))
	tests := []struct {
		name   string
		path   string
		header http.Header
		want   string
	}{
		{"no headers at all", "/api/authz/forward-auth", nil, "X-Forwarded-Proto is missing"},
		{"no host", "/api/authz/forward-auth", http.Header{"X-Forwarded-Proto": {"https"}, "X-Forwarded-Uri": {"/"}}, "X-Forwarded-Host is missing"},
		{"no uri", "/api/authz/forward-auth", http.Header{"X-Forwarded-Proto": {"https"}, "X-Forwarded-Host": {"a.example.com"}}, "X-Forwarded-Uri is missing"},
		{"bad scheme", "/api/authz/forward-auth", http.Header{"X-Forwarded-Proto": {"gopher"}, "X-Forwarded-Host": {"a.example.com"}, "X-Forwarded-Uri": {"/"}}, "X-Forwarded-Proto"},
		{"bad host", "/api/authz/forward-auth", http.Header{"X-Forwarded-Proto": {"https"}, "X-Forwarded-Host": {"a b"}, "X-Forwarded-Uri": {"/"}}, "X-Forwarded-Host"},
		{"relative original URL", "/api/authz/auth-request", http.Header{"X-Original-Url": {"/just/a/path"}}, "X-Original-URL"},
		{"nginx without anything", "/api/authz/auth-request", nil, "X-Original-URL"},
		{"bad escape", "/api/authz/forward-auth", http.Header{"X-Forwarded-Proto": {"https"}, "X-Forwarded-Host": {"a.example.com"}, "X-Forwarded-Uri": {"/%zz"}}, "invalid %-escape"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := h.do(req{path: tc.path, header: tc.header})
			want := http.StatusBadRequest
			if tc.path == "/api/authz/auth-request" && !strings.Contains(body, "is missing") {
				want = http.StatusForbidden // nginx would turn a 400 into its own 500
			}
			if resp.StatusCode != want || !strings.Contains(body, tc.want) {
				t.Fatalf("%d %q, want %d naming %s", resp.StatusCode, body, want, tc.want)
			}
		})
	}
}

// waitFor polls cond until it holds, for at most 10 s (testenv.WaitFor).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testenv.WaitFor(t, 10*time.Second, what, cond)
}

// A setup link printed although users exist says why: the admins are in a group that
// access.admin_groups does not name.
func TestSetupLinkSaysWhyThereIsNoAdmin(t *testing.T) {
	h := start(t, testConfig(backends[0].url(t)))
	ctx := context.Background()
	if _, err := h.app.Directory().AddGroup(ctx, "test", "admins", ""); err != nil {
		t.Fatal(err)
	}
	h.addUser("root", "admins")
	var out bytes.Buffer
	if err := h.app.PrintSetupLink(ctx, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "/setup?token=") || !strings.Contains(out.String(), `none is an enabled member of access.admin_groups ["Home Server Admins"]`) ||
		!strings.Contains(out.String(), `"admins" (1)`) {
		t.Fatalf("setup link output:\n%s", out.String())
	}
}

// Authelia's legacy /api/verify answers as its callers expect: nginx (no rd) gets 401
// for an anonymous visit, Traefik and Caddy (?rd=) a redirect to sign in; a signed-in
// person passes either way.
func TestAutheliaVerifyEndpoint(t *testing.T) {
	h := start(t, testConfig(backends[0].url(t)))
	h.addUser("alice", "Allow Login Users")
	_, sess := h.login("alice", "correct horse alice", "")
	nginx := http.Header{"X-Original-Url": {"https://app.example.com/photos"}, "X-Original-Method": {"GET"}}
	if resp, _ := h.do(req{path: "/api/verify", header: nginx}); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("/api/verify from nginx, anonymous: %d, want 401", resp.StatusCode)
	}
	if resp, _ := h.do(req{path: "/api/verify?rd=https://auth.example.com/", header: traefik("https://app.example.com/photos")}); resp.StatusCode != http.StatusFound ||
		!strings.Contains(resp.Header.Get("Location"), "/login?rd=") {
		t.Fatalf("/api/verify?rd= anonymous: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if resp, _ := h.do(req{path: "/api/verify", header: nginx, cookies: []*http.Cookie{sess}}); resp.StatusCode != http.StatusOK || resp.Header.Get("Remote-User") != "alice" {
		t.Fatalf("/api/verify signed in: %d %q", resp.StatusCode, resp.Header.Get("Remote-User"))
	}
}

// Signing out leaves an audit event (and so a log line), like signing in.
func TestSignOutIsAudited(t *testing.T) {
	o := &oidcHarness{harness: start(t, testConfig(backends[0].url(t)))}
	o.addUser("alice", "Allow Login Users")
	_, sess := o.login("alice", "correct horse alice", "")
	o.logoutForm(sess)
	waitFor(t, "the sign-out's audit line", func() bool {
		return strings.Contains(o.logText(), `"kind":"logout","actor":"alice","target":"alice"`)
	})
}
