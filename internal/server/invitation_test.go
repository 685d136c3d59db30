package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/gatehouse-id/gatehouse/internal/config"
	"github.com/gatehouse-id/gatehouse/internal/identity"
	"github.com/gatehouse-id/gatehouse/internal/store"
	"github.com/gatehouse-id/gatehouse/internal/testenv/fakeidp"
)

// join posts the invitation page's form as a new person would.
func (h *harness) join(code, username, email, password string) (*http.Response, string) {
	h.t.Helper()
	token, csrf := h.formToken("/invite")
	return h.do(req{path: "/invite", cookies: []*http.Cookie{csrf}, form: url.Values{"csrf_token": {token}, "code": {code},
		"username": {username}, "email": {email}, "password": {password}, "password_confirm": {password}}})
}

// An invitation made through the API lets one person make their own account, which
// lands in exactly the invitation's groups and passes forward auth at once; the code
// is read in any letter case and with spaces; a used-up, revoked or wrong code is
// refused, wrong ones throttled; a refused account (a taken name, an address the
// invitation does not allow) spends no use.
func TestInvitations(t *testing.T) {
	h := start(t, testConfig(backends[0].url(t)))
	h.addUser("root", "Home Server Admins")
	c := newAPIClient(t, h)
	admin := c.token("ops", identity.APIScopes, identity.DefaultAPITokenLifetime)
	ctx := context.Background()

	status, made, hdr := c.call("POST", "/api/v1/invitations", admin, map[string]any{"groups": []string{"Allow Login Users"}, "note": "cousin Ann"})
	code, _ := made["code"].(string)
	if status != 201 || len(code) != 9 || code[4] != '-' || hdr.Get("Location") == "" || !strings.HasSuffix(fmt.Sprint(made["url"]), "/invite?code="+code) {
		t.Fatalf("making an invitation: %d %v", status, made)
	}
	if resp, body := h.do(req{path: "/invite?code=" + code}); resp.StatusCode != http.StatusOK || !strings.Contains(body, "makes your account in <strong>Allow Login Users</strong>") {
		t.Fatalf("opening the invitation: %d\n%s", resp.StatusCode, body)
	}
	h.addUser("taken", "Allow Login Users")
	if resp, body := h.join(code, "TAKEN", "", "ann's own password"); resp.StatusCode != http.StatusConflict || !strings.Contains(body, "Nothing was made") {
		t.Fatalf("joining with a taken username: %d\n%s", resp.StatusCode, body)
	}
	resp, _ := h.join(strings.ToLower(" "+strings.ReplaceAll(code, "-", " ")+" "), "ann", "ann@example.org", "ann's own password")
	ann := cookieNamed(resp, "gatehouse_session")
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" || ann == nil {
		t.Fatalf("joining: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	u, err := h.app.Store.UserByUsername(ctx, "ann")
	if err != nil {
		t.Fatal(err)
	}
	groups, _ := h.app.Store.UserGroupIDs(ctx, u.ID)
	all, _ := h.app.Store.ListGroups(ctx)
	if names := identity.EffectiveGroups(groups, all); !slices.Equal(names, []string{"Allow Login Users"}) || len(groups) != 1 {
		t.Fatalf("ann is in %v", names)
	}
	if resp, _ := h.do(req{path: "/api/authz/forward-auth", header: traefik("https://app.example.com/"), cookies: []*http.Cookie{ann}}); resp.StatusCode != http.StatusOK || resp.Header.Get("Remote-User") != "ann" {
		t.Fatalf("ann at an app: %d", resp.StatusCode)
	}
	if resp, body := h.join(code, "ann2", "", "ann's own password"); resp.StatusCode != http.StatusNotFound || !strings.Contains(body, "used up, expired or revoked") {
		t.Fatalf("the used invitation again: %d\n%s", resp.StatusCode, body)
	}

	// Pinned to a domain; a wrong address spends nothing.
	status, made, _ = c.call("POST", "/api/v1/invitations", admin, map[string]any{"groups": []string{"Allow Login Users"}, "domain": "example.com", "max_uses": 2, "expires_in_days": 1})
	pinned, _ := made["code"].(string)
	if status != 201 {
		t.Fatalf("a pinned invitation: %d %v", status, made)
	}
	if resp, body := h.join(pinned, "bea", "bea@example.org", "bea's own password"); resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "for addresses at example.com") {
		t.Fatalf("a wrong domain: %d\n%s", resp.StatusCode, body)
	}
	for _, name := range []string{"bea", "cal"} {
		if resp, body := h.join(pinned, name, name+"@Example.com", name+"'s own password"); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("%s joining: %d\n%s", name, resp.StatusCode, body)
		}
	}
	status, list, _ := c.call("GET", "/api/v1/invitations", admin, nil)
	items, _ := list["items"].([]any)
	if status != 200 || len(items) != 2 || items[0].(map[string]any)["uses"] != float64(2) || items[0].(map[string]any)["code"] != nil {
		t.Fatalf("listing: %d %v", status, list)
	}

	// Revoked, then its code is refused.
	status, made, _ = c.call("POST", "/api/v1/invitations", admin, map[string]any{"groups": []string{"Allow Login Users"}})
	revoked, id := made["code"].(string), made["id"].(string)
	if status, _, _ := c.call("DELETE", "/api/v1/invitations/"+id, admin, nil); status != 204 {
		t.Fatalf("revoking: %d", status)
	}
	if resp, _ := h.join(revoked, "dan", "", "dan's own password"); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("a revoked code: %d", resp.StatusCode)
	}
	for what, body := range map[string]map[string]any{
		"no group":      {"groups": []string{}},
		"unknown group": {"groups": []string{"Nobody"}},
		"both pins":     {"groups": []string{"Allow Login Users"}, "email": "a@example.com", "domain": "example.com"},
		"too long":      {"groups": []string{"Allow Login Users"}, "expires_in_days": 91},
	} {
		if status, p, _ := c.call("POST", "/api/v1/invitations", admin, body); status < 400 || status >= 500 {
			t.Errorf("%s: %d %v", what, status, p)
		}
	}

	// Guessing codes is throttled per network.
	var last int
	for i := range 12 {
		resp, _ := h.do(req{path: "/invite?code=" + fmt.Sprintf("AAAA-%04d", i)})
		last = resp.StatusCode
	}
	if last != http.StatusTooManyRequests {
		t.Fatalf("the 12th wrong code: %d, want 429", last)
	}
	for _, kind := range []string{"invitation.created", "invitation.used", "invitation.revoked"} {
		waitFor(t, kind, func() bool {
			ev, err := h.app.Store.FindEvents(ctx, store.EventQuery{Kind: kind, Limit: 1})
			return err == nil && len(ev) == 1
		})
	}
}

