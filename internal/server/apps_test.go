package server

import (
	"net/http"
	"strings"
	"testing"

	"github.com/gatehouse-id/gatehouse/internal/config"
)

// The home page lists the apps each person may open, decided as forward auth decides
// a visit to each one's URL: an admin-only app for admins only (who pass every rule,
// and so reach a host no rule names), one behind a two-factor rule marked, and
// without apps in the config the hosts of the rules.
func TestHomeListsTheAppsOpenToEach(t *testing.T) {
	cfg := testConfig(backends[0].url(t))
	cfg.Access.Rules = append([]config.Rule{{Hosts: []string{"vault.example.com"}, Groups: []string{"Allow Login Users"}, TwoFactor: true}}, cfg.Access.Rules...)
	cfg.Apps = []config.App{
		{Name: "Grafana", URL: "https://grafana.example.com/d/home", Description: "Dashboards"},
		{Name: "Photos", URL: "https://immich.example.com/", Icon: "https://immich.example.com/favicon.png"},
		{Name: "Vault", URL: "https://vault.example.com/ui/"},
		{Name: "Elsewhere", URL: "https://other.example.org/"},
	}
	h := start(t, cfg)
	h.addUser("root", "Home Server Admins")
	h.addUser("fay", "Allow Login Users")
	h.addUser("gus")
	home := func(name string) (string, http.Header) {
		_, c := h.login(name, "correct horse "+name, "")
		resp, body := h.do(req{path: "/", cookies: []*http.Cookie{c}})
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("home page of %s: %d", name, resp.StatusCode)
		}
		return body, resp.Header
	}
	listed := func(body string) (names []string) {
		for _, part := range strings.Split(body, `<span class="app-name">`)[1:] {
			name, _, _ := strings.Cut(part, "<")
			names = append(names, name)
		}
		return names
	}
	for name, want := range map[string]string{"root": "Grafana Photos Vault Elsewhere", "fay": "Photos Vault", "gus": ""} {
		body, hdr := home(name)
		if got := strings.Join(listed(body), " "); got != want {
			t.Errorf("%s's apps: %q, want %q", name, got, want)
		}
		if name == "fay" && (!strings.Contains(body, `<img src="https://immich.example.com/favicon.png"`) || !strings.Contains(body, "asks for a second factor")) {
			t.Errorf("fay's list lacks the icon or the second-factor mark:\n%s", body)
		}
		if name == "gus" && !strings.Contains(body, "No app is open to you yet") {
			t.Errorf("an empty list says nothing:\n%s", body)
		}
		if csp := hdr.Get("Content-Security-Policy"); !strings.Contains(csp, "img-src 'self' data: https:;") {
			t.Errorf("the home page's policy blocks the icons: %q", csp)
		}
	}

	cfg.Apps = nil
	if err := h.app.Reload(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
	if body, _ := home("root"); strings.Join(listed(body), " ") != "vault.example.com grafana.example.com" {
		t.Errorf("apps from the rules: %q, want the whole-host rules' hosts", listed(body))
	}
}

// An address Gatehouse has no page at gets a page saying so in a browser and a line
// elsewhere; the favicon is served where browsers look for it.
func TestNotFoundPageAndFavicon(t *testing.T) {
	h := start(t, testConfig(backends[0].url(t)))
	if resp, body := h.do(req{path: "/no/such/page", header: http.Header{"Accept": {"text/html"}}}); resp.StatusCode != http.StatusNotFound ||
		!strings.Contains(body, "Gatehouse has no page at this address") || !strings.Contains(body, `rel="icon"`) {
		t.Fatalf("a browser at an unknown address: %d\n%s", resp.StatusCode, body)
	}
	if resp, body := h.do(req{path: "/no/such/page"}); resp.StatusCode != http.StatusNotFound || strings.Contains(body, "<html") {
		t.Fatalf("a script at an unknown address: %d %q", resp.StatusCode, body)
	}
	if resp, body := h.do(req{path: "/favicon.ico"}); resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "image/svg+xml" || !strings.HasPrefix(body, "<svg") {
		t.Fatalf("favicon: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if !strings.Contains(h.metrics(), `route="unmatched"`) {
		t.Error("unknown addresses are not counted as unmatched")
	}
}

// Branding is code: the name, the logo and the accent color of every page come from
// the config, and the logo's site is the only one added to what pages load images from.
func TestBranding(t *testing.T) {
	cfg := testConfig(backends[0].url(t))
	if resp, body := start(t, cfg).do(req{path: "/login"}); !strings.Contains(body, "<title>Sign in · Gatehouse</title>") || strings.Contains(body, "brand.css") ||
		strings.Contains(resp.Header.Get("Content-Security-Policy"), "cdn.example.net") {
		t.Fatalf("unbranded login page:\n%s", body)
	}
	cfg.Branding = config.Branding{Name: "Smith Family", Logo: "https://cdn.example.net/logo.png", Accent: "#7b2d8e"}
	h := start(t, cfg)
	resp, body := h.do(req{path: "/login"})
	if !strings.Contains(body, "<title>Sign in · Smith Family</title>") || !strings.Contains(body, `<img src="https://cdn.example.net/logo.png" alt="" height="24">Smith Family`) ||
		!strings.Contains(body, `<link rel="stylesheet" href="/brand.css">`) {
		t.Fatalf("branded login page:\n%s", body)
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "img-src 'self' data: https://cdn.example.net;") {
		t.Errorf("the branded page's policy: %q", csp)
	}
	if resp, css := h.do(req{path: "/brand.css"}); resp.StatusCode != http.StatusOK || css != ":root{--accent:#7b2d8e}\n" || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/css") {
		t.Fatalf("brand.css: %d %q %q", resp.StatusCode, resp.Header.Get("Content-Type"), css)
	}
}
