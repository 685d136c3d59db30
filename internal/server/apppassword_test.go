package server

import (
	"context"
	"encoding/base64"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/gatehouse-id/gatehouse/internal/config"
	"github.com/gatehouse-id/gatehouse/internal/identity"
)

// appPasswordConfig is the test config with a rule for CalDAV and WebDAV hosts that
// accepts app passwords, ahead of the catch-all that does not.
func appPasswordConfig(dbURL string) config.Config {
	cfg := testConfig(dbURL)
	cfg.Access.Rules = append([]config.Rule{{Hosts: []string{"dav.example.com", "cal.example.com"}, Groups: []string{"Allow Login Users"}, AllowAppPasswords: true}},
		cfg.Access.Rules...)
	return cfg
}

// checkWith asks forward auth (Traefik's dialect) about rawURL as a client that is
// not a browser, sending authorization as its Authorization header when not empty.
func (h *harness) checkWith(rawURL, authorization string) (*http.Response, string) {
	h.t.Helper()
	hdr := traefik(rawURL)
	hdr.Del("Accept")
	if authorization != "" {
		hdr.Set("Authorization", authorization)
	}
	return h.do(req{path: "/api/authz/forward-auth", header: hdr})
}

func basic(user, password string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+password))
}

// App passwords pass forward auth as Basic (with their owner's name) or Bearer, only on
// rules that opt in and only for the hosts they were made for; a client without one is
// asked for Basic credentials, a browser is still sent to the login page; a revoked one
// stops passing on another replica, and a cached one costs no query.
func TestAppPasswordsInForwardAuth(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dbURL string) {
		h, other := start(t, appPasswordConfig(dbURL)), start(t, appPasswordConfig(dbURL))
		h.addUser("alice", "Allow Login Users")
		h.addUser("bob", "Allow Login Users")
		h.addUser("root", "Home Server Admins")
		h.addUser("owner", "Home Server Admins") // so that root may be disabled
		ctx := context.Background()
		dir := h.app.Directory()
		secret, ap, err := dir.CreateAppPassword(ctx, "alice", "alice", "phone calendar", []string{"DAV.example.com"}, 0)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(secret, identity.AppPasswordPrefix) || ap.Hosts != "dav.example.com" {
			t.Fatalf("made %q for %q", secret, ap.Hosts)
		}
		caughtUp(t, h, other)

		resp, _ := h.checkWith("https://dav.example.com/remote.php/dav", basic("alice", secret))
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Remote-User") != "alice" {
			t.Fatalf("Basic alice: %d, Remote-User %q", resp.StatusCode, resp.Header.Get("Remote-User"))
		}
		if resp, _ := h.checkWith("https://dav.example.com/", basic("ALICE", secret)); resp.StatusCode != http.StatusOK {
			t.Fatalf("Basic with the username in other case: %d", resp.StatusCode)
		}
		if resp, _ := other.checkWith("https://dav.example.com/", "Bearer "+secret); resp.StatusCode != http.StatusOK || resp.Header.Get("Remote-User") != "alice" {
			t.Fatalf("Bearer on the other replica: %d", resp.StatusCode)
		}
		refused := []struct {
			what, url, authorization string
			status                   int
		}{
			{"another person's name", "https://dav.example.com/", basic("bob", secret), http.StatusUnauthorized},
			{"a host of the rule it was not made for", "https://cal.example.com/", basic("alice", secret), http.StatusForbidden},
			{"a rule without allow_app_passwords", "https://app.example.com/", basic("alice", secret), http.StatusUnauthorized},
			{"the secret with one letter changed", "https://dav.example.com/", basic("alice", secret[:len(secret)-1]+flip(secret[len(secret)-1])), http.StatusUnauthorized},
			{"the app's own Basic credentials", "https://dav.example.com/", basic("alice", "hunter2"), http.StatusUnauthorized},
			{"a session token as Bearer", "https://dav.example.com/", "Bearer " + strings.Repeat("a", 43), http.StatusUnauthorized},
			{"no credentials", "https://dav.example.com/", "", http.StatusUnauthorized},
		}
		for _, c := range refused {
			resp, body := h.checkWith(c.url, c.authorization)
			if resp.StatusCode != c.status || resp.Header.Get("Remote-User") != "" {
				t.Errorf("%s: %d (Remote-User %q) %s, want %d", c.what, resp.StatusCode, resp.Header.Get("Remote-User"), body, c.status)
			}
		}
		// Where the rule takes app passwords, a client is offered Basic; elsewhere not.
		if resp, _ := h.checkWith("https://dav.example.com/", ""); !strings.HasPrefix(resp.Header.Get("Www-Authenticate"), "Basic ") {
			t.Errorf("no Basic challenge on an app-password rule: %q", resp.Header.Values("Www-Authenticate"))
		}
		if resp, _ := h.checkWith("https://app.example.com/", ""); strings.Contains(strings.Join(resp.Header.Values("Www-Authenticate"), " "), "Basic") {
			t.Errorf("a Basic challenge on a rule without app passwords: %q", resp.Header.Values("Www-Authenticate"))
		}
		if resp, _ := h.do(req{path: "/api/authz/forward-auth", header: traefik("https://dav.example.com/")}); resp.StatusCode != http.StatusFound {
			t.Errorf("a browser on an app-password rule: %d, want 302 to the login page", resp.StatusCode)
		}

		// An admin's app password opens only rules that take app passwords.
		rootSecret, _, err := dir.CreateAppPassword(ctx, "root", "root", "script", []string{"*.example.com"}, 0)
		if err != nil {
			t.Fatal(err)
		}
		if resp, _ := h.checkWith("https://grafana.example.com/", basic("root", rootSecret)); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("an admin's app password on a rule without app passwords: %d, want 401", resp.StatusCode)
		}
		if resp, _ := h.checkWith("https://cal.example.com/", basic("root", rootSecret)); resp.StatusCode != http.StatusOK {
			t.Errorf("an admin's app password for *.example.com on cal: %d, want 200", resp.StatusCode)
		}

		// Cached: two hundred checks send no query.
		h.quiet()
		before := h.app.Store.QueryCount()
		for range 200 {
			if resp, _ := h.checkWith("https://dav.example.com/", basic("alice", secret)); resp.StatusCode != http.StatusOK {
				t.Fatalf("cached check: %d", resp.StatusCode)
			}
		}
		if n := h.app.Store.QueryCount() - before; n != 0 {
			t.Errorf("200 checks with a cached app password sent %d queries, want 0", n)
		}

		// Revoked on one replica: refused on the other as soon as it reads the feed.
		if _, err := other.app.Directory().RevokeAppPassword(ctx, "alice", "alice", "phone calendar"); err != nil {
			t.Fatal(err)
		}
		if resp, _ := other.checkWith("https://dav.example.com/", basic("alice", secret)); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("revoked, on the replica that revoked it: %d", resp.StatusCode)
		}
		caughtUpWith(t, h)
		if resp, _ := h.checkWith("https://dav.example.com/", basic("alice", secret)); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("revoked, on the replica that had it cached: %d, want 401", resp.StatusCode)
		}
		// A disabled owner's app passwords stop passing too.
		if err := dir.SetDisabled(ctx, "test", "root", true); err != nil {
			t.Fatal(err)
		}
		caughtUpWith(t, h)
		if resp, _ := h.checkWith("https://cal.example.com/", basic("root", rootSecret)); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("a disabled owner's app password: %d, want 401", resp.StatusCode)
		}
	})
}

