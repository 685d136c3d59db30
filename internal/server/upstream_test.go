package server

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/gatehouse-id/gatehouse/internal/config"
	"github.com/gatehouse-id/gatehouse/internal/identity"
	"github.com/gatehouse-id/gatehouse/internal/testenv/fakeidp"
)

// viaProvider runs a sign-in through a fake provider as a browser would: Gatehouse's
// redirect to the provider, the provider's answer at once, the callback with the
// state cookie. start is the first request (a link, or a form with its cookies).
func (h *harness) viaProvider(start req) (*http.Response, string) {
	h.t.Helper()
	resp, body := h.do(start)
	if resp.StatusCode != http.StatusFound {
		h.t.Fatalf("starting the sign-in: %d\n%s", resp.StatusCode, body)
	}
	state := cookieNamed(resp, "gatehouse_upstream")
	at, err := client.Get(resp.Header.Get("Location"))
	if err != nil {
		h.t.Fatal(err)
	}
	at.Body.Close()
	back, err := url.Parse(at.Header.Get("Location"))
	if err != nil || at.StatusCode != http.StatusFound {
		h.t.Fatalf("the provider answered %d to %q", at.StatusCode, at.Header.Get("Location"))
	}
	cookies := append([]*http.Cookie{state}, start.cookies...)
	return h.do(req{path: back.RequestURI(), cookies: cookies})
}

func providersConfig(dbURL string, providers ...config.LoginProvider) config.Config {
	cfg := testConfig(dbURL)
	cfg.LoginProviders = providers
	return cfg
}

func fakeProvider(id, typ string, p *fakeidp.Provider, change func(*config.LoginProvider)) config.LoginProvider {
	lp := config.LoginProvider{ID: id, Type: typ, ClientID: p.ClientID, ClientSecret: p.ClientSecret}
	switch typ {
	case "google":
		lp.Issuer = p.URL
	case "github":
		lp.AuthURL, lp.TokenURL, lp.APIURL = p.URL+"/login/oauth/authorize", p.URL+"/login/oauth/access_token", p.URL+"/api"
	case "facebook":
		lp.AuthURL, lp.TokenURL, lp.APIURL = p.URL+"/v21.0/dialog/oauth", p.URL+"/v21.0/oauth/access_token", p.URL+"/v21.0"
	}
	if change != nil {
		change(&lp)
	}
	return lp
}

// joinVia starts an invitation sign-up through a provider from the invitation page.
func (h *harness) joinVia(provider, code string) (*http.Response, string) {
	h.t.Helper()
	token, csrf := h.formToken("/invite?code=" + code)
	return h.viaProvider(req{path: "/login/provider/" + provider, cookies: []*http.Cookie{csrf},
		form: url.Values{"csrf_token": {token}, "intent": {"join"}, "code": {code}}})
}

// Google, against a stand-in that follows its documented endpoints: an invited
// sign-up in a fresh browser lands in exactly the invitation's group; allowed_domains
// checks the token's hd claim, so a personal account whose address is at the domain
// stays out, and hd= goes to Google only as a hint.
func TestGoogleSignIn(t *testing.T) {
	g := fakeidp.Google(t)
	h := start(t, providersConfig(backends[0].url(t),
		fakeProvider("google", "google", g, nil),
		fakeProvider("google-work", "google", g, func(p *config.LoginProvider) { p.AllowedDomains = []string{"example.com"} })))
	ctx := context.Background()
	code, _, err := h.app.Directory().CreateInvitation(ctx, "test", identity.NewInvitation{Groups: []string{"Allow Login Users"}})
	if err != nil {
		t.Fatal(err)
	}
	g.SignInAs(fakeidp.Person{ID: "1001", Name: "Grandma", Email: "grandma@gmail.com", EmailVerified: true})
	resp, body := h.joinVia("google", code)
	sess := cookieNamed(resp, "gatehouse_session")
	if resp.StatusCode != http.StatusSeeOther || sess == nil {
		t.Fatalf("an invited Google sign-up: %d\n%s", resp.StatusCode, body)
	}
	u, err := h.app.Store.UserByUsername(ctx, "grandma")
	if err != nil || u.Email != "grandma@gmail.com" || u.DisplayName != "Grandma" {
		t.Fatalf("the account made: %+v, %v", u, err)
	}
	groups, _ := h.app.Store.UserGroupIDs(ctx, u.ID)
	all, _ := h.app.Store.ListGroups(ctx)
	if names := identity.EffectiveGroups(groups, all); len(groups) != 1 || strings.Join(names, ",") != "Allow Login Users" {
		t.Fatalf("grandma is in %v", names)
	}
	// Her next sign-in, in a fresh browser, is her own account.
	resp, _ = h.viaProvider(req{path: "/login/provider/google"})
	if resp.StatusCode != http.StatusSeeOther || cookieNamed(resp, "gatehouse_session") == nil {
		t.Fatalf("grandma signing in again: %d", resp.StatusCode)
	}

	// allowed_domains: the hd claim decides, the hint is only a hint.
	g.SignInAs(fakeidp.Person{ID: "2002", Email: "someone@example.com", EmailVerified: true}) // a personal account, no hd
	if resp, body := h.viaProvider(req{path: "/login/provider/google-work"}); resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "open to verified addresses at example.com only") {
		t.Fatalf("a personal account with an address at the domain: %d\n%s", resp.StatusCode, body)
	}
	if g.LastRequest().Get("hd") != "example.com" {
		t.Fatalf("hd was not sent as a hint: %v", g.LastRequest())
	}
	g.SignInAs(fakeidp.Person{ID: "3003", Email: "worker@example.com", EmailVerified: true, HostedDomain: "example.com"})
	if resp, body := h.viaProvider(req{path: "/login/provider/google-work"}); resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "no Gatehouse account is linked") {
		t.Fatalf("a Workspace account of the domain, not linked: %d\n%s", resp.StatusCode, body)
	}
}

