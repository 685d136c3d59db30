package e2e

import (
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gatehouse-id/gatehouse/internal/testenv"
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

// Sites configured for Authelia (testdata/authelia-nginx.conf: the current
// auth-request snippets and the legacy /api/verify ones, in the shapes Authelia's
// documentation gives) work against Gatehouse with only the addresses changed: an
// anonymous visit is sent to sign in and comes back, the app gets Remote-* headers and
// never the client's own.
func TestAutheliaNginxSnippetsDropIn(t *testing.T) {
	proxyPort := freePort(t)
	_, _, ghPort := protectedSite(t, proxyPort)
	appPort := expressApp(t)
	tmpl, err := os.ReadFile("testdata/authelia-nginx.conf")
	if err != nil {
		t.Fatal(err)
	}
	auth := fmt.Sprintf("http://auth.example.com:%d", proxyPort)
	site := strings.NewReplacer("listen PROXY;", fmt.Sprintf("listen 127.0.0.1:%d;", proxyPort),
		"GATEHOUSE", fmt.Sprintf("127.0.0.1:%d", ghPort), "APP", fmt.Sprintf("127.0.0.1:%d", appPort), "PORTAL", auth).Replace(string(tmpl))
	cmd, errorLog := nginxWith(t, site)
	startProxy(t, proxyPort, cmd, errorLog)

	b := newBrowser(t, proxyPort)
	current := fmt.Sprintf("http://app.example.com:%d/photos/42?size=large", proxyPort)
	resp, _ := b.get(current)
	wantLogin := auth + "/login?rd=" + url.QueryEscape(current)
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != wantLogin {
		t.Fatalf("anonymous visit (auth-request snippets): %d to %q, want %q", resp.StatusCode, resp.Header.Get("Location"), wantLogin)
	}
	legacy := fmt.Sprintf("http://files.example.com:%d/private/secret.txt", proxyPort)
	resp, _ = b.get(legacy)
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != auth+"/?rd="+legacy {
		t.Fatalf("anonymous visit (legacy /api/verify snippets): %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, _ = b.get(resp.Header.Get("Location"))
	portal, _ := url.Parse(auth + "/")
	if to, err := portal.Parse(resp.Header.Get("Location")); resp.StatusCode != http.StatusFound || err != nil || to.String() != auth+"/login?rd="+url.QueryEscape(legacy) {
		t.Fatalf("the portal with rd, signed out: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	_, page := b.get(wantLogin)
	form := url.Values{"username": {"alice"}, "password": {"alice-password"}, "csrf_token": {csrfOf(t, page)}, "rd": {current}}
	if resp, _ := b.do(http.MethodPost, auth+"/login", strings.NewReader(form.Encode()), nil); resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != current {
		t.Fatalf("after signing in: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	spoofed := http.Header{"Remote-User": {"root"}, "Remote-Groups": {"admins"}}
	for _, u := range []string{current, legacy} {
		resp, body := b.do(http.MethodGet, u, nil, spoofed)
		if resp.StatusCode != http.StatusOK || !strings.Contains(body, `"remote-user":"alice"`) || strings.Contains(body, "admins") {
			t.Fatalf("signed in, %s: %d\n%s", u, resp.StatusCode, body)
		}
	}
}

// A Caddy site written for Authelia (testdata/authelia-Caddyfile) works against
// Gatehouse in Debian's Caddy and a current one: sent to sign in, back with Remote-*
// headers, and a client's own Remote-User replaced by the signed-in person's.
func TestAutheliaCaddyDropIn(t *testing.T) {
	caddyDropIn(t, "testdata/authelia-Caddyfile", func(t *testing.T, b *browser, page, auth string) {
		resp, body := b.do(http.MethodGet, page, nil, http.Header{"Remote-User": {"root"}})
		if resp.StatusCode != http.StatusOK || !strings.Contains(body, `"remote-user":"alice"`) {
			t.Fatalf("signed in, through the Authelia Caddyfile: %d\n%s", resp.StatusCode, body)
		}
		// On a public path nobody is signed in; Gatehouse answers the headers empty, so
		// the client's own still never reaches the app.
		anon := newBrowser(t, b.port())
		if resp, pub := anon.do(http.MethodGet, strings.Replace(page, "/photos/42", "/api/x", 1), nil, http.Header{"Remote-User": {"root"}}); resp.StatusCode != http.StatusOK || strings.Contains(pub, "root") {
			t.Fatalf("a public path with the client's own Remote-User: %d\n%s", resp.StatusCode, pub)
		}
	})
}

// A Caddy site written for Authentik's outpost (testdata/authentik-Caddyfile) works
// too: the app gets X-authentik-* headers, never the client's, and the outpost's
// sign_out path on the app's host signs out.
func TestAuthentikCaddyDropIn(t *testing.T) {
	caddyDropIn(t, "testdata/authentik-Caddyfile", func(t *testing.T, b *browser, page, auth string) {
		resp, body := b.do(http.MethodGet, page, nil, http.Header{"X-Authentik-Username": {"root"}})
		if resp.StatusCode != http.StatusOK || !strings.Contains(body, `"x-authentik-username":"alice"`) || strings.Contains(body, "root") {
			t.Fatalf("signed in, through the Authentik Caddyfile: %d\n%s", resp.StatusCode, body)
		}
		app, _ := url.Parse(page)
		resp, _ = b.get(app.Scheme + "://" + app.Host + "/outpost.goauthentik.io/sign_out")
		if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != auth+"/logout" {
			t.Fatalf("sign_out: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
		}
	})
}

// caddyDropIn runs a Caddyfile from testdata, with its addresses filled in, in Debian's
// Caddy and a current one, in front of Express: an anonymous page load is sent to
// Gatehouse's sign-in page and comes back after it; then signedIn checks the rest.
func caddyDropIn(t *testing.T, file string, signedIn func(t *testing.T, b *browser, page, auth string)) {
	caddies := map[string]string{"debian": testenv.Tool(t, "caddy", "caddy")}
	current := os.Getenv(currentCaddyEnv)
	if current == "" {
		testenv.Missing(t, "a current Caddy built with go install ("+currentCaddyEnv+")")
	}
	caddies["current"] = current
	for name, caddy := range caddies {
		t.Run(name, func(t *testing.T) {
			proxyPort := freePort(t)
			_, _, ghPort := protectedSite(t, proxyPort)
			appPort := expressApp(t)
			tmpl, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			auth := fmt.Sprintf("http://auth.example.com:%d", proxyPort)
			site := strings.NewReplacer("GATEHOUSE", fmt.Sprintf("127.0.0.1:%d", ghPort), "APP", fmt.Sprintf("127.0.0.1:%d", appPort),
				"AUTH {", auth+" {", "SITE {", fmt.Sprintf("http://app.example.com:%d {", proxyPort)).Replace(string(tmpl))
			dir := t.TempDir()
			writeFile(t, filepath.Join(dir, "Caddyfile"), "{\n\tadmin off\n\tauto_https off\n}\n\n"+site)
			cmd := exec.Command(caddy, "run", "--config", filepath.Join(dir, "Caddyfile"), "--adapter", "caddyfile")
			cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir)
			startProxy(t, proxyPort, cmd, "")

			b := newBrowser(t, proxyPort)
			page := fmt.Sprintf("http://app.example.com:%d/photos/42", proxyPort)
			resp, _ := b.get(page)
			wantLogin := auth + "/login?rd=" + url.QueryEscape(page)
			if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != wantLogin {
				t.Fatalf("anonymous visit: %d to %q, want %q", resp.StatusCode, resp.Header.Get("Location"), wantLogin)
			}
			_, login := b.get(wantLogin)
			form := url.Values{"username": {"alice"}, "password": {"alice-password"}, "csrf_token": {csrfOf(t, login)}, "rd": {page}}
			if resp, _ := b.do(http.MethodPost, auth+"/login", strings.NewReader(form.Encode()), nil); resp.StatusCode != http.StatusSeeOther {
				t.Fatalf("signing in: %d", resp.StatusCode)
			}
			signedIn(t, b, page, auth)
		})
	}
}