// caughtUpWith applies, on a replica whose background work was stopped, every change
// written so far, as its feed poll would.
func caughtUpWith(t *testing.T, h *harness) {
	t.Helper()
	h.app.Sessions.PollChanges(context.Background())
}

func flip(c byte) string {
	if c == 'a' {
		return "b"
	}
	return "a"
}

// Wrong app passwords are throttled per network, like passwords; a right one from the
// same network still passes, so a phone retrying a revoked password locks nobody out.
func TestWrongAppPasswordsThrottled(t *testing.T) {
	h := start(t, appPasswordConfig("sqlite:"+t.TempDir()+"/g.db"))
	h.addUser("alice", "Allow Login Users")
	secret, _, err := h.app.Directory().CreateAppPassword(context.Background(), "alice", "alice", "phone", []string{"dav.example.com"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	wrong := identity.AppPasswordPrefix + strings.Repeat("a", 32)
	var resp *http.Response
	for i := range 100 {
		if resp, _ = h.checkWith("https://dav.example.com/", basic("alice", wrong)); resp.StatusCode == http.StatusTooManyRequests {
			if i < 20 {
				t.Fatalf("throttled after %d wrong app passwords", i)
			}
			break
		}
	}
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("100 wrong app passwords: last answer %d, Retry-After %q; want 429 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if resp, _ := h.checkWith("https://dav.example.com/", basic("alice", secret)); resp.StatusCode != http.StatusOK {
		t.Fatalf("the right app password from the throttled network: %d", resp.StatusCode)
	}
}

// A person makes an app password on the account page (the section shows only when a
// rule takes them), sees it once, uses it, and revokes it there; a bad host or a name
// in use is a message on the page, and nothing is made.
func TestAppPasswordsOnTheAccountPage(t *testing.T) {
	h := start(t, appPasswordConfig("sqlite:"+t.TempDir()+"/g.db"))
	h.addUser("alice", "Allow Login Users")
	_, sess := h.login("alice", "correct horse alice", "")
	resp, page := h.do(req{path: "/account", cookies: []*http.Cookie{sess}})
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, "App passwords") || !strings.Contains(page, "<code>dav.example.com</code>") {
		t.Fatalf("account page without its app password section: %d", resp.StatusCode)
	}
	status, shown := h.post("/account/app-passwords", sess, url.Values{"name": {"phone calendar"}, "hosts": {"dav.example.com"}})
	secret := regexp.MustCompile(identity.AppPasswordPrefix + `[a-z2-7]{32}`).FindString(shown)
	if status != http.StatusOK || secret == "" || !strings.Contains(shown, "shown only now") {
		t.Fatalf("making an app password: %d\n%s", status, shown)
	}
	if resp, _ := h.checkWith("https://dav.example.com/", basic("alice", secret)); resp.StatusCode != http.StatusOK {
		t.Fatalf("the app password from the account page: %d", resp.StatusCode)
	}
	for what, form := range map[string]url.Values{
		"a name in use": {"name": {"phone calendar"}, "hosts": {"dav.example.com"}},
		"a URL as host": {"name": {"laptop"}, "hosts": {"https://dav.example.com/"}},
		"no host":       {"name": {"laptop"}, "hosts": {" "}},
	} {
		if status, body := h.post("/account/app-passwords", sess, form); status != http.StatusBadRequest || !strings.Contains(body, "nothing was made") && !strings.Contains(body, "already have") {
			t.Errorf("%s: %d", what, status)
		}
	}
	list, _ := h.app.Directory().AppPasswords(context.Background(), "alice")
	if len(list) != 1 {
		t.Fatalf("alice has %d app passwords after the refusals, want 1", len(list))
	}
	_, page = h.do(req{path: "/account", cookies: []*http.Cookie{sess}})
	if strings.Contains(page, secret) || !strings.Contains(page, "phone calendar") {
		t.Fatal("the account page shows the secret again, or not the app password's name")
	}
	if status, body := h.post("/account/app-passwords/revoke", sess, url.Values{"id": {list[0].ID}}); status != http.StatusOK || !strings.Contains(body, "revoked") {
		t.Fatalf("revoking: %d", status)
	}
	if resp, _ := h.checkWith("https://dav.example.com/", basic("alice", secret)); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("a revoked app password, on the replica that revoked it: %d", resp.StatusCode)
	}
}
