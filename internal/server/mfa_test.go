package server

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-id/gatehouse/internal/config"
	"github.com/gatehouse-id/gatehouse/internal/mfa"
)

// A user turns on an authenticator app from their page, gets recovery codes once, and
// from then on signs in with password and code; a code is never accepted twice; a
// recovery code works once.
func TestTOTPSecondFactor(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dbURL string) {
		h := start(t, testConfig(dbURL))
		h.addUser("alice", "Allow Login Users")
		_, sess := h.login("alice", "correct horse alice", "")

		_, page := h.do(req{path: "/account/totp", cookies: []*http.Cookie{sess}})
		secret := strings.ReplaceAll(regexp.MustCompile(`<code>([A-Z2-7 ]+)</code>`).FindStringSubmatch(page)[1], " ", "")
		enrol := regexp.MustCompile(`name="enrol" value="([^"]+)"`).FindStringSubmatch(page)[1]
		if !strings.Contains(page, `href="otpauth://totp/Gatehouse:alice?`) || !strings.Contains(page, `<svg xmlns="http://www.w3.org/2000/svg"`) {
			t.Fatalf("no otpauth link on the page:\n%s", page)
		}
		token, csrf := h.formToken("/login")
		now := mfa.Step(time.Now())
		code := func(step int64) string { c, _ := mfa.Code(secret, step); return c }

		resp, body := h.do(req{path: "/account/totp", cookies: []*http.Cookie{sess, csrf},
			form: url.Values{"csrf_token": {token}, "enrol": {enrol}, "code": {"000000"}}})
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "does not match") {
			t.Fatalf("enrolling with a wrong code: %d", resp.StatusCode)
		}
		resp, body = h.do(req{path: "/account/totp", cookies: []*http.Cookie{sess, csrf},
			form: url.Values{"csrf_token": {token}, "enrol": {enrol}, "code": {code(now)}}})
		recovery := regexp.MustCompile(`<code>([a-z2-9]{5}-[a-z2-9]{5})</code>`).FindAllStringSubmatch(body, -1)
		if resp.StatusCode != http.StatusOK || len(recovery) != mfa.RecoveryCodeCount {
			t.Fatalf("enrolment: %d, %d recovery codes shown", resp.StatusCode, len(recovery))
		}

		creds, err := h.app.Directory().Credentials(context.Background(), "alice")
		if err != nil || len(creds) != 3 || creds[1].Kind != "totp" || creds[2].Detail != "10 unused" {
			t.Fatalf("credentials after enrolment: %+v %v", creds, err)
		}

		// Password alone no longer signs in: the second-factor page does.
		pending := func() string {
			t.Helper()
			resp, body := h.do(req{path: "/login", cookies: []*http.Cookie{csrf},
				form: url.Values{"username": {"alice"}, "password": {"correct horse alice"}, "csrf_token": {token}}})
			if resp.StatusCode != http.StatusOK || cookieNamed(resp, "gatehouse_session") != nil || !strings.Contains(body, "authenticator app") {
				t.Fatalf("password step: %d, session cookie %v", resp.StatusCode, cookieNamed(resp, "gatehouse_session"))
			}
			return regexp.MustCompile(`name="pending" value="([^"]+)"`).FindStringSubmatch(body)[1]
		}
		second := func(p, c string) *http.Response {
			resp, _ := h.do(req{path: "/login/second-factor", cookies: []*http.Cookie{csrf},
				form: url.Values{"csrf_token": {token}, "pending": {p}, "code": {c}}})
			return resp
		}
		p := pending()
		if resp := second(p, code(now)); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("the enrolment code replayed at sign-in: %d, want 401", resp.StatusCode)
		}
		if resp := second(p+"x", code(now+1)); resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("an altered pending login: %d, want 400", resp.StatusCode)
		}
		resp = second(p, code(now+1))
		newSess := cookieNamed(resp, "gatehouse_session")
		if resp.StatusCode != http.StatusSeeOther || newSess == nil {
			t.Fatalf("a fresh code: %d", resp.StatusCode)
		}
		if resp, _ := h.do(req{path: "/api/authz/forward-auth", header: traefik("https://app.example.com/"), cookies: []*http.Cookie{newSess}}); resp.StatusCode != http.StatusOK {
			t.Fatalf("session from password + code: %d", resp.StatusCode)
		}
		if resp := second(pending(), code(now+1)); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("the same code twice: %d, want 401", resp.StatusCode)
		}

		rc := recovery[4][1]
		if resp := second(pending(), strings.ToUpper(rc)); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("a recovery code: %d", resp.StatusCode)
		}
		if resp := second(pending(), rc); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("a recovery code used twice: %d, want 401", resp.StatusCode)
		}
	})
}

