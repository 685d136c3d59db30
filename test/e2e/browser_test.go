package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"

	"github.com/gatehouse-id/gatehouse/internal/testenv"
)

// TestPasskeyInABrowser is a person in a real browser: headless Chromium, driven over
// the DevTools protocol, with a virtual authenticator (the DevTools WebAuthn domain)
// standing in for a phone or a security key. Behind the README's nginx config they
// are sent to the login page, sign in with their password, add a passkey on their
// account page, sign out, and come back to the app through forward auth by signing in
// with the passkey alone; then, signing in with the password again, the passkey is
// their second step; last, an app signing in with OpenID Connect gets its code without
// a second prompt. The screenshots in docs/screenshots come from this test (set
// GATEHOUSE_SCREENSHOTS=docs/screenshots, relative to the repository, to refresh them).
func TestPasskeyInABrowser(t *testing.T) {
	chromium := testenv.Tool(t, "chromium", "chromium")
	proxyPort, upPort := freePort(t), upstream(t)
	_, _, ghPort := protectedSite(t, proxyPort)
	cmd, logFile := nginxCommand(t, proxyPort, ghPort, upPort)
	startProxy(t, proxyPort, cmd, logFile)
	auth := fmt.Sprintf("http://auth.example.com:%d", proxyPort)
	app := fmt.Sprintf("http://app.example.com:%d/photos/42", proxyPort)
	hello := `app says hello to "alice" in "Family"`

	b := newChromium(t, chromium, auth, fmt.Sprintf("http://app.example.com:%d", proxyPort))
	authenticator := b.addAuthenticator()

	// Sent to the login page, signed in with the password, back at the app.
	b.run("opening the app", chromedp.Navigate(app))
	b.waitText("Sign in with a passkey") // the script found WebAuthn and showed the button
	if loc := b.location(); !strings.HasPrefix(loc, auth+"/login?rd=") {
		t.Fatalf("anonymous visit landed on %q, want the login page", loc)
	}
	b.screenshot("login.png")
	b.run("signing in with the password",
		chromedp.SendKeys(chromedp.CSS("#username"), "alice"),
		chromedp.SendKeys(chromedp.CSS("#password"), "alice-password"),
		chromedp.Click(chromedp.CSS(`form[action="/login"] button[type=submit]`)))
	b.waitText(hello)

	// A passkey from the account page.
	b.run("opening the account page", chromedp.Navigate(auth+"/account"))
	b.run("naming a passkey",
		chromedp.SendKeys(chromedp.CSS("#passkey_name"), "This laptop"),
		chromedp.Click(chromedp.CSS(`form[data-passkey="create"] button[data-passkey-start]`)))
	b.waitText(`Passkey "This laptop" added`)
	b.screenshot("account.png")
	creds, err := chromedp.Call(b.ctx, webauthn.GetCredentials, webauthn.GetCredentialsParams{AuthenticatorID: authenticator})
	if err != nil || len(creds.Credentials) != 1 || !creds.Credentials[0].IsResidentCredential || creds.Credentials[0].RpID != "auth.example.com" {
		t.Fatalf("the authenticator should hold one discoverable passkey for auth.example.com: %+v %v", creds, err)
	}

	// The login page asks for passkeys in autofill as soon as it opens, and the virtual
	// authenticator would answer at once (a person picks one first): it waits for a
	// touch while we are signing out.
	signOut := func() {
		t.Helper()
		b.presence(authenticator, false)
		b.run("signing out", chromedp.Navigate(auth+"/"), chromedp.Click(chromedp.CSS(`form[action="/logout"] button`)))
		b.waitText("You are signed out")
		// Leave the login page, whose pending autofill request would otherwise answer
		// as soon as the authenticator is told to, racing the next step.
		b.run("leaving the login page", chromedp.Navigate("about:blank"))
	}
	signOut()

	// Back to the app with the passkey alone: no username, no password. First from
	// autofill: the login page asks as soon as it opens.
	b.presence(authenticator, true)
	b.run("opening the app again", chromedp.Navigate(app))
	b.waitText(hello)
	if loc := b.location(); loc != app {
		t.Fatalf("after the passkey sign-in the browser is at %q, want %q", loc, app)
	}
	b.run("opening the account page", chromedp.Navigate(auth+"/account"))
	b.waitText("with passkey+verified")

	// Then with the button, as in a browser without passkey autofill.
	signOut()
	noAutofill, err := chromedp.Call(b.ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{
		Source: "PublicKeyCredential.isConditionalMediationAvailable = () => Promise.resolve(false);"})
	if err != nil {
		t.Fatal(err)
	}
	b.presence(authenticator, true)
	b.run("opening the app again", chromedp.Navigate(app))
	b.waitText("Sign in with a passkey")
	b.clickPasskey()
	b.waitText(hello)
	if _, err := chromedp.Call(b.ctx, page.RemoveScriptToEvaluateOnNewDocument, page.RemoveScriptToEvaluateOnNewDocumentParams{Identifier: noAutofill.Identifier}); err != nil {
		t.Fatal(err)
	}

	// With the password, the passkey is now the second step.
	signOut()
	b.run("opening the app once more", chromedp.Navigate(app))
	b.waitText("Sign in with a passkey")
	b.run("signing in with the password",
		chromedp.SendKeys(chromedp.CSS("#username"), "alice"),
		chromedp.SendKeys(chromedp.CSS("#password"), "alice-password"),
		chromedp.Click(chromedp.CSS(`form[action="/login"] button[type=submit]`)))
	b.waitText("Confirm with one of your passkeys")
	b.screenshot("second-factor.png")
	b.presence(authenticator, true)
	b.clickPasskey()
	b.waitText(hello)

	// An app that signs in with OpenID Connect: already signed in, no second prompt;
	// the code lands at the app's callback (behind forward auth too), and the app
	// redeems it through nginx.
	verifier := strings.Repeat("v", 43)
	sum := sha256.Sum256([]byte(verifier))
	callback := fmt.Sprintf("http://app.example.com:%d/oauth/callback", proxyPort)
	authorize := auth + "/oauth2/authorize?" + url.Values{"client_id": {"photos"}, "redirect_uri": {callback}, "response_type": {"code"},
		"scope": {"openid groups"}, "state": {"st"}, "code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"}}.Encode()
	b.run("signing in to an OIDC app", chromedp.Navigate(authorize))
	b.waitText("/oauth/callback?code=")
	landed, _ := url.Parse(b.location())
	code := landed.Query().Get("code")
	if code == "" || landed.Query().Get("state") != "st" {
		t.Fatalf("the OIDC sign-in landed at %s", b.location())
	}
	form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {callback}, "client_id": {"photos"}, "code_verifier": {verifier}}
	resp, body := newBrowser(t, proxyPort).do(http.MethodPost, auth+"/oauth2/token", strings.NewReader(form.Encode()), nil)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `"id_token"`) {
		t.Fatalf("code exchange through nginx: %d %s", resp.StatusCode, body)
	}
}

