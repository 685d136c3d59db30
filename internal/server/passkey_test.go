package server

import (
	"context"
	"database/sql"
	"errors"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/gatehouse-id/gatehouse/internal/config"
	"github.com/gatehouse-id/gatehouse/internal/identity"
	"github.com/gatehouse-id/gatehouse/internal/store"
)

// Passkeys: a user adds one from their page, then signs in with it alone (no username,
// no password) and counts as two factors; an answer is accepted once; a key that is
// not registered, a tampered signature or a disabled account are refused; with a
// password, a passkey is the second step; keys can be renamed and removed, never the
// last way in.
func TestPasskeys(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dbURL string) {
		cfg := testConfig(dbURL)
		cfg.Access.Rules = append([]config.Rule{{Hosts: []string{"vault.example.com"}, Groups: []string{"Allow Login Users"}, TwoFactor: true}}, cfg.Access.Rules...)
		h := start(t, cfg)
		ctx := context.Background()
		h.addUser("alice", "Allow Login Users")
		h.addUser("bob", "Allow Login Users")
		_, sess := h.login("alice", "correct horse alice", "")
		key := newSoftKey(t, cfg.Server.PublicURL)

		if resp, body := h.addPasskey(key, sess, "Laptop"); resp.StatusCode != http.StatusOK || !strings.Contains(body, "Passkey &#34;Laptop&#34; added") {
			t.Fatalf("adding a passkey: %d\n%s", resp.StatusCode, body)
		}
		if resp, body := h.addPasskey(key, sess, "Laptop again"); resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "registered already") {
			t.Fatalf("adding the same passkey twice: %d", resp.StatusCode)
		}
		if resp, body := h.addPasskey(newSoftKey(t, cfg.Server.PublicURL), sess, ""); resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "Give the passkey a name") {
			t.Fatalf("a passkey without a name: %d", resp.StatusCode)
		}
		creds, err := h.app.Directory().Credentials(ctx, "alice")
		if err != nil || len(creds) != 2 || creds[1].Kind != "passkey" || !strings.Contains(creds[1].Detail, `"Laptop"`) {
			t.Fatalf("credentials: %+v %v", creds, err)
		}

		// Passwordless, straight from the login page, back to the app.
		vault := "https://vault.example.com/ui/"
		_, loginPage := h.do(req{path: "/login?rd=" + url.QueryEscape(vault)})
		if !strings.Contains(loginPage, `autocomplete="username webauthn"`) || !strings.Contains(loginPage, "data-conditional") {
			t.Fatal("the login page does not offer passkeys in autofill")
		}
		cred, state := key.assert(t, loginPage)
		form := url.Values{"passkey_state": {state}, "credential": {cred}, "rd": {vault}}
		resp, _ := h.passkeyPost(form)
		passkeySess := cookieNamed(resp, "gatehouse_session")
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != vault || passkeySess == nil {
			t.Fatalf("passkey sign-in: %d → %q", resp.StatusCode, resp.Header.Get("Location"))
		}
		check, _ := h.do(req{path: "/api/authz/forward-auth", header: traefik(vault), cookies: []*http.Cookie{passkeySess}})
		if check.StatusCode != http.StatusOK || check.Header.Get("Remote-User") != "alice" {
			t.Fatalf("a passkey session on a two-factor rule: %d %q", check.StatusCode, check.Header.Get("Remote-User"))
		}

		// The same answer again is a replay.
		if resp, body := h.passkeyPost(form); resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "used already") || cookieNamed(resp, "gatehouse_session") != nil {
			t.Fatalf("a replayed passkey answer: %d", resp.StatusCode)
		}
		// A tampered signature, a key never registered here.
		cred, state = key.assert(t, loginPage)
		tampered := strings.Replace(cred, `"signature":"M`, `"signature":"N`, 1)
		if resp, _ := h.passkeyPost(url.Values{"passkey_state": {state}, "credential": {tampered}}); resp.StatusCode != http.StatusUnauthorized || cookieNamed(resp, "gatehouse_session") != nil {
			t.Fatalf("a tampered signature: %d", resp.StatusCode)
		}
		stranger := newSoftKey(t, cfg.Server.PublicURL)
		stranger.user = key.user
		cred, state = stranger.assert(t, loginPage)
		if resp, body := h.passkeyPost(url.Values{"passkey_state": {state}, "credential": {cred}}); resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "not registered here") {
			t.Fatalf("an unknown passkey: %d", resp.StatusCode)
		}
		if resp, body := h.passkeyPost(url.Values{"passkey_state": {"forged"}, "credential": {cred}}); resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "expired") {
			t.Fatalf("a forged state: %d", resp.StatusCode)
		}
		if resp, body := h.passkeyPost(url.Values{"passkey_state": {state}, "credential": {"{not json"}}); resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "cannot read") {
			t.Fatalf("an unreadable answer: %d", resp.StatusCode)
		}

		// With a password, the passkey is the second step; only alice's passkey will do.
		passwordStep := func() (page, pending string) {
			t.Helper()
			tok, csrf := h.formToken("/login")
			resp, body := h.do(req{path: "/login", cookies: []*http.Cookie{csrf},
				form: url.Values{"username": {"alice"}, "password": {"correct horse alice"}, "csrf_token": {tok}}})
			if resp.StatusCode != http.StatusOK || cookieNamed(resp, "gatehouse_session") != nil || !strings.Contains(body, "Use a passkey") {
				t.Fatalf("password step with a passkey enrolled: %d", resp.StatusCode)
			}
			return body, regexp.MustCompile(`name="pending" value="([^"]+)"`).FindStringSubmatch(body)[1]
		}
		body, pending := passwordStep()
		_, bobSess := h.login("bob", "correct horse bob", "")
		bobKey := newSoftKey(t, cfg.Server.PublicURL)
		h.addPasskey(bobKey, bobSess, "Bob's key")
		cred, state = bobKey.assert(t, body)
		if resp, body := h.passkeyPost(url.Values{"passkey_state": {state}, "credential": {cred}, "pending": {pending}}); resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "belongs to another account") {
			t.Fatalf("bob's passkey for alice's sign-in: %d", resp.StatusCode)
		}
		body, pending = passwordStep()
		cred, state = key.assert(t, body)
		if resp, _ := h.passkeyPost(url.Values{"passkey_state": {state}, "credential": {cred}, "pending": {pending}}); resp.StatusCode != http.StatusSeeOther || cookieNamed(resp, "gatehouse_session") == nil {
			t.Fatalf("password then passkey: %d", resp.StatusCode)
		}

		// Rename; nobody renames another's key.
		_, page := h.do(req{path: "/account", cookies: []*http.Cookie{sess}})
		id := regexp.MustCompile(`name="id" value="([0-9a-f]{32})"`).FindStringSubmatch(page)[1]
		post := h.post
		if code, body := post("/account/passkeys/rename", sess, url.Values{"id": {id}, "name": {"Work laptop"}}); code != http.StatusOK || !strings.Contains(body, "<strong>Work laptop</strong>") {
			t.Fatalf("rename: %d", code)
		}
		if code, body := post("/account/passkeys/rename", bobSess, url.Values{"id": {id}, "name": {"Mine"}}); code != http.StatusBadRequest || !strings.Contains(body, "no longer exists") {
			t.Fatalf("bob renaming alice's passkey: %d", code)
		}
		if code, _ := post("/account/passkeys/remove", bobSess, url.Values{"id": {id}}); code != http.StatusBadRequest {
			t.Fatalf("bob removing alice's passkey: %d", code)
		}

		// Without her password, the passkey is alice's only way in: it stays.
		if err := h.app.Directory().RemoveCredential(ctx, "test", "alice", identity.CredentialPassword, false); err != nil {
			t.Fatalf("removing the password while a passkey exists: %v", err)
		}
		if code, body := post("/account/passkeys/remove", sess, url.Values{"id": {id}}); code != http.StatusBadRequest || !strings.Contains(body, "only way you can sign in") {
			t.Fatalf("removing the last passkey: %d", code)
		}
		err = h.app.Directory().RemoveCredential(ctx, "cli", "alice", id, true)
		if !errors.Is(err, identity.ErrLastCredential) {
			t.Fatalf("the CLI removing the last passkey: %v", err)
		}

		// A disabled account cannot use its passkey.
		if err := h.app.Directory().SetDisabled(ctx, "test", "bob", true); err != nil {
			t.Fatal(err)
		}
		cred, state = bobKey.assert(t, loginPage)
		if resp, body := h.passkeyPost(url.Values{"passkey_state": {state}, "credential": {cred}}); resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "disabled") {
			t.Fatalf("a disabled user's passkey: %d", resp.StatusCode)
		}
		// Bob's key removed by an admin: gone, and his sessions with it.
		if err := h.app.Directory().SetDisabled(ctx, "test", "bob", false); err != nil {
			t.Fatal(err)
		}
		bobCreds, _ := h.app.Directory().Credentials(ctx, "bob")
		if err := h.app.Directory().RemoveCredential(ctx, "cli", "bob", bobCreds[1].ID, true); err != nil {
			t.Fatalf("the CLI removing bob's passkey: %v", err)
		}
		if list, _ := h.app.Store.Passkeys(ctx, bobCreds[1].ID); len(list) != 0 {
			t.Fatal("the passkey is still there")
		}
		cred, state = bobKey.assert(t, loginPage)
		if resp, _ := h.passkeyPost(url.Values{"passkey_state": {state}, "credential": {cred}}); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("a removed passkey: %d", resp.StatusCode)
		}
	})
}

