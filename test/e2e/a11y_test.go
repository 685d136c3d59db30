package e2e

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"

	"github.com/gatehouse-id/gatehouse/internal/testenv"
)

// axeEnv names axe-core's axe.min.js, which scripts/test.sh installs from npm.
const axeEnv = "TEST_GATEHOUSE_AXE"

// TestPagesAreAccessible opens every page a person meets — the sign-in page, the apps
// page, the account page, signing out, the invitation and password-reset pages, the admin pages (people, a
// person, groups, a group, the audit log, the config, the explorer, webhooks,
// invitations), a refusal, an unknown address — in headless
// Chromium behind the README's nginx config, in light and in dark mode, and runs
// axe-core's WCAG 2.2 A and AA checks on each: none may find a serious or critical
// violation. The apps page and the refusal page are photographed in both modes for
// the README (docs/screenshots, see TestPasskeyInABrowser).
func TestPagesAreAccessible(t *testing.T) {
	chromium := testenv.Tool(t, "chromium", "chromium")
	axe := loadAxe(t)
	proxyPort, apps := freePort(t), startApps(t)
	dir, env, ghPort := protectedSite(t, proxyPort)
	ok(t, dir, env, "root-password\n", "user", "add", "root", "--group", "admins", "--password-stdin")
	cmd, logFile := nginxCommand(t, proxyPort, ghPort, apps.express, apps.moreHosts()...)
	startProxy(t, proxyPort, cmd, logFile)
	auth := fmt.Sprintf("http://auth.example.com:%d", proxyPort)
	app := fmt.Sprintf("http://app.example.com:%d/photos/42", proxyPort)

	for _, scheme := range []string{"light", "dark"} {
		t.Run(scheme, func(t *testing.T) {
			b := newChromium(t, chromium, auth)
			bypassCSP(t, b)
			if _, err := chromedp.Call(b.ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
				Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: scheme}}}); err != nil {
				t.Fatalf("emulating %s mode: %v", scheme, err)
			}
			suffix := map[string]string{"light": "", "dark": "-dark"}[scheme]
			check := func(what string) {
				t.Helper()
				checkAccessible(t, b, axe, what)
			}
			signIn := func(user, password string) {
				t.Helper()
				b.run("opening the sign-in page", chromedp.Navigate(auth+"/login"))
				b.run("signing in as "+user, chromedp.SendKeys(chromedp.CSS("#username"), user), chromedp.SendKeys(chromedp.CSS("#password"), password),
					chromedp.Click(chromedp.CSS(`form[action="/login"] button[type=submit]`)))
				b.waitText("signed in as " + user)
			}

			// visit opens a page, waits for what it shows, checks it, and photographs it
			// (light mode only when lightOnly) when shot names a file.
			visit := func(what, address, shows, shot string, lightOnly bool) {
				t.Helper()
				b.run("opening "+what, chromedp.Navigate(address))
				b.waitText(shows)
				check(what)
				if shot != "" && (!lightOnly || scheme == "light") {
					b.screenshot(shot)
				}
			}
			signOut := func() {
				t.Helper()
				b.run("opening the sign-out page", chromedp.Navigate(auth+"/logout"))
				b.run("signing out", chromedp.Click(chromedp.CSS(`form[action="/logout"] button`)))
				b.waitText("You are signed out")
			}

			visit("the sign-in page", app, "Sign in with a passkey", "", false)
			signIn("alice", "alice-password")
			check("the apps page")
			b.screenshot("apps" + suffix + ".png")
			visit("the account page", auth+"/account", "Passkeys", "", false)
			visit("the not-found page", auth+"/no/such/page", "no page at this address", "", false)
			visit("the invitation page", auth+"/invite", "Invitation code", "", false)
			visit("the password reset page", auth+"/reset", "Forgot your password?", "", false)
			visit("the sign-out page", auth+"/logout", "out of every site", "", false)
			signOut()

			signIn("root", "root-password") // an admin: the admin pages
			visit("the admin people page", auth+"/admin/users", "alice", "admin-people.png", true)
			visit("a person's admin page", auth+"/admin/users/alice", "Recent events", "", false)
			visit("the audit log", auth+"/admin/audit?actor=alice", "login.succeeded", "admin-audit.png", true)
			visit("the groups page", auth+"/admin/groups", "Direct members", "", false)
			visit("a group's page", auth+"/admin/groups/Family", "Effective members", "", false)
			visit("the config page", auth+"/admin/config", "OpenID Connect clients", "admin-config.png", true)
			visit("the decision explorer", auth+"/admin/explain?username=bob&url="+url.QueryEscape(app), "Deciding rule", "", false)
			visit("the webhook deliveries", auth+"/admin/webhooks", "Deliveries", "", false)
			visit("the invitations page", auth+"/admin/invitations", "Invite someone", "", false)
			signOut()

			signIn("bob", "bob-password") // in no group: refused at the app
			b.run("opening the app as bob", chromedp.Navigate(app))
			b.waitText("bob may not open")
			if loc := b.location(); loc != auth+"/refused?rd="+url.QueryEscape(app) {
				t.Fatalf("bob refused: at %q, want nginx's way to the refusal page", loc)
			}
			b.run("opening the reasons", chromedp.Click(chromedp.CSS("summary")))
			b.waitText("To get in, ask an admin")
			check("the refusal page")
			b.screenshot("refused" + suffix + ".png")
		})
	}
}

// loadAxe reads axe-core's script.
func loadAxe(t *testing.T) string {
	t.Helper()
	axe, err := os.ReadFile(fromEnv(t, axeEnv, "axe-core from npm"))
	if err != nil {
		t.Fatalf("reading axe-core: %v", err)
	}
	return string(axe)
}

// checkAccessible runs axe-core's WCAG 2.2 A and AA rules on the page b shows and fails
// the test for each serious or critical violation, naming the rule and the elements.
func checkAccessible(t *testing.T, b *chromium, axe, what string) {
	t.Helper()
	const run = `axe.run(document, {runOnly: {type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]}, resultTypes: ["violations"]})
		.then(r => JSON.stringify(r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map(n => n.target.join(" ") + ": " + n.failureSummary)}))))`
	out, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](axe+"\n;"+run, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("running axe-core on %s: %v", what, err)
	}
	var violations []struct {
		ID, Impact, Help string
		Nodes            []string
	}
	if err := json.Unmarshal([]byte(out), &violations); err != nil {
		t.Fatalf("axe-core's answer on %s: %v\n%s", what, err, out)
	}
	for _, v := range violations {
		if v.Impact == "serious" || v.Impact == "critical" {
			t.Errorf("%s: %s (%s, %s):\n  %s", what, v.Help, v.ID, v.Impact, strings.Join(v.Nodes, "\n  "))
		} else {
			t.Logf("%s: %s (%s, %s)", what, v.Help, v.ID, v.Impact)
		}
	}
}
