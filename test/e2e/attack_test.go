package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// spoofedIdentity is what a client sends to pass as an admin: every identity header
// Gatehouse owns, in both dialects.
var spoofedIdentity = http.Header{
	"Remote-User": {"root"}, "Remote-Groups": {"admins"}, "Remote-Email": {"root@example.com"}, "Remote-Name": {"Root"},
	"X-Authentik-Username": {"root"}, "X-Authentik-Groups": {"admins"}, "X-Authentik-Email": {"root@example.com"},
	"X-Authentik-Name": {"Root"}, "X-Authentik-Uid": {"0"},
}

// appAnswer is what testdata/express-app.js says about a request it served.
type appAnswer struct {
	Route    string            `json:"route"`
	Host     string            `json:"host"`
	URL      string            `json:"url"`
	Identity map[string]string `json:"identity"`
}

func appAnswerOf(t *testing.T, resp *http.Response, body string) appAnswer {
	t.Helper()
	var a appAnswer
	if resp.StatusCode != http.StatusOK || json.Unmarshal([]byte(body), &a) != nil {
		t.Fatalf("the app did not answer: %d %q", resp.StatusCode, body)
	}
	return a
}

// attack is one request a client crafts to reach a private part of an app, sent as raw
// bytes so that nothing between the test and the proxy tidies it up.
type attack struct {
	class  string // the class of the issue it belongs to
	host   string // the Host header
	target string // the request target, exactly as sent
	header string // extra header lines
}

// Each class of way around a rule, in several variants. The hosts are protectedSite's:
// app.example.com (Express; /api/ public, the rest private), www.example.com (Express;
// /admin private, the rest public), files.example.com (FileServer; /public/ public,
// private/secret.txt private).
var attacks = func() []attack {
	var list []attack
	add := func(class, host string, targets ...string) {
		for _, target := range targets {
			list = append(list, attack{class: class, host: host, target: target})
		}
	}
	add("encoded dot segments into a private route", "app.example.com",
		"/photos/%2e%2e/api/x", "/photos/%2E%2E/api/x", "/photos/.%2e/api/x", "/photos/%2e./api/x", "/api/%2e%2e/photos/1",
		"/photos/%252e%252e/api/x", "/photos/1/%2e%2e/%2e%2e/api/x")
	add("encoded slashes and backslashes", "app.example.com",
		"/api%2f..%2fphotos/1", "/api/..%2fphotos/1", "/api/..%5cphotos/1", "/api%5c..%5cphotos/1", "/photos%2f1")
	add("raw dot segments and backslashes", "app.example.com",
		"/api/../photos/1", "/api/./../photos/1", "/api/x/../../photos/1", "/api\\..\\photos\\1")
	add("a raw # in the target", "app.example.com", "/photos/1#/../../api/x", "/api/x#/../../photos/1")
	add("encoded letters around a public prefix", "app.example.com", "/%61pi/x", "/%41PI/x", "/a%70i/x")
	add("path parameters (Tomcat, Spring)", "app.example.com", "/api;x/../photos/1", "/photos;/1", "/photos/..;/api/x")
	add("control bytes and invalid UTF-8", "app.example.com", "/photos/1%00", "/photos/%0d%0a1", "/photos/%c3", "/photos/%ff")
	add("letter case of a protected folder", "www.example.com", "/ADMIN", "/Admin/users", "/aDmIn", "/%41DMIN", "/%61dmin")
	add("parameters and slashes on a protected folder", "www.example.com", "/admin;x", "/admin;jsessionid=1/users", "/admin%3bx",
		"//admin", "/admin//", "/x/../admin", "/public/..;/admin", "/x/%2e%2e/admin", "/./admin", "/admin#")
	add("FileServer path cleaning", "files.example.com",
		"/public/%2e%2e/private/secret.txt", "/public/..%2fprivate/secret.txt", "/public/..%5cprivate/secret.txt",
		"/public/x#/../../private/secret.txt", "/public/../private/secret.txt", "/public/%252e%252e/private/secret.txt",
		"/public//../private/secret.txt", "/PUBLIC/../private/secret.txt", "/public/..;/private/secret.txt",
		"/public/.%2e/private/secret.txt", "/public/\\../private/secret.txt", "/public/%2e%2e%2fprivate%2fsecret.txt")
	// The proxy routes on the request line's host; the decision must be about it.
	for _, target := range []string{"http://app.example.com/photos/1", "http://files.example.com/private/secret.txt", "http://www.example.com/admin"} {
		list = append(list, attack{class: "absolute-form request line, other Host", host: "www.example.com", target: target})
	}
	for _, h := range []string{"X-Forwarded-Host: www.example.com", "X-Original-URL: http://www.example.com/", "Forwarded: host=www.example.com",
		"X-Forwarded-Uri: /api/x", "X-Original-URI: /api/x", "X-Forwarded-Proto: ws"} {
		list = append(list, attack{class: "client-sent forwarding headers", host: "app.example.com", target: "/photos/1", header: h})
	}
	return list
}()

