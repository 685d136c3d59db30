package server

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-id/gatehouse/internal/mfa"
)

// from makes a request look as if a trusted proxy forwarded it for addr.
func from(addr string) http.Header { return http.Header{"X-Forwarded-For": {addr}} }

// Guessing is throttled in the database: per address and account, per address (IPv6
// by /64), per account from everywhere — and a browser that signed in before keeps
// its own budget, so an attack on the account never locks its owner out. Two
// replicas on one database share the count.
func TestThrottleSharedByReplicasWithoutLockingOutTheOwner(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dbURL string) {
		one, two := start(t, testConfig(dbURL)), start(t, testConfig(dbURL))
		one.addUser("alice", "Allow Login Users")
		// The owner signs in once from her laptop: it keeps a device cookie.
		resp, _ := one.loginAs("alice", "correct horse alice", "", from("198.51.100.7"))
		laptop := cookieNamed(resp, "gatehouse_device")
		if resp.StatusCode != http.StatusSeeOther || laptop == nil || !laptop.HttpOnly {
			t.Fatalf("first sign-in: %d, device cookie %v", resp.StatusCode, laptop)
		}

		// Ten wrong guesses from one address, split between the replicas.
		for i := range 10 {
			h := []*harness{one, two}[i%2]
			if resp, _ := h.loginAs("alice", "wrong guess", "", from("203.0.113.9")); resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("guess %d: %d", i, resp.StatusCode)
			}
		}
		// signIn checks what the right password from addr gets on replica h.
		signIn := func(h *harness, addr string, want int, what string) {
			t.Helper()
			if resp, _ := h.loginAs("alice", "correct horse alice", "", from(addr)); resp.StatusCode != want {
				t.Fatalf("%s: %d, want %d", what, resp.StatusCode, want)
			}
		}
		signIn(one, "203.0.113.9", http.StatusTooManyRequests, "the right password after 10 failures from one address (on two replicas)")
		signIn(two, "203.0.113.10", http.StatusSeeOther, "the owner from another address")

		// An IPv6 attacker owns a whole /64: its addresses share one budget.
		for i := range 10 {
			one.loginAs("alice", "wrong guess", "", from(fmt.Sprintf("2001:db8:1:2::%x", i+1)))
		}
		signIn(one, "2001:db8:1:2:ffff::1", http.StatusTooManyRequests, "another address in the same /64")
		signIn(one, "2001:db8:1:3::1", http.StatusSeeOther, "the next /64")

		// A distributed attack: one guess each from many addresses. The account stops
		// taking guesses from new browsers…
		for i := range 50 {
			one.loginAs("alice", "wrong guess", "", from(fmt.Sprintf("192.0.2.%d", i+1)))
		}
		signIn(one, "192.0.2.200", http.StatusTooManyRequests, "a new browser during a distributed attack")
		// …but the owner's laptop has its own budget, and gets in at once.
		if resp, _ := two.loginAs("alice", "correct horse alice", "", from("192.0.2.201"), laptop); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("the owner's known browser during the attack: %d, want 303", resp.StatusCode)
		}
		// A device cookie of another account, or a forged one, is no way around it.
		forged := &http.Cookie{Name: "gatehouse_device", Value: strings.Replace(laptop.Value, ".", "x.", 1)}
		if resp, _ := one.loginAs("alice", "correct horse alice", "", from("192.0.2.202"), forged); resp.StatusCode != http.StatusTooManyRequests {
			t.Fatalf("a forged device cookie: %d, want 429", resp.StatusCode)
		}
		if rows := tableRows(t, one.app.Store)["throttle"]; rows == 0 {
			t.Fatal("the failures are not in the database")
		}
	})
}

// Only the proxies the operator named may say where a request came from: by default
// loopback, so a client on the LAN cannot give each guess another address.
func TestUntrustedForwardedForIsIgnored(t *testing.T) {
	cfg := testConfig(backends[0].url(t))
	cfg.Server.TrustedProxies = []string{"192.0.2.1"} // the proxy is elsewhere; the test client is not it
	h := start(t, cfg)
	h.addUser("alice", "Allow Login Users")
	for i := range 10 {
		h.loginAs("alice", "wrong guess", "", from(fmt.Sprintf("203.0.113.%d", i+1)))
	}
	if resp, _ := h.loginAs("alice", "correct horse alice", "", from("203.0.113.99")); resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("ten claimed addresses from one real one: %d, want 429", resp.StatusCode)
	}
	if def := testConfig("").Server.TrustedProxies; len(def) != 2 || def[0] != "127.0.0.0/8" || def[1] != "::1/128" {
		t.Fatalf("default trusted_proxies = %v, want loopback only", def)
	}
}