// Removing a credential or making new recovery codes needs a sign-in within the last
// five minutes, or the current password typed again.
func TestRecentAuthentication(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dbURL string) {
		cfg := testConfig(dbURL)
		h := start(t, cfg)
		h.addUser("root", "Home Server Admins")
		_, sess := h.login("root", "correct horse root", "")
		enrolTOTP(t, h, sess)
		key := newSoftKey(t, cfg.Server.PublicURL)
		h.addPasskey(key, sess, "Key A")
		h.addPasskey(newSoftKey(t, cfg.Server.PublicURL), sess, "Key B")
		post := func(path string, form url.Values) (int, string) { return h.post(path, sess, form) }
		codes := regexp.MustCompile(`<code>([a-z2-9]{5}-[a-z2-9]{5})</code>`)
		code, body := post("/account/recovery-codes", url.Values{})
		if code != http.StatusOK || len(codes.FindAllString(body, -1)) != 10 {
			t.Fatalf("new recovery codes right after signing in: %d", code)
		}

		// Make the sign-in six minutes old.
		db := h.app.Store.(interface{ DB() *sql.DB }).DB()
		if _, err := db.Exec("UPDATE sessions SET created_at = created_at - 360000000"); err != nil {
			t.Fatal(err)
		}
		h.app.Sessions.Apply(store.Change{Kind: store.ChangeAll})

		_, page := h.do(req{path: "/account", cookies: []*http.Cookie{sess}})
		id := regexp.MustCompile(`name="id" value="([0-9a-f]{32})"`).FindStringSubmatch(page)[1]
		if !strings.Contains(page, `placeholder="Current password"`) {
			t.Fatal("the account page does not ask for the password on an old sign-in")
		}
		for _, path := range []string{"/account/passkeys/remove", "/account/totp/remove", "/account/recovery-codes"} {
			if code, body := post(path, url.Values{"id": {id}}); code != http.StatusBadRequest || !strings.Contains(body, "Confirm with your current password") {
				t.Fatalf("%s on an old sign-in without the password: %d", path, code)
			}
			if code, body := post(path, url.Values{"id": {id}, "current_password": {"wrong"}}); code != http.StatusBadRequest || !strings.Contains(body, "current password is wrong") {
				t.Fatalf("%s with a wrong password: %d", path, code)
			}
		}
		if code, body := post("/account/passkeys/remove", url.Values{"id": {id}, "current_password": {"correct horse root"}}); code != http.StatusOK || strings.Contains(body, "Key A") {
			t.Fatalf("removing a passkey with the password: %d", code)
		}
		if creds, _ := h.app.Directory().Credentials(context.Background(), "root"); len(creds) != 4 {
			t.Fatalf("credentials left: %+v", creds) // password, Key B, totp, recovery codes
		}

		// Adding a credential needs it too: a borrowed session cannot plant its own key
		// or authenticator app.
		_, page = h.do(req{path: "/account", cookies: []*http.Cookie{sess}})
		cred, state := newSoftKey(t, cfg.Server.PublicURL).register(t, page)
		add := url.Values{"passkey_state": {state}, "credential": {cred}, "name": {"Planted"}}
		if code, body := post("/account/passkeys", add); code != http.StatusBadRequest || !strings.Contains(body, "Confirm with your current password") {
			t.Fatalf("adding a passkey on an old sign-in without the password: %d", code)
		}
		add.Set("current_password", "correct horse root")
		if code, body := post("/account/passkeys", add); code != http.StatusOK || !strings.Contains(body, "Planted") {
			t.Fatalf("adding a passkey with the password: %d", code)
		}
		_, page = h.do(req{path: "/account/totp", cookies: []*http.Cookie{sess}})
		enrol := regexp.MustCompile(`name="enrol" value="([^"]+)"`).FindStringSubmatch(page)[1]
		if !strings.Contains(page, `id="totp_password"`) {
			t.Fatal("the app set-up page does not ask for the password on an old sign-in")
		}
		if code, body := post("/account/totp", url.Values{"enrol": {enrol}, "code": {"123456"}}); code != http.StatusBadRequest || !strings.Contains(body, "Confirm with your current password") {
			t.Fatalf("replacing the app on an old sign-in without the password: %d", code)
		}
	})
}