// chromium is one headless Chromium tab with a fresh profile. Host names under
// example.com resolve to loopback (where the proxy listens), and the two test origins
// count as secure contexts, as they would over HTTPS, so WebAuthn runs on plain HTTP.
type chromium struct {
	t   *testing.T
	ctx context.Context
}

func newChromium(t *testing.T, exe string, origins ...string) *chromium {
	t.Helper()
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe), chromedp.NoSandbox, chromedp.DisableGPU, chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(900, 1100),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("host-resolver-rules", "MAP *.example.com 127.0.0.1"),
		chromedp.Flag("unsafely-treat-insecure-origin-as-secure", strings.Join(origins, ",")))...)
	ctx, cancelTab := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelTab(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil { // starts the browser: no timeout on this one
		t.Fatalf("starting Chromium (%s): %v", exe, err)
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	t.Cleanup(cancel)
	return &chromium{t: t, ctx: ctx}
}

// clickPasskey presses the page's passkey button from script: the click starts a
// WebAuthn request and the page navigates when it completes, which a click through
// the input domain would wait on.
func (b *chromium) clickPasskey() {
	b.t.Helper()
	b.run("pressing the passkey button", chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		shown, err := chromedp.Evaluate[bool](`(() => { const el = document.querySelector("button[data-passkey-start]"); if (!el || el.hidden) return false; el.click(); return true; })()`)(ctx, tg)
		if err == nil && !shown {
			err = errors.New("the page shows no passkey button")
		}
		return err
	}))
}

func (b *chromium) run(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, steps...); err != nil {
		b.t.Fatalf("%s: %v\npage:\n%s", what, err, b.text())
	}
}

func (b *chromium) text() string {
	s, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string]("document.body ? document.body.innerText : ''"))
	return s
}

func (b *chromium) location() string {
	loc, _ := chromedp.Run(b.ctx, chromedp.Location())
	return loc
}

// waitText waits up to 15 seconds for the page to show text.
func (b *chromium) waitText(text string) {
	b.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(b.text(), text) {
		if time.Now().After(deadline) {
			b.t.Fatalf("the page at %s never showed %q; it shows:\n%s", b.location(), text, b.text())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// addAuthenticator gives the tab a virtual platform authenticator that holds
// discoverable credentials, verifies its user (as a fingerprint would) and needs no
// touch, and returns its id.
func (b *chromium) addAuthenticator() webauthn.AuthenticatorID {
	b.t.Helper()
	if _, err := chromedp.Call(b.ctx, webauthn.Enable, webauthn.EnableParams{}); err != nil {
		b.t.Fatalf("enabling the WebAuthn domain: %v", err)
	}
	res, err := chromedp.Call(b.ctx, webauthn.AddVirtualAuthenticator, webauthn.AddVirtualAuthenticatorParams{
		Options: &webauthn.VirtualAuthenticatorOptions{
			Protocol: webauthn.AuthenticatorProtocolCtap2, Transport: webauthn.AuthenticatorTransportInternal,
			HasResidentKey: true, HasUserVerification: true, IsUserVerified: true, AutomaticPresenceSimulation: true,
		}})
	if err != nil {
		b.t.Fatalf("adding a virtual authenticator: %v", err)
	}
	return res.AuthenticatorID
}

// presence sets whether the virtual authenticator answers without waiting for a touch.
func (b *chromium) presence(id webauthn.AuthenticatorID, automatic bool) {
	b.t.Helper()
	if _, err := chromedp.Call(b.ctx, webauthn.SetAutomaticPresenceSimulation,
		webauthn.SetAutomaticPresenceSimulationParams{AuthenticatorID: id, Enabled: automatic}); err != nil {
		b.t.Fatalf("setting the authenticator's presence: %v", err)
	}
}

// screenshot saves the whole page as a PNG in $GATEHOUSE_SCREENSHOTS (or a temporary
// folder), and checks it is an image.
func (b *chromium) screenshot(name string) {
	b.t.Helper()
	png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	if err != nil || len(png) < 1000 || string(png[1:4]) != "PNG" {
		b.t.Fatalf("screenshot %s: %d bytes, %v", name, len(png), err)
	}
	dir := os.Getenv("GATEHOUSE_SCREENSHOTS")
	if dir == "" {
		dir = b.t.TempDir()
	} else if !filepath.IsAbs(dir) {
		dir = filepath.Join("../..", dir) // relative to the repository, not this package
	}
	if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}
