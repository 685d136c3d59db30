package server

import (
	"context"
	"database/sql"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/gatehouse-id/gatehouse/internal/identity"
	"github.com/gatehouse-id/gatehouse/internal/store"
)

// postForm sends a form from the page at from (for its CSRF token) as the person
// signed in with session.
func (h *harness) postForm(session *http.Cookie, from, action string, form url.Values) (*http.Response, string) {
	h.t.Helper()
	resp, body := h.do(req{path: from, cookies: []*http.Cookie{session}})
	m := csrfField.FindStringSubmatch(body)
	if m == nil {
		h.t.Fatalf("GET %s (%d): no form:\n%s", from, resp.StatusCode, body)
	}
	form.Set("csrf_token", m[1])
	return h.do(req{path: action, form: form, cookies: []*http.Cookie{session, cookieNamed(resp, "gatehouse_csrf")}})
}

var signInLink = regexp.MustCompile(`value="(https://auth\.example\.com/signin-link\?token=[A-Za-z0-9_-]{43})"`)

// An admin runs the people from the admin pages, through the same services as the CLI:
// a person without a password gets a one-time sign-in link, uses it once to set a
// password, and is then revoked, refused deletion without their name typed, and
// deleted. Dangerous changes need a sign-in within five minutes or the admin's
// password; the last admin cannot be disabled; every change is in the audit log.
func TestAdminChanges(t *testing.T) {
	h := start(t, testConfig(backends[0].url(t)))
	root := h.addUser("root", "Home Server Admins")
	_, admin := h.login("root", "correct horse root", "")
	ctx := context.Background()

	resp, body := h.postForm(admin, "/admin/users", "/admin/users", url.Values{"username": {"nora"}, "display_name": {"Nora"}, "group": {"Allow Login Users"}})
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "Created nora. They have no password") {
		t.Fatalf("creating nora: %d\n%s", resp.StatusCode, body)
	}
	if resp, body := h.postForm(admin, "/admin/users", "/admin/users", url.Values{"username": {"no ra"}}); resp.StatusCode != http.StatusBadRequest ||
		!strings.Contains(body, `Username &#34;no ra&#34; contains &#39; &#39;`) || !strings.Contains(body, `value="no ra"`) {
		t.Fatalf("a bad username: %d\n%s", resp.StatusCode, body)
	}
	if resp, body := h.postForm(admin, "/admin/users", "/admin/users", url.Values{"username": {"NORA"}}); resp.StatusCode != http.StatusConflict {
		t.Fatalf("a taken username: %d\n%s", resp.StatusCode, body)
	}

	// The sign-in link: shown once, opened by a GET that spends nothing, used by a POST.
	resp, body = h.postForm(admin, "/admin/users/nora", "/admin/users/nora/signin-link", url.Values{})
	m := signInLink.FindStringSubmatch(body)
	if resp.StatusCode != http.StatusOK || m == nil {
		t.Fatalf("making a sign-in link: %d\n%s", resp.StatusCode, body)
	}
	link, _ := url.Parse(m[1])
	for range 2 { // a link preview, then the person
		if resp, body := h.do(req{path: link.RequestURI()}); resp.StatusCode != http.StatusOK || !strings.Contains(body, "Sign in as nora") {
			t.Fatalf("opening the link: %d\n%s", resp.StatusCode, body)
		}
	}
	use := func() *http.Response {
		resp, body := h.do(req{path: link.RequestURI()})
		tok := csrfField.FindStringSubmatch(body)
		if tok == nil {
			return resp
		}
		resp, _ = h.do(req{path: "/signin-link", cookies: []*http.Cookie{cookieNamed(resp, "gatehouse_csrf")},
			form: url.Values{"csrf_token": {tok[1]}, "token": {link.Query().Get("token")}}})
		return resp
	}
	resp = use()
	nora := cookieNamed(resp, "gatehouse_session")
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/account?welcome=1" || nora == nil {
		t.Fatalf("using the link: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if again := use(); again.StatusCode != http.StatusNotFound {
		t.Fatalf("the link a second time: %d", again.StatusCode)
	}
	if resp, body := h.do(req{path: "/account?welcome=1", cookies: []*http.Cookie{nora}}); resp.StatusCode != http.StatusOK || !strings.Contains(body, "Set a password or add a passkey") {
		t.Fatalf("nora's account page: %d\n%s", resp.StatusCode, body)
	}
	if resp, body := h.postForm(nora, "/account", "/account/password", url.Values{"new_password": {"nora's own password"}, "new_password_confirm": {"nora's own password"}}); resp.StatusCode != http.StatusOK {
		t.Fatalf("nora setting a password: %d\n%s", resp.StatusCode, body)
	}
	if resp, s := h.login("nora", "nora's own password", ""); resp.StatusCode != http.StatusSeeOther || s == nil {
		t.Fatalf("nora signing in with her new password: %d", resp.StatusCode)
	}

	// The admin's view: her credentials, sessions, and the events.
	resp, body = h.do(req{path: "/admin/users/nora", cookies: []*http.Cookie{admin}})
	if !strings.Contains(body, `name="id" value="password"`) || strings.Count(body, "/admin/users/nora/sessions/revoke") < 2 {
		t.Fatalf("nora's admin page lacks her password or sessions:\n%s", body)
	}
	if resp, body := h.postForm(admin, "/admin/users/nora", "/admin/users/nora/sessions/revoke", url.Values{"id": {"all"}}); resp.StatusCode != http.StatusOK || !strings.Contains(body, "Ended all 2 of nora") {
		t.Fatalf("ending nora's sessions: %d\n%s", resp.StatusCode, body)
	}
	if resp, _ := h.do(req{path: "/account", cookies: []*http.Cookie{nora}}); resp.StatusCode != http.StatusFound {
		t.Fatalf("nora's ended session still opens her account: %d", resp.StatusCode)
	}
	if resp, body := h.postForm(admin, "/admin/users/nora", "/admin/users/nora/credentials/remove", url.Values{"id": {"password"}}); resp.StatusCode != http.StatusConflict || !strings.Contains(body, "last way this user can sign in") {
		t.Fatalf("removing nora's last credential: %d\n%s", resp.StatusCode, body)
	}
	if resp, body := h.postForm(admin, "/admin/users/nora", "/admin/users/nora/groups/add", url.Values{"group": {"Home Server Admins"}}); resp.StatusCode != http.StatusOK || !strings.Contains(body, "Added nora to Home Server Admins") {
		t.Fatalf("adding nora to the admins: %d\n%s", resp.StatusCode, body)
	}
	if resp, body := h.postForm(admin, "/admin/users/nora", "/admin/users/nora/groups/remove", url.Values{"group": {"Home Server Admins"}}); resp.StatusCode != http.StatusOK {
		t.Fatalf("removing nora from the admins: %d\n%s", resp.StatusCode, body)
	}
	if resp, body := h.postForm(admin, "/admin/users/root", "/admin/users/root/disable", url.Values{}); resp.StatusCode != http.StatusConflict || !strings.Contains(body, "no enabled admin") {
		t.Fatalf("disabling the last admin: %d\n%s", resp.StatusCode, body)
	}
	if resp, body := h.postForm(admin, "/admin/users/nora", "/admin/users/nora/delete", url.Values{"confirm": {"Nora"}}); resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "type their username exactly") {
		t.Fatalf("deleting without the exact name: %d\n%s", resp.StatusCode, body)
	}

	// Five minutes later, a dangerous change takes the admin's password.
	if _, err := h.app.Store.(interface{ DB() *sql.DB }).DB().Exec("UPDATE sessions SET created_at = created_at - 600000000 WHERE user_id = $1", root.ID); err != nil {
		t.Fatal(err)
	}
	h.app.Sessions.Apply(store.Change{Kind: store.ChangeUser, Subject: root.ID})
	if resp, body := h.postForm(admin, "/admin/users/nora", "/admin/users/nora/delete", url.Values{"confirm": {"nora"}}); resp.StatusCode != http.StatusBadRequest ||
		!strings.Contains(body, "Confirm with your current password") || !strings.Contains(body, `name="current_password"`) {
		t.Fatalf("deleting with an old sign-in: %d\n%s", resp.StatusCode, body)
	}
	if _, err := h.app.Directory().AddGroup(ctx, "test", "Ops", "Home Server Admins"); err != nil {
		t.Fatal(err)
	}
	if resp, body := h.postForm(admin, "/admin/users/nora", "/admin/users/nora/groups/add", url.Values{"group": {"Ops"}}); resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "Confirm with your current password") {
		t.Fatalf("adding nora to a group below the admins with an old sign-in: %d\n%s", resp.StatusCode, body)
	}
	if resp, body := h.postForm(admin, "/admin/users", "/admin/users", url.Values{"username": {"otto"}, "group": {"Ops"}}); resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "Putting someone in Ops, whose members are admins") {
		t.Fatalf("creating an admin with an old sign-in: %d\n%s", resp.StatusCode, body)
	}
	if resp, body := h.postForm(admin, "/admin/users/nora", "/admin/users/nora/profile", url.Values{"display_name": {"Nora B."}, "email": {"nora@example.com"}}); resp.StatusCode != http.StatusOK || !strings.Contains(body, "Saved the profile") {
		t.Fatalf("a profile change needs no recent sign-in: %d\n%s", resp.StatusCode, body)
	}
	if resp, body := h.postForm(admin, "/admin/users/nora", "/admin/users/nora/delete", url.Values{"confirm": {"nora"}, "current_password": {"correct horse root"}}); resp.StatusCode != http.StatusOK || !strings.Contains(body, "Deleted nora") {
		t.Fatalf("deleting with the password: %d\n%s", resp.StatusCode, body)
	}
	if _, err := h.app.Store.UserByUsername(ctx, "nora"); err == nil {
		t.Fatal("nora is still there")
	}

	// A page that is not an admin's cannot post; nor can a form from elsewhere.
	h.addUser("fay", "Allow Login Users")
	_, fay := h.login("fay", "correct horse fay", "")
	if resp, _ := h.postForm(fay, "/account", "/admin/users", url.Values{"username": {"mallory"}}); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("a person who is no admin creating someone: %d", resp.StatusCode)
	}
	if resp, _ := h.do(req{path: "/admin/users", cookies: []*http.Cookie{admin}, form: url.Values{"username": {"mallory"}}}); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("a form without its CSRF token: %d", resp.StatusCode)
	}
	if _, err := h.app.Store.UserByUsername(ctx, "mallory"); err == nil {
		t.Fatal("mallory was created")
	}

	for _, kind := range []string{"user.created", "user.signin_link_created", "user.signin_link_used", "login.new_device", "session.revoked", "group.member_added", "user.deleted"} {
		waitFor(t, kind+" in the audit log", func() bool {
			ev, err := h.app.Store.FindEvents(ctx, store.EventQuery{Kind: kind, Limit: 1})
			return err == nil && len(ev) == 1
		})
	}
	if ev, _ := h.app.Store.FindEvents(ctx, store.EventQuery{Kind: "user.deleted", Limit: 1}); ev[0].Actor != "root" || ev[0].Target != "nora" {
		t.Fatalf("the deletion's event: %+v", ev[0])
	}
}

