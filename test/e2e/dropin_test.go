package e2e

import (
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
)

// A site configured for Authentik's proxy outpost (testdata/authentik-nginx.conf, the
// documented nginx template's shape) works against Gatehouse with only the addresses
// changed: an anonymous visit starts at /outpost.goauthentik.io/start and comes back
// to the page after signing in, the app gets X-authentik-* headers, and
// /outpost.goauthentik.io/sign_out signs out.
func TestAuthentikNginxTemplateDropIn(t *testing.T) {
	proxyPort := freePort(t)
	_, _, ghPort := protectedSite(t, proxyPort)
	appPort := expressApp(t)
	tmpl, err := os.ReadFile("testdata/authentik-nginx.conf")
	if err != nil {
		t.Fatal(err)
	}
	site := strings.NewReplacer("listen PROXY;", fmt.Sprintf("listen 127.0.0.1:%d;", proxyPort),
		"GATEHOUSE", fmt.Sprintf("127.0.0.1:%d", ghPort), "APP", fmt.Sprintf("127.0.0.1:%d", appPort)).Replace(string(tmpl))
	cmd, errorLog := nginxWith(t, site)
	startProxy(t, proxyPort, cmd, errorLog)

	app := fmt.Sprintf("http://app.example.com:%d", proxyPort)
	auth := fmt.Sprintf("http://auth.example.com:%d", proxyPort)
	b := newBrowser(t, proxyPort)
	page42 := app + "/photos/42?size=large&sort=new" // an & the template leaves unencoded
	resp, _ := b.get(page42)
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != app+"/outpost.goauthentik.io/start?rd=/photos/42?size=large&sort=new" {
		t.Fatalf("anonymous visit: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, _ = b.get(resp.Header.Get("Location"))
	wantLogin := auth + "/login?rd=" + url.QueryEscape(page42)
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != wantLogin {
		t.Fatalf("/outpost.goauthentik.io/start: %d to %q, want %q", resp.StatusCode, resp.Header.Get("Location"), wantLogin)
	}
	_, page := b.get(wantLogin)
	form := url.Values{"username": {"alice"}, "password": {"alice-password"}, "csrf_token": {csrfOf(t, page)}, "rd": {page42}}
	resp, _ = b.do(http.MethodPost, auth+"/login", strings.NewReader(form.Encode()), nil)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != page42 {
		t.Fatalf("after signing in: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, body := b.do(http.MethodGet, page42, nil, http.Header{"X-Authentik-Username": {"root"}})
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `"x-authentik-username":"alice"`) {
		t.Fatalf("signed in, through the template: %d\n%s", resp.StatusCode, body)
	}
	// A return address elsewhere leads nowhere but Gatehouse's sign-in page.
	resp, _ = b.get(app + "/outpost.goauthentik.io/start?rd=https://evil.example.net/")
	if loc := resp.Header.Get("Location"); strings.Contains(loc, "evil") {
		t.Fatalf("start with a foreign rd: %q", loc)
	}
	resp, _ = b.get(app + "/outpost.goauthentik.io/sign_out")
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != auth+"/logout" {
		t.Fatalf("sign_out: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	// Authelia's portal takes rd on its root: signed in, it goes straight there.
	resp, _ = b.get(auth + "/?rd=" + url.QueryEscape(app+"/photos/1"))
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != app+"/photos/1" {
		t.Fatalf("/?rd= signed in: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
}