// A pending login (password right, code missing) dies after a few wrong codes, so
// thousands of guesses against one "password accepted" step are impossible.
func TestWrongCodesEndThePendingLogin(t *testing.T) {
	h := start(t, testConfig(backends[0].url(t)))
	h.addUser("alice", "Allow Login Users")
	_, sess := h.login("alice", "correct horse alice", "")
	secret := enrolTOTP(t, h, sess)
	u, _ := h.app.Store.UserByUsername(context.Background(), "alice")
	if stored, _, _ := h.app.Store.TOTP(context.Background(), u.ID); !strings.HasPrefix(stored, "sealed:v1:") || strings.Contains(stored, secret) {
		t.Fatalf("the authenticator secret is stored as %q, not sealed", stored)
	}
	token, csrf := h.formToken("/login")
	resp, body := h.do(req{path: "/login", cookies: []*http.Cookie{csrf}, header: from("203.0.113.5"),
		form: url.Values{"username": {"alice"}, "password": {"correct horse alice"}, "csrf_token": {token}}})
	pending := regexp.MustCompile(`name="pending" value="([^"]+)"`).FindStringSubmatch(body)
	if resp.StatusCode != http.StatusOK || pending == nil {
		t.Fatalf("password step: %d", resp.StatusCode)
	}
	code := func(c string) (*http.Response, string) {
		return h.do(req{path: "/login/second-factor", cookies: []*http.Cookie{csrf}, header: from("203.0.113.5"),
			form: url.Values{"csrf_token": {token}, "pending": {pending[1]}, "code": {c}}})
	}
	for i := range 5 {
		if resp, _ := code(fmt.Sprintf("%06d", i)); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("wrong code %d: %d", i, resp.StatusCode)
		}
	}
	right, _ := mfa.Code(secret, mfa.Step(time.Now()))
	if resp, body := code(right); resp.StatusCode != http.StatusTooManyRequests || !strings.Contains(body, "Sign in again") {
		t.Fatalf("the right code after 5 wrong ones: %d, want 429 asking to sign in again", resp.StatusCode)
	}
}

// Typing the current password on the account page is throttled per session.
func TestReauthenticationIsThrottled(t *testing.T) {
	h := start(t, testConfig(backends[0].url(t)))
	h.addUser("alice", "Allow Login Users")
	_, sess := h.login("alice", "correct horse alice", "")
	change := func(current string) string {
		token, csrf := h.formToken("/login")
		_, body := h.do(req{path: "/account/password", cookies: []*http.Cookie{sess, csrf},
			form: url.Values{"csrf_token": {token}, "current_password": {current}, "new_password": {"a new long password"}, "new_password_confirm": {"a new long password"}}})
		return body
	}
	for range 5 {
		if body := change("wrong"); !strings.Contains(body, "current password is wrong") {
			t.Fatalf("a wrong current password: %s", body)
		}
	}
	if body := change("correct horse alice"); !strings.Contains(body, "Too many wrong current passwords") {
		t.Fatalf("the right current password after 5 wrong ones was not throttled: %s", body)
	}
}

// Client secrets are throttled per address (never per client alone, which would let
// anyone stop an app's sign-ins); setup links per address.
func TestClientSecretsAndSetupLinksAreThrottled(t *testing.T) {
	o := startOIDC(t, backends[0].url(t))
	form := url.Values{"grant_type": {"client_credentials"}}
	for range 20 {
		if status, _ := o.form("/oauth2/token", "robot", "wrong-secret", form); status != http.StatusUnauthorized {
			t.Fatalf("a wrong client secret: %d", status)
		}
	}
	if status, body := o.form("/oauth2/token", "robot", robotSecret, form); status != http.StatusTooManyRequests || body["error"] != "invalid_client" {
		t.Fatalf("the right secret after 20 wrong ones: %d %v, want 429 invalid_client", status, body)
	}

	h := start(t, testConfig(backends[0].url(t)))
	for range 10 {
		if resp, _ := h.do(req{path: "/setup?token=" + strings.Repeat("x", 43)}); resp.StatusCode != http.StatusNotFound {
			t.Fatalf("a wrong setup link: %d", resp.StatusCode)
		}
	}
	if resp, _ := h.do(req{path: "/setup?token=" + strings.Repeat("y", 43)}); resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("the 11th setup link guess: %d, want 429", resp.StatusCode)
	}
}

// The first-admin setup link dies as soon as any admin exists, not only once used: an
// admin made with the CLI leaves the printed link worthless.
func TestSetupLinkDiesOnceAnAdminExists(t *testing.T) {
	h := start(t, testConfig(backends[0].url(t)))
	var out strings.Builder
	if err := h.app.PrintSetupLink(context.Background(), &out); err != nil {
		t.Fatal(err)
	}
	link := regexp.MustCompile(`(/setup\?token=[\w-]{43})`).FindString(out.String())
	if resp, _ := h.do(req{path: link}); link == "" || resp.StatusCode != http.StatusOK {
		t.Fatalf("the fresh setup link %q does not open", link)
	}
	h.addUser("root", "Home Server Admins") // as `gatehouse user add --group` would
	if resp, body := h.do(req{path: link}); resp.StatusCode != http.StatusNotFound || !strings.Contains(body, "an admin exists now") {
		t.Fatalf("the setup link after an admin was made elsewhere: %d, want 404", resp.StatusCode)
	}
}
