package server

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/gatehouse-id/gatehouse/internal/store"
)

// The account page: profile changes reach the identity headers at once, a password
// change asks for the current one and signs out the other sessions, removing the
// authenticator app asks for the password, and sessions can be signed out one by one.
func TestAccountPage(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dbURL string) {
		h := start(t, testConfig(dbURL))
		h.addUser("alice", "Allow Login Users")
		h.addUser("bob", "Allow Login Users")
		_, s1 := h.login("alice", "correct horse alice", "")
		_, s2 := h.login("alice", "correct horse alice", "")
		_, bobSess := h.login("bob", "correct horse bob", "")
		passes := func(c *http.Cookie) *http.Response {
			resp, _ := h.do(req{path: "/api/authz/forward-auth", header: traefik("https://app.example.com/"), cookies: []*http.Cookie{c}})
			return resp
		}
		token, csrf := h.formToken("/login")
		post := func(path string, c *http.Cookie, form url.Values) (int, string) {
			form.Set("csrf_token", token)
			resp, body := h.do(req{path: path, cookies: []*http.Cookie{csrf, c}, form: form})
			return resp.StatusCode, body
		}

		code, page := h.do(req{path: "/account", cookies: []*http.Cookie{s1}})
		if code.StatusCode != http.StatusOK || strings.Count(page, `name="session" value="`) != 2 || !strings.Contains(page, "This browser") {
			t.Fatalf("account page: %d\n%s", code.StatusCode, page)
		}

		// A new address typed by the person waits for confirmation: apps keep seeing the
		// confirmed one, so nobody can claim someone else's address (an admin's) to apps.
		h.addUser("root", "Home Server Admins")
		h.app.Directory().SetEmail(context.Background(), "cli", "root", "root@example.com")
		if c, body := post("/account/profile", s1, url.Values{"email": {"ROOT@example.com"}, "display_name": {"Alice L."}}); c != http.StatusOK || !strings.Contains(body, "used once it is confirmed") {
			t.Fatalf("profile: %d", c)
		}
		if resp := passes(s1); resp.Header.Get("Remote-Email") != "alice@example.com" || resp.Header.Get("X-Authentik-Email") != "alice@example.com" || resp.Header.Get("Remote-Name") != "Alice L." {
			t.Fatalf("headers after a self-service change: %q %q, want the confirmed address and the new name", resp.Header.Get("Remote-Email"), resp.Header.Get("Remote-Name"))
		}
		if err := h.app.Directory().SetEmail(context.Background(), "cli", "alice", "root@example.com"); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("an admin confirming another account's address: %v, want a conflict", err)
		}
		if err := h.app.Directory().SetEmail(context.Background(), "cli", "alice", "alice@new.example"); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the address an admin set to reach the headers (through the change feed)", func() bool {
			return passes(s1).Header.Get("Remote-Email") == "alice@new.example"
		})
		if c, body := post("/account/profile", s1, url.Values{"email": {"not an email"}}); c != http.StatusBadRequest || !strings.Contains(body, "not a plain email") {
			t.Fatalf("bad email: %d", c)
		}

		if c, body := post("/account/password", s1, url.Values{"current_password": {"wrong"}, "new_password": {"a brand new one"}, "new_password_confirm": {"a brand new one"}}); c != http.StatusBadRequest || !strings.Contains(body, "current password is wrong") {
			t.Fatalf("password change with a wrong current password: %d", c)
		}
		if c, _ := post("/account/password", s1, url.Values{"current_password": {"correct horse alice"}, "new_password": {"a brand new one"}, "new_password_confirm": {"a brand new one"}}); c != http.StatusOK {
			t.Fatalf("password change: %d", c)
		}
		if passes(s2).StatusCode != http.StatusFound || passes(s1).StatusCode != http.StatusOK {
			t.Fatal("a password change must sign out the other sessions and keep this one")
		}
		if resp, _ := h.login("alice", "a brand new one", ""); resp.StatusCode != http.StatusSeeOther {
			t.Fatal("the new password does not sign in")
		}

		enrolTOTP(t, h, s1)
		if c, _ := post("/account/totp/remove", s1, url.Values{"current_password": {"wrong"}}); c != http.StatusBadRequest {
			t.Fatalf("removing the app with a wrong password: %d", c)
		}
		if c, _ := post("/account/totp/remove", s1, url.Values{"current_password": {"a brand new one"}}); c != http.StatusOK {
			t.Fatalf("removing the app: %d", c)
		}
		if resp, _ := h.login("alice", "a brand new one", ""); resp.StatusCode != http.StatusSeeOther {
			t.Fatal("after removing the app the password alone does not sign in")
		}

		_, s3 := h.login("alice", "a brand new one", "")
		_, page = h.do(req{path: "/account", cookies: []*http.Cookie{s1}})
		ids := regexp.MustCompile(`name="session" value="([0-9a-f]{32})"`).FindAllStringSubmatch(page, -1)
		if len(ids) == 0 {
			t.Fatalf("no sessions to sign out:\n%s", page)
		}
		for _, id := range ids {
			post("/account/sessions/revoke", s1, url.Values{"session": {id[1]}})
		}
		if passes(s3).StatusCode != http.StatusFound || passes(s1).StatusCode != http.StatusOK {
			t.Fatal("signing out the other sessions one by one did not work")
		}
		bob, _ := h.app.Store.UserByUsername(context.Background(), "bob")
		bobSessions, _ := h.app.Store.ListSessions(context.Background(), bob.ID)
		for _, id := range []string{bobSessions[0].ID, "0123456789abcdef0123456789abcdef"} {
			if c, _ := post("/account/sessions/revoke", s1, url.Values{"session": {id}}); c != http.StatusBadRequest {
				t.Fatalf("revoking a session that is not yours or does not exist: %d", c)
			}
		}
		if passes(bobSess).StatusCode != http.StatusOK {
			t.Fatal("bob's session was touched")
		}
	})
}
