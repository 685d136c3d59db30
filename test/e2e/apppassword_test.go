package e2e

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// appPasswordsThroughProxy makes an app password with the CLI, as a person setting up
// a calendar app would, and uses it through the proxy on the README's snippet: it
// passes as Basic and Bearer (also for WebDAV's own methods) on the host that accepts
// app passwords, with the identity headers the proxy sets, never the client's; a
// client without credentials gets 401 and a Basic challenge it can answer, while a
// browser is still sent to the login page; elsewhere, or wrong, or once revoked, it
// opens nothing.
func appPasswordsThroughProxy(t *testing.T, proxyPort int, dir string, env []string) {
	t.Helper()
	secret := strings.TrimSpace(ok(t, dir, env, "", "app-password", "create", "alice", "phone calendar", "--host", "dav.example.com"))
	dav := fmt.Sprintf("http://dav.example.com:%d/calendars/alice/", proxyPort)
	app := fmt.Sprintf("http://app.example.com:%d/photos/1", proxyPort)
	b := newBrowser(t, proxyPort)
	client := func(method, url, authorization string, extra ...string) (*http.Response, string) {
		h := http.Header{"Accept": {"*/*"}}
		if authorization != "" {
			h.Set("Authorization", authorization)
		}
		for i := 0; i+1 < len(extra); i += 2 {
			h.Set(extra[i], extra[i+1])
		}
		return b.do(method, url, nil, h)
	}

	resp, body := client(http.MethodGet, dav, basic("alice", secret), "Remote-User", "root")
	var seen struct {
		Identity map[string]string `json:"identity"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal([]byte(body), &seen) != nil || seen.Identity["remote-user"] != "alice" {
		t.Fatalf("Basic app password through the proxy: %d %s", resp.StatusCode, body)
	}
	if resp, body := client(http.MethodGet, dav, "Bearer "+secret); resp.StatusCode != http.StatusOK || !strings.Contains(body, `"remote-user":"alice"`) {
		t.Fatalf("Bearer app password through the proxy: %d %s", resp.StatusCode, body)
	}
	// Express has no PROPFIND route (404): what matters is that forward auth let it by.
	if resp, _ := client("PROPFIND", dav, basic("alice", secret), "Depth", "1"); resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
		t.Fatalf("PROPFIND with the app password: %d", resp.StatusCode)
	}
	resp, _ = client(http.MethodGet, dav, "")
	if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("Www-Authenticate"), "Basic ") {
		t.Fatalf("no credentials, not a browser: %d, WWW-Authenticate %q; want 401 with a Basic challenge", resp.StatusCode, resp.Header.Values("Www-Authenticate"))
	}
	if challenges := strings.Join(resp.Header.Values("Www-Authenticate"), "\n"); strings.Count(challenges, "Basic ") != 1 {
		t.Fatalf("the proxy repeats or drops the Basic challenge: %q", challenges)
	}
	if resp, _ := b.get(dav); resp.StatusCode != http.StatusFound || !strings.Contains(resp.Header.Get("Location"), "/login?rd=") {
		t.Fatalf("a browser on the app-password host: %d to %q, want 302 to the login page", resp.StatusCode, resp.Header.Get("Location"))
	}
	for what, c := range map[string]struct{ url, authorization string }{
		"a wrong app password":                     {dav, basic("alice", secret[:len(secret)-2]+"zz")},
		"another person's name":                    {dav, basic("bob", secret)},
		"a host whose rule takes no app passwords": {app, basic("alice", secret)},
	} {
		if resp, body := client(http.MethodGet, c.url, c.authorization); resp.StatusCode != http.StatusUnauthorized || strings.Contains(body, "alice") {
			t.Errorf("%s: %d %s, want 401", what, resp.StatusCode, body)
		}
	}

	ok(t, dir, env, "", "app-password", "revoke", "alice", "phone calendar")
	waitFor(t, 10*time.Second, "the revoked app password to be refused", func() bool {
		resp, _ := client(http.MethodGet, dav, basic("alice", secret))
		return resp.StatusCode == http.StatusUnauthorized
	})
}

func basic(user, password string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+password))
}