// attackProxy sends every attack, anonymous and with spoofed identity headers, and
// checks that none reaches a private route or a private file, and that no client-sent
// identity header ever reaches an app. Control requests prove the setup answers at
// all: the public parts serve, the private parts ask for a login.
func attackProxy(t *testing.T, proxyPort int) {
	t.Helper()
	controls := []struct {
		host, target string
		wantStatus   int
		wantRoute    string
	}{
		{"app.example.com", "/api/x", 200, "api"},
		{"app.example.com", "/photos/1", 302, ""},
		{"www.example.com", "/", 200, "catch-all"},
		{"www.example.com", "/admin", 302, ""},
		{"files.example.com", "/public/index.txt", 200, "file"},
		{"files.example.com", "/private/secret.txt", 302, ""},
	}
	for _, c := range controls {
		status, body := rawRequest(t, proxyPort, attack{host: c.host, target: c.target})
		if status != c.wantStatus {
			t.Fatalf("control %s%s: %d %q, want %d", c.host, c.target, status, body, c.wantStatus)
		}
		if c.wantRoute == "file" && !strings.Contains(body, "public file") {
			t.Fatalf("control %s%s: %q, want the public file", c.host, c.target, body)
		}
		if c.wantRoute != "" && c.wantRoute != "file" {
			checkPublicAnswer(t, c.host+c.target, body, c.wantRoute)
		}
	}
	// Metrics have their own listener: the proxy publishes Gatehouse's pages, not them.
	if status, body := rawRequest(t, proxyPort, attack{host: "auth.example.com", target: "/metrics"}); status != http.StatusNotFound || strings.Contains(body, "gatehouse_") {
		t.Errorf("/metrics through the proxy: %d, want 404", status)
	}
	refused := 0
	for _, a := range attacks {
		status, body := rawRequest(t, proxyPort, a)
		what := fmt.Sprintf("%s: %s %s (Host %s) %s", a.class, "GET", a.target, a.host, a.header)
		if strings.Contains(body, "SECRET") {
			t.Errorf("%s: an anonymous request read the private file (%d)", what, status)
			continue
		}
		if status/100 != 2 {
			if status == http.StatusBadRequest || status == http.StatusForbidden {
				refused++ // Gatehouse's refusal: 400, or 403 through nginx
			}
			if status >= 500 {
				t.Errorf("%s: %d; a refused target must not look like a server failure", what, status)
			}
			continue
		}
		var got appAnswer
		if json.Unmarshal([]byte(body), &got) != nil {
			if !strings.Contains(body, "public file") {
				t.Errorf("%s: %d with an answer from nobody known: %q", what, status, clip(body))
			}
			continue
		}
		private := got.Route == "photos" || got.Route == "admin" || (got.Route == "catch-all" && !strings.HasPrefix(got.Host, "www."))
		if private {
			t.Errorf("%s: an anonymous request reached the app's private %q route at %q on %s", what, got.Route, got.URL, got.Host)
		}
		checkNoSpoofedIdentity(t, what, got)
	}
	if refused == 0 {
		t.Errorf("no attack was refused: the refusals (400 from Gatehouse, 403 through nginx) are what keeps these out")
	}
}

// checkPublicAnswer: a public route answered, and every identity header is empty or
// absent although the client sent its own.
func checkPublicAnswer(t *testing.T, what, body, route string) {
	t.Helper()
	var got appAnswer
	if err := json.Unmarshal([]byte(body), &got); err != nil || got.Route != route {
		t.Fatalf("%s: %q, want the app's %q route", what, body, route)
	}
	checkNoSpoofedIdentity(t, what, got)
}

func checkNoSpoofedIdentity(t *testing.T, what string, got appAnswer) {
	t.Helper()
	for k, v := range got.Identity {
		if v != "" {
			t.Errorf("%s: the app received %s %q from an anonymous client", what, k, v)
		}
	}
}

// rawRequest sends one GET as raw bytes (the target untouched, spoofed identity
// headers included) and returns the status and body.
func rawRequest(t *testing.T, proxyPort int, a attack) (int, string) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", proxyPort), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	var b strings.Builder
	fmt.Fprintf(&b, "GET %s HTTP/1.1\r\nHost: %s:%d\r\nAccept: text/html\r\nConnection: close\r\n", a.target, a.host, proxyPort)
	for k, vs := range spoofedIdentity {
		fmt.Fprintf(&b, "%s: %s\r\n", k, vs[0])
	}
	// The same headers spelled with "_", which CGI-style apps read as the same.
	b.WriteString("Remote_User: root\r\nRemote_Groups: admins\r\nX-authentik_username: root\r\nX-authentik_groups: admins\r\n")
	if a.header != "" {
		if strings.HasPrefix(a.header, "X-Original-URL:") || strings.HasPrefix(a.header, "X-Forwarded-Host:") || strings.HasPrefix(a.header, "Forwarded:") {
			a.header = strings.Replace(a.header, "www.example.com", fmt.Sprintf("www.example.com:%d", proxyPort), 1)
		}
		b.WriteString(a.header + "\r\n")
	}
	b.WriteString("\r\n")
	if strings.HasPrefix(a.target, "http://") {
		u, _ := url.Parse(a.target)
		raw := strings.Replace(b.String(), "GET "+a.target, fmt.Sprintf("GET http://%s:%d%s", u.Hostname(), proxyPort, u.RequestURI()), 1)
		b.Reset()
		b.WriteString(raw)
	}
	if _, err := io.WriteString(conn, b.String()); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return 0, "no HTTP answer: " + err.Error() // the proxy hung up on it: nothing was served
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func clip(s string) string {
	if len(s) > 200 {
		return s[:200] + "…"
	}
	return s
}