// A single-use invitation spent on two replicas at once, eight times, makes one
// account: the use is counted in the account's own transaction. (The services are
// called directly: eight sign-ups at once through the pages would also measure how
// fast this machine hashes eight passwords within a request's deadline.)
func TestInvitationRacedFromTwoReplicas(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dbURL string) {
		cfg := testConfig(dbURL)
		one, two := start(t, cfg), start(t, cfg)
		ctx := context.Background()
		code, _, err := one.app.Directory().CreateInvitation(ctx, "test", identity.NewInvitation{Groups: []string{"Allow Login Users"}})
		if err != nil {
			t.Fatal(err)
		}
		var made atomic.Int32
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Go(func() {
				h := []*harness{one, two}[i%2]
				_, err := h.app.Directory().AcceptInvitation(ctx, code, identity.NewUser{Username: fmt.Sprintf("racer%d", i)})
				switch {
				case err == nil:
					made.Add(1)
				case !errors.Is(err, identity.ErrInvitationNotValid):
					t.Errorf("racer %d: %v", i, err)
				}
			})
		}
		wg.Wait()
		users, err := one.app.Store.ListUsersAfter(ctx, "", 100)
		if made.Load() != 1 || err != nil || len(users) != 1 {
			t.Fatalf("%d accounts made, %d users (%v)", made.Load(), len(users), err)
		}
	})
}

// With signup.open, the invitation page makes accounts without a code, into
// signup.groups, and so does a first sign-in with a login provider; a code still
// gives its own groups. Closed, joining without a code is refused.
func TestOpenSignUp(t *testing.T) {
	gh := fakeidp.GitHub(t)
	cfg := providersConfig(backends[0].url(t), fakeProvider("github", "github", gh, nil))
	cfg.SignUp = config.SignUp{Open: true, Groups: []string{"Allow Login Users"}}
	h := start(t, cfg)
	ctx := context.Background()
	if _, body := h.do(req{path: "/invite"}); !strings.Contains(body, "Anyone may make an account here: it joins Allow Login Users") {
		t.Fatalf("the open sign-up page:\n%s", body)
	}
	if resp, body := h.join("", "walkin", "", "a walk-in's password"); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("an open sign-up: %d\n%s", resp.StatusCode, body)
	}
	inGroups := func(name string) []string {
		u, err := h.app.Store.UserByUsername(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		ids, _ := h.app.Store.UserGroupIDs(ctx, u.ID)
		all, _ := h.app.Store.ListGroups(ctx)
		return identity.EffectiveGroups(ids, all)
	}
	if g := inGroups("walkin"); strings.Join(g, ",") != "Allow Login Users" {
		t.Fatalf("walkin is in %v", g)
	}
	gh.SignInAs(fakeidp.Person{ID: "77", Login: "newcomer", Email: "n@example.net", EmailVerified: true})
	if resp, body := h.viaProvider(req{path: "/login/provider/github"}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("a first GitHub sign-in with open sign-up: %d\n%s", resp.StatusCode, body)
	}
	if g := inGroups("newcomer"); strings.Join(g, ",") != "Allow Login Users" {
		t.Fatalf("newcomer is in %v", g)
	}

	closed := start(t, testConfig(backends[0].url(t)))
	if resp, body := closed.join("", "walkin", "", "a walk-in's password"); resp.StatusCode != http.StatusNotFound || !strings.Contains(body, "not valid") {
		t.Fatalf("joining without a code, sign-up closed: %d\n%s", resp.StatusCode, body)
	}
	bad := testConfig(backends[0].url(t))
	bad.SignUp.Open = true
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "signup.groups") {
		t.Fatalf("open sign-up without groups: %v", err)
	}
}