// A sign-in link is refused for a disabled person, and dies when a new one is made.
func TestSignInLinkRules(t *testing.T) {
	h := start(t, testConfig(backends[0].url(t)))
	h.addUser("root", "Home Server Admins")
	ctx := context.Background()
	d := h.app.Directory()
	if _, err := d.AddUser(ctx, "test", identity.NewUser{Username: "kim"}); err != nil {
		t.Fatal(err)
	}
	first, _, err := d.IssueSignInLink(ctx, "test", "kim")
	if err != nil {
		t.Fatal(err)
	}
	second, _, err := d.IssueSignInLink(ctx, "test", "kim")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := d.UseSignInLink(ctx, identity.HashLinkToken(first)); err == nil {
		t.Fatal("an earlier link still works after a new one was made")
	}
	if err := d.SetDisabled(ctx, "test", "kim", true); err != nil {
		t.Fatal(err)
	}
	if _, _, err := d.UseSignInLink(ctx, identity.HashLinkToken(second)); err == nil {
		t.Fatal("a disabled person signed in with a link")
	}
	if _, _, err := d.IssueSignInLink(ctx, "test", "kim"); err == nil || !strings.Contains(err.Error(), "is disabled: enable them first") {
		t.Fatalf("a link for a disabled person: %v", err)
	}
	if resp, body := h.do(req{path: "/signin-link?token=" + strings.Repeat("a", 43)}); resp.StatusCode != http.StatusNotFound || !strings.Contains(body, "Ask your admin for a new link") {
		t.Fatalf("a made-up link: %d\n%s", resp.StatusCode, body)
	}
}