// enrolTOTP turns on an authenticator app for the session's user and returns its secret.
func enrolTOTP(t *testing.T, h *harness, sess *http.Cookie) string {
	t.Helper()
	_, page := h.do(req{path: "/account/totp", cookies: []*http.Cookie{sess}})
	secret := strings.ReplaceAll(regexp.MustCompile(`<code>([A-Z2-7 ]+)</code>`).FindStringSubmatch(page)[1], " ", "")
	enrol := regexp.MustCompile(`name="enrol" value="([^"]+)"`).FindStringSubmatch(page)[1]
	token, csrf := h.formToken("/login")
	code, _ := mfa.Code(secret, mfa.Step(time.Now()))
	if resp, _ := h.do(req{path: "/account/totp", cookies: []*http.Cookie{sess, csrf},
		form: url.Values{"csrf_token": {token}, "enrol": {enrol}, "code": {code}}}); resp.StatusCode != http.StatusOK {
		t.Fatalf("enrolment: %d", resp.StatusCode)
	}
	return secret
}

// A rule with two_factor sends a one-factor session to step up, not to log in again;
// the code replaces the session with a two-factor one.
func TestStepUpForTwoFactorRules(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dbURL string) {
		cfg := testConfig(dbURL)
		cfg.Access.Rules = append([]config.Rule{{Hosts: []string{"vault.example.com"}, Groups: []string{"Allow Login Users"}, TwoFactor: true}}, cfg.Access.Rules...)
		h := start(t, cfg)
		h.addUser("alice", "Allow Login Users")
		h.addUser("bob", "Allow Login Users")
		_, one := h.login("alice", "correct horse alice", "")
		secret := enrolTOTP(t, h, one)
		vault := "https://vault.example.com/ui/"
		check := func(c *http.Cookie, target string) *http.Response {
			resp, _ := h.do(req{path: "/api/authz/forward-auth", header: traefik(target), cookies: []*http.Cookie{c}})
			return resp
		}
		resp := check(one, vault)
		if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "https://auth.example.com/login/step-up?rd="+url.QueryEscape(vault) {
			t.Fatalf("one factor on a two-factor rule: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
		}
		if check(one, "https://app.example.com/").StatusCode != http.StatusOK {
			t.Fatal("a one-factor session lost access where no second factor is asked")
		}
		resp, body := h.do(req{path: "/login/step-up?rd=" + url.QueryEscape(vault), cookies: []*http.Cookie{one}})
		pending := regexp.MustCompile(`name="pending" value="([^"]+)"`).FindStringSubmatch(body)
		if resp.StatusCode != http.StatusOK || pending == nil {
			t.Fatalf("step-up page: %d", resp.StatusCode)
		}
		token, csrf := h.formToken("/login")
		code, _ := mfa.Code(secret, mfa.Step(time.Now())+1)
		resp, _ = h.do(req{path: "/login/second-factor", cookies: []*http.Cookie{csrf, one},
			form: url.Values{"csrf_token": {token}, "pending": {pending[1]}, "code": {code}}})
		two := cookieNamed(resp, "gatehouse_session")
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != vault || two == nil {
			t.Fatalf("step-up: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
		}
		if check(two, vault).StatusCode != http.StatusOK {
			t.Fatal("the two-factor session does not pass the two-factor rule")
		}
		if check(one, "https://app.example.com/").StatusCode != http.StatusFound {
			t.Fatal("the one-factor session survived its step-up")
		}

		// Someone without a second factor is told how to get one.
		_, bob := h.login("bob", "correct horse bob", "")
		if resp, body := h.do(req{path: "/login/step-up?rd=" + url.QueryEscape(vault), cookies: []*http.Cookie{bob}}); resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "Add a passkey or an authenticator app") {
			t.Fatalf("step-up without a second factor: %d", resp.StatusCode)
		}
	})
}