// GitHub, against a stand-in of its OAuth app flow: the person is their numeric id
// (a renamed login stays the same account); an unverified primary address links
// nothing even with link_by_email, so a GitHub account claiming the admin's address
// cannot take the admin's account; allowed_orgs keeps others out.
func TestGitHubSignIn(t *testing.T) {
	gh := fakeidp.GitHub(t)
	h := start(t, providersConfig(backends[0].url(t),
		fakeProvider("github", "github", gh, func(p *config.LoginProvider) { p.LinkByEmail = true }),
		fakeProvider("github-family", "github", gh, func(p *config.LoginProvider) { p.AllowedOrgs = []string{"Family-Org"} })))
	h.addUser("root", "Home Server Admins") // root@example.com
	ctx := context.Background()

	gh.SignInAs(fakeidp.Person{ID: "666", Login: "root-admin", Email: "root@example.com", EmailVerified: false})
	if resp, body := h.viaProvider(req{path: "/login/provider/github"}); resp.StatusCode != http.StatusForbidden || cookieNamed(resp, "gatehouse_session") != nil {
		t.Fatalf("an unverified address equal to the admin's: %d\n%s", resp.StatusCode, body)
	}
	if creds, _ := h.app.Directory().Credentials(ctx, "root"); len(creds) != 1 {
		t.Fatalf("root's credentials after the attempt: %+v", creds)
	}

	code, _, _ := h.app.Directory().CreateInvitation(ctx, "test", identity.NewInvitation{Groups: []string{"Allow Login Users"}})
	gh.SignInAs(fakeidp.Person{ID: "42", Login: "Octo_Cat", Name: "Octo", Email: "octo@example.net", EmailVerified: true, Orgs: []string{"family-org"}})
	if resp, body := h.joinVia("github", code); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("an invited GitHub sign-up: %d\n%s", resp.StatusCode, body)
	}
	u, err := h.app.Store.UserByUsername(ctx, "octo_cat")
	if err != nil || u.Email != "octo@example.net" {
		t.Fatalf("the account made from GitHub: %+v, %v", u, err)
	}
	if l, err := h.app.Store.UpstreamIdentity(ctx, "github", "42"); err != nil || l.UserID != u.ID {
		t.Fatalf("the link is by GitHub's id: %+v, %v", l, err)
	}
	gh.SignInAs(fakeidp.Person{ID: "42", Login: "renamed", Email: "octo@example.net", EmailVerified: true})
	if resp, _ := h.viaProvider(req{path: "/login/provider/github"}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("a renamed login: %d", resp.StatusCode)
	}

	gh.SignInAs(fakeidp.Person{ID: "43", Login: "stranger", Email: "s@example.net", EmailVerified: true, Orgs: []string{"other"}})
	if resp, body := h.viaProvider(req{path: "/login/provider/github-family"}); resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "open to members of Family-Org only") {
		t.Fatalf("outside allowed_orgs: %d\n%s", resp.StatusCode, body)
	}
	if scope := gh.LastRequest().Get("scope"); scope != "read:user user:email read:org" {
		t.Fatalf("asked GitHub for %q", scope)
	}
}

