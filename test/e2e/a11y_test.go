package e2e

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/gatehouse-id/gatehouse/internal/testenv"
)

// axeEnv names axe-core's axe.min.js, which scripts/test.sh installs from npm.
const axeEnv = "TEST_GATEHOUSE_AXE"

// TestPagesAreAccessible opens every page a person meets — the sign-in page, the apps
// page, the account page, signing out, a refusal, an unknown address — in headless
// Chromium behind the README's nginx config, in light and in dark mode, and runs
// axe-core's WCAG 2.2 A and AA checks on each: none may find a serious or critical
// violation. The apps page and the refusal page are photographed in both modes for
// the README (docs/screenshots, see TestPasskeyInABrowser).
func TestPagesAreAccessible(t *testing.T) {
	chromium := testenv.Tool(t, "chromium", "chromium")
	axePath := os.Getenv(axeEnv)
	if axePath == "" {
		testenv.Missing(t, "axe-core from npm ("+axeEnv+")")
	}
	axe, err := os.ReadFile(axePath)
	if err != nil {
		t.Fatalf("reading axe-core: %v", err)
	}
	proxyPort, apps := freePort(t), startApps(t)
	_, _, ghPort := protectedSite(t, proxyPort)
	cmd, logFile := nginxCommand(t, proxyPort, ghPort, apps.express, apps.moreHosts()...)
	startProxy(t, proxyPort, cmd, logFile)
	auth := fmt.Sprintf("http://auth.example.com:%d", proxyPort)
	app := fmt.Sprintf("http://app.example.com:%d/photos/42", proxyPort)

	for _, scheme := range []string{"light", "dark"} {
		t.Run(scheme, func(t *testing.T) {
			b := newChromium(t, chromium, auth)
			if _, err := chromedp.Call(b.ctx, page.SetBypassCSP, page.SetBypassCSPParams{Enabled: true}); err != nil { // axe is injected over DevTools
				t.Fatal(err)
			}
			if _, err := chromedp.Call(b.ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
				Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: scheme}}}); err != nil {
				t.Fatalf("emulating %s mode: %v", scheme, err)
			}
			suffix := map[string]string{"light": "", "dark": "-dark"}[scheme]
			check := func(what string) {
				t.Helper()
				checkAccessible(t, b, string(axe), what)
			}
			signIn := func(user, password string) {
				t.Helper()
				b.run("opening the sign-in page", chromedp.Navigate(auth+"/login"))
				b.run("signing in as "+user, chromedp.SendKeys(chromedp.CSS("#username"), user), chromedp.SendKeys(chromedp.CSS("#password"), password),
					chromedp.Click(chromedp.CSS(`form[action="/login"] button[type=submit]`)))
				b.waitText("signed in as " + user)
			}

			b.run("opening the app", chromedp.Navigate(app))
			b.waitText("Sign in with a passkey")
			check("the sign-in page")
			signIn("alice", "alice-password")
			check("the apps page")
			b.screenshot("apps" + suffix + ".png")
			b.run("opening the account page", chromedp.Navigate(auth+"/account"))
			b.waitText("Passkeys")
			check("the account page")
			b.run("opening an unknown address", chromedp.Navigate(auth+"/no/such/page"))
			b.waitText("no page at this address")
			check("the not-found page")
			b.run("opening the sign-out page", chromedp.Navigate(auth+"/logout"))
			b.waitText("out of every site")
			check("the sign-out page")
			b.run("signing out", chromedp.Click(chromedp.CSS(`form[action="/logout"] button`)))
			b.waitText("You are signed out")

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
