package server

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// A person signed in but not allowed gets a page, not a line of text: forward auth's
// 403 to a browser's page load is the refusal page (who is signed in, the groups the
// rule lets in and theirs, whom to ask, how to switch account), with its stylesheet and
// links on Gatehouse's address since it is shown on the app's; on the nginx endpoint
// the 403 also names the same page on Gatehouse, which decides afresh. Scripts keep
// the plain 403.
func TestRefusalPage(t *testing.T) {
	h := start(t, testConfig(backends[0].url(t)))
	h.addUser("bob", "Allow Login Users")
	_, bob := h.login("bob", "correct horse bob", "")
	grafana := "https://grafana.example.com/d/home?orgId=1"
	cookies := []*http.Cookie{bob}

	resp, body := h.do(req{path: "/api/authz/forward-auth", header: traefik(grafana), cookies: cookies})
	if resp.StatusCode != http.StatusForbidden || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") ||
		!strings.Contains(body, "signed in as <strong>bob</strong>") || !strings.Contains(body, "may not open <strong>grafana.example.com</strong>") ||
		!strings.Contains(body, "You are in Allow Login Users") || !strings.Contains(body, "Only Gatehouse's admins (members of Home Server Admins)") ||
		!strings.Contains(body, `href="https://auth.example.com/static/style.css"`) ||
		!strings.Contains(body, `href="https://auth.example.com/logout?rd=`+url.QueryEscape(grafana)+`"`) {
		t.Fatalf("a refused page load: %d %q\n%s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "style-src https://auth.example.com;") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("the refusal page's policy: %q", csp)
	}
	script := traefik(grafana)
	script.Set("Accept", "application/json")
	if resp, body := h.do(req{path: "/api/authz/forward-auth", header: script, cookies: cookies}); resp.StatusCode != http.StatusForbidden ||
		!strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") || !strings.Contains(body, "bob may not open grafana.example.com") {
		t.Fatalf("a refused script: %d %q %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}

	resp, _ = h.do(req{path: "/api/authz/auth-request", header: http.Header{"X-Original-Url": {grafana}, "Accept": {"text/html"}}, cookies: cookies})
	page := resp.Header.Get("X-Gatehouse-Redirect")
	if resp.StatusCode != http.StatusForbidden || page != "https://auth.example.com/refused?rd="+url.QueryEscape(grafana) {
		t.Fatalf("a refused page load on the nginx endpoint: %d naming %q", resp.StatusCode, page)
	}
	path := strings.TrimPrefix(page, "https://auth.example.com")
	if resp, body := h.do(req{path: path, cookies: cookies}); resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "signed in as <strong>bob</strong>") ||
		!strings.Contains(body, `href="/static/style.css"`) || !strings.Contains(body, `href="/logout?rd=`) {
		t.Fatalf("the refusal page on Gatehouse: %d\n%s", resp.StatusCode, body)
	}
	if resp, _ := h.do(req{path: path}); resp.StatusCode != http.StatusFound || !strings.HasPrefix(resp.Header.Get("Location"), "/login?rd=") {
		t.Fatalf("the refusal page signed out: %d to %q, want the sign-in page", resp.StatusCode, resp.Header.Get("Location"))
	}
	for _, bad := range []string{"/refused", "/refused?rd=" + url.QueryEscape("https://evil.example.net/"), "/refused?rd=" + url.QueryEscape("https://app.example.com/%2e%2e/x")} {
		if resp, body := h.do(req{path: bad, cookies: cookies}); resp.StatusCode != http.StatusBadRequest || strings.Contains(body, "evil") {
			t.Errorf("%s: %d, want 400 without following it", bad, resp.StatusCode)
		}
	}
	// Let in since: the page sends the browser on instead of refusing it again.
	if err := h.app.Directory().AddMembers(context.Background(), "test", "Home Server Admins", []string{"bob"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "bob's new group to reach his session", func() bool {
		resp, _ := h.do(req{path: path, cookies: cookies})
		return resp.StatusCode == http.StatusFound && resp.Header.Get("Location") == grafana
	})
}
