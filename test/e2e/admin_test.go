package e2e

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/gatehouse-id/gatehouse/internal/testenv"
)

// TestAdminInABrowser drives the admin pages in headless Chromium behind the README's
// nginx config, as a new admin would: add a person with no password into Family,
// make them a one-time sign-in link, use it in a second browser to set a password,
// see the audit entries, end the person's session (their browser is signed out), ask
// the decision explorer why a URL is refused, and invite a cousin, who joins in a
// third browser and opens the app at once. axe-core checks the pages that
// change things; the person's page and the explorer are photographed for the README.
func TestAdminInABrowser(t *testing.T) {
	exe := testenv.Tool(t, "chromium", "chromium")
	axe := loadAxe(t)
	// Two webhooks, to show their deliveries: one receiver takes everything, the
	// other is down for now.
	taken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	defer taken.Close()
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
	}))
	defer down.Close()
	proxyPort, apps := freePort(t), startApps(t)
	dir, env, ghPort := protectedSite(t, proxyPort, fmt.Sprintf(`webhooks:
  - name: audit-archive
    url: %s/gatehouse
    secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw
  - name: family-chat
    url: %s/services/T0000/B0000/XXXXXXXX
    format: slack
    events: [user.created, login.new_device]
login_providers: # shown on the sign-in and invitation pages (not used here)
  - id: google
    type: oidc
    name: Google
    issuer: http://localhost:9/
    client_id: gatehouse
    client_secret: not-used-in-this-test
`, taken.URL, down.URL))
	ok(t, dir, env, "root-password\n", "user", "add", "root", "--group", "admins", "--password-stdin")
	cmd, logFile := nginxCommand(t, proxyPort, ghPort, apps.express, apps.moreHosts()...)
	startProxy(t, proxyPort, cmd, logFile)
	auth := fmt.Sprintf("http://auth.example.com:%d", proxyPort)
	admin := newChromium(t, exe, auth)
	check := func(b *chromium, what string) { t.Helper(); checkAccessible(t, b, axe, what) }
	bypassCSP(t, admin)

	admin.run("opening the sign-in page", chromedp.Navigate(auth+"/login"))
	admin.waitText("Sign in with Google")
	check(admin, "the sign-in page with a provider's button")
	admin.screenshot("login-providers.png")
	admin.run("signing in as root", chromedp.SendKeys(chromedp.CSS("#username"), "root"), chromedp.SendKeys(chromedp.CSS("#password"), "root-password"),
		chromedp.Click(chromedp.CSS(`form[action="/login"] button[type=submit]`)))
	admin.waitText("signed in as root")

	// A new person, with no password, in Family.
	admin.run("opening the people page", chromedp.Navigate(auth+"/admin/users"))
	admin.waitText("Add a person")
	check(admin, "the people page with its form")
	admin.run("adding nora", chromedp.SendKeys(chromedp.CSS("#new_username"), "nora"), chromedp.SendKeys(chromedp.CSS("#new_display_name"), "Nora"),
		chromedp.Click(chromedp.CSS(`input[name=group][value=Family]`)), chromedp.Click(chromedp.CSS(`form[method=post][action="/admin/users"] button[type=submit]`)))
	admin.waitText("Created nora. They have no password")
	admin.run("making a sign-in link", chromedp.Click(chromedp.CSS(`form[action="/admin/users/nora/signin-link"] button`)))
	admin.waitText("shown only this once")
	check(admin, "a person's page with a new sign-in link")
	admin.screenshot("admin-person.png")
	link, err := chromedp.Run(admin.ctx, chromedp.Evaluate[string](`document.querySelector("#link").value`))
	if err != nil || !strings.HasPrefix(link, auth+"/signin-link?token=") {
		t.Fatalf("the sign-in link on the page: %q, %v", link, err)
	}

	// Nora, in her own browser, uses it once and sets a password.
	nora := newChromium(t, exe, auth)
	bypassCSP(t, nora)
	nora.run("opening the sign-in link", chromedp.Navigate(link))
	nora.waitText("Sign in as nora")
	check(nora, "the sign-in link page")
	nora.run("using the link", chromedp.Click(chromedp.CSS(`form[action="/signin-link"] button`)))
	nora.waitText("Set a password or add a passkey below now")
	nora.run("setting a password", chromedp.SendKeys(chromedp.CSS("#new_password"), "nora-password"), chromedp.SendKeys(chromedp.CSS("#new_password_confirm"), "nora-password"),
		chromedp.Click(chromedp.CSS(`form[action="/account/password"] button`)))
	nora.waitText("Password changed")
	nora.run("opening the link again", chromedp.Navigate(link))
	nora.waitText("Sign-in link not valid")
	nora.run("opening the app", chromedp.Navigate(fmt.Sprintf("http://app.example.com:%d/photos/1", proxyPort)))
	nora.waitText(`"remote-user":"nora"`)

	// The admin sees it all, and ends nora's session.
	admin.run("opening nora's page", chromedp.Navigate(auth+"/admin/users/nora"))
	admin.waitText("user.signin_link_used")
	admin.run("opening the audit log", chromedp.Navigate(auth+"/admin/audit?target=nora"))
	for _, kind := range []string{"user.created", "user.signin_link_created", "user.signin_link_used", "user.password_changed", "login.new_device"} {
		admin.waitText(kind)
	}
	admin.run("opening nora's page", chromedp.Navigate(auth+"/admin/users/nora"))
	admin.run("ending nora's sessions", chromedp.Click(chromedp.CSS(`form[action="/admin/users/nora/sessions/revoke"] input[value=all] ~ button`)))
	admin.waitText("Ended all 1 of nora's sessions")
	nora.run("opening the app after the revocation", chromedp.Navigate(fmt.Sprintf("http://app.example.com:%d/photos/1", proxyPort)))
	nora.waitText("Sign in with a passkey")

	// Why may nora not open www's /admin?
	admin.run("opening the explorer", chromedp.Navigate(auth+"/admin/explain"))
	admin.run("asking about nora", chromedp.SendKeys(chromedp.CSS("#x_username"), "nora"),
		chromedp.SendKeys(chromedp.CSS("#x_url"), fmt.Sprintf("http://www.example.com:%d/Admin/users", proxyPort)),
		chromedp.Click(chromedp.CSS(`form[action="/admin/explain"] button`)))
	admin.waitText("access.rules[2] (defined in the config file)")
	admin.waitText("members of admins")
	check(admin, "the decision explorer's answer")
	admin.screenshot("admin-explain.png")
	if text := admin.text(); !strings.Contains(text, "deny") || !strings.Contains(text, "Family") {
		t.Fatalf("the explorer's answer:\n%s", text)
	}

	// An invitation into Family, made on the admin page; a cousin joins with it in a
	// fresh browser and lands on the apps page.
	admin.run("opening the invitations", chromedp.Navigate(auth+"/admin/invitations"))
	admin.run("inviting into Family", chromedp.Click(chromedp.CSS(`input[name=group][value=Family]`)),
		chromedp.SendKeys(chromedp.CSS("#inv_note"), "cousin Ann"), chromedp.Click(chromedp.CSS(`form[action="/admin/invitations"] button[type=submit]`)))
	admin.waitText("shown only this once")
	check(admin, "the invitations page with a new code")
	admin.screenshot("admin-invitations.png")
	invite, err := chromedp.Run(admin.ctx, chromedp.Evaluate[string](`document.querySelector("#invite_link").value`))
	if err != nil || !strings.HasPrefix(invite, auth+"/invite?code=") {
		t.Fatalf("the invitation link on the page: %q, %v", invite, err)
	}
	ann := newChromium(t, exe, auth)
	bypassCSP(t, ann)
	ann.run("opening the invitation", chromedp.Navigate(invite))
	ann.waitText("This invitation makes your account in Family")
	ann.waitText("Join with Google")
	check(ann, "the invitation page")
	ann.screenshot("invite.png")
	ann.run("joining", chromedp.SendKeys(chromedp.CSS("#username"), "ann"), chromedp.SendKeys(chromedp.CSS("#display_name"), "Ann"),
		chromedp.SendKeys(chromedp.CSS("#password"), "ann-password"), chromedp.SendKeys(chromedp.CSS("#password_confirm"), "ann-password"),
		chromedp.Click(chromedp.CSS(`form[action="/invite"] button`)))
	ann.waitText("signed in as ann")
	ann.run("opening the app", chromedp.Navigate(fmt.Sprintf("http://app.example.com:%d/photos/1", proxyPort)))
	ann.waitText(`"remote-user":"ann"`)
	admin.run("opening the invitations again", chromedp.Navigate(auth+"/admin/invitations"))
	admin.waitText("1 of 1")

	// The deliveries of what happened: taken by one receiver, waiting for the other.
	admin.run("opening the webhooks", chromedp.Navigate(auth+"/admin/webhooks"))
	admin.waitText("login.new_device")
	admin.waitText("HTTP 503")
	check(admin, "the webhook deliveries")
	admin.screenshot("admin-webhooks.png")
	if text := admin.text(); strings.Contains(text, "XXXXXXXX") {
		t.Fatalf("the webhooks page shows a webhook's secret path:\n%s", text)
	}
}

// bypassCSP lets axe-core be injected over DevTools, past the pages' content
// security policy.
func bypassCSP(t *testing.T, b *chromium) {
	t.Helper()
	if _, err := chromedp.Call(b.ctx, page.SetBypassCSP, page.SetBypassCSPParams{Enabled: true}); err != nil {
		t.Fatal(err)
	}
}