// Facebook, against a stand-in of Facebook Login: its addresses are never taken as
// verified — an invitation pinned to a domain is refused through it, and the account
// an unpinned one makes keeps no address.
func TestFacebookSignIn(t *testing.T) {
	fb := fakeidp.Facebook(t)
	h := start(t, providersConfig(backends[0].url(t), fakeProvider("facebook", "facebook", fb, nil)))
	ctx := context.Background()
	pinned, _, _ := h.app.Directory().CreateInvitation(ctx, "test", identity.NewInvitation{Groups: []string{"Allow Login Users"}, Domain: "example.com"})
	fb.SignInAs(fakeidp.Person{ID: "10229", Name: "Aunt May", Email: "may@example.com"})
	if resp, body := h.joinVia("facebook", pinned); resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "does not say yours is verified") {
		t.Fatalf("a pinned invitation through Facebook: %d\n%s", resp.StatusCode, body)
	}
	open, _, _ := h.app.Directory().CreateInvitation(ctx, "test", identity.NewInvitation{Groups: []string{"Allow Login Users"}})
	if resp, body := h.joinVia("facebook", open); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("an invited Facebook sign-up: %d\n%s", resp.StatusCode, body)
	}
	u, err := h.app.Store.UserByUsername(ctx, "may")
	if err != nil || u.Email != "" || u.DisplayName != "Aunt May" {
		t.Fatalf("the account made from Facebook: %+v, %v", u, err)
	}
	cfg := providersConfig(backends[0].url(t), fakeProvider("facebook", "facebook", fb, func(p *config.LoginProvider) { p.LinkByEmail = true }))
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "never link accounts") {
		t.Fatalf("link_by_email on Facebook: %v", err)
	}
}

// An admin's pre-link, from the API and from the person's admin page: the person's
// first sign-in with the provider is their account.
func TestAdminPreLink(t *testing.T) {
	gh := fakeidp.GitHub(t)
	h := start(t, providersConfig(backends[0].url(t), fakeProvider("github", "github", gh, nil)))
	h.addUser("root", "Home Server Admins")
	h.addUser("aunt", "Allow Login Users")
	h.addUser("uncle", "Allow Login Users")
	c := newAPIClient(t, h)
	admin := c.token("ops", identity.APIScopes, identity.DefaultAPITokenLifetime)
	if status, p, _ := c.call("PUT", "/api/v1/users/aunt/linked-accounts/github/501", admin, nil); status != 204 {
		t.Fatalf("pre-linking through the API: %d %v", status, p)
	}
	if status, _, _ := c.call("PUT", "/api/v1/users/uncle/linked-accounts/github/501", admin, nil); status != 409 {
		t.Fatalf("linking one GitHub account to two people: %d", status)
	}
	if status, _, _ := c.call("PUT", "/api/v1/users/uncle/linked-accounts/gitlab/1", admin, nil); status != 422 {
		t.Fatalf("an unknown provider: %d", status)
	}
	_, root := h.login("root", "correct horse root", "")
	if resp, body := h.postForm(root, "/admin/users/uncle", "/admin/users/uncle/link-account", url.Values{"provider": {"github"}, "subject": {"502"}}); resp.StatusCode != http.StatusOK || !strings.Contains(body, "Linked the github account 502") {
		t.Fatalf("pre-linking on the admin page: %d\n%s", resp.StatusCode, body)
	}
	for id, who := range map[string]string{"501": "aunt", "502": "uncle"} {
		gh.SignInAs(fakeidp.Person{ID: id, Login: "gh" + id, Email: id + "@example.net", EmailVerified: true})
		resp, _ := h.viaProvider(req{path: "/login/provider/github"})
		s := cookieNamed(resp, "gatehouse_session")
		if resp.StatusCode != http.StatusSeeOther || s == nil {
			t.Fatalf("github %s signing in: %d", id, resp.StatusCode)
		}
		if r, _ := h.do(req{path: "/api/authz/forward-auth", header: traefik("https://app.example.com/"), cookies: []*http.Cookie{s}}); r.Header.Get("Remote-User") != who {
			t.Fatalf("github %s signed in as %q, want %s", id, r.Header.Get("Remote-User"), who)
		}
	}
}
