package server

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func TestLoginRejectsBadInputClearly(t *testing.T) {
	h := start(t, testConfig(backends[0].url(t)))
	h.addUser("alice", "Allow Login Users")
	token, csrf := h.formToken("/login")
	post := func(form url.Values, cookies ...*http.Cookie) (*http.Response, string) {
		if form.Get("csrf_token") == "" {
			form.Set("csrf_token", token)
		}
		return h.do(req{path: "/login", form: form, cookies: cookies})
	}
	tests := []struct {
		name    string
		form    url.Values
		cookies []*http.Cookie
		status  int
		says    string
	}{
		{"wrong password", url.Values{"username": {"alice"}, "password": {"nope nope"}}, []*http.Cookie{csrf}, 401, "Wrong username or password"},
		{"unknown user", url.Values{"username": {"mallory"}, "password": {"whatever1"}}, []*http.Cookie{csrf}, 401, "Wrong username or password"},
		{"empty fields", url.Values{"username": {""}, "password": {""}}, []*http.Cookie{csrf}, 400, "Enter your username and password"},
		{"control characters in the username", url.Values{"username": {"ali\x00ce\r\n"}, "password": {"whatever1"}}, []*http.Cookie{csrf}, 401, "Wrong username or password"},
		{"10 MB password", url.Values{"username": {"alice"}, "password": {strings.Repeat("p", 10<<20)}}, []*http.Cookie{csrf}, 413, "Passwords are limited"},
		{"no CSRF cookie", url.Values{"username": {"alice"}, "password": {"correct horse alice"}}, nil, 403, "expired"},
		{"forged CSRF token", url.Values{"username": {"alice"}, "password": {"correct horse alice"}, "csrf_token": {"AAAA"}}, []*http.Cookie{csrf}, 403, "expired"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := post(tc.form, tc.cookies...)
			if resp.StatusCode != tc.status || !strings.Contains(body, tc.says) {
				t.Fatalf("%d, want %d saying %q:\n%s", resp.StatusCode, tc.status, tc.says, body)
			}
			if cookieNamed(resp, "gatehouse_session") != nil {
				t.Fatal("a failed login set a session cookie")
			}
			if strings.Contains(body, "goroutine") || strings.Contains(body, "\x00") {
				t.Fatal("the error page leaks a stack trace or echoes control characters")
			}
		})
	}
}

func TestLoginNeverRedirectsOffSite(t *testing.T) {
	h := start(t, testConfig(backends[0].url(t)))
	h.addUser("alice", "Allow Login Users")
	hostile := []string{
		"https://evil.com/", "//evil.com", "///evil.com", "/\\evil.com", "\\\\evil.com", "javascript:alert(1)",
		"JaVaScRiPt:alert(1)", "data:text/html,hi", "https://example.com.evil.com/", "https://evilexample.com/",
		"https://app.example.com@evil.com/", "https://evil.com\\@app.example.com/", "https:evil.com",
		"https://evil.com%2F@app.example.com", "http://[::1]:80/", "https://app.example.com\t.evil.com/",
		"/%0d%0aLocation:https://evil.com", "https://evil.com#@app.example.com", "ftp://app.example.com/",
		"https://app.example.com./", " https://evil.com",
	}
	for _, rd := range hostile {
		t.Run(rd, func(t *testing.T) {
			resp, _ := h.login("alice", "correct horse alice", rd)
			loc := resp.Header.Get("Location")
			if resp.StatusCode != http.StatusSeeOther {
				t.Fatalf("login: %d", resp.StatusCode)
			}
			if loc != "/" && !strings.HasPrefix(loc, "/%") {
				u, err := url.Parse(loc)
				if err != nil || u.Host != "" || strings.HasPrefix(loc, "//") {
					t.Fatalf("rd %q led to Location %q", rd, loc)
				}
			}
		})
	}
	for _, rd := range []string{"https://app.example.com/x?y=1", "https://auth.example.com/", "/after"} {
		if resp, _ := h.login("alice", "correct horse alice", rd); resp.Header.Get("Location") != rd {
			t.Errorf("allowed rd %q became %q", rd, resp.Header.Get("Location"))
		}
	}
}

func TestOversizedCookieIsAnonymous(t *testing.T) {
	h := start(t, testConfig(backends[0].url(t)))
	big := &http.Cookie{Name: "gatehouse_session", Value: strings.Repeat("A", 16<<10)}
	if resp, _ := h.do(req{path: "/api/authz/forward-auth", header: traefik("https://app.example.com/"), cookies: []*http.Cookie{big}}); resp.StatusCode != http.StatusFound {
		t.Fatalf("16 KiB cookie: %d, want 302 to login", resp.StatusCode)
	}
	huge := &http.Cookie{Name: "gatehouse_session", Value: strings.Repeat("A", 100<<10)}
	if resp, _ := h.do(req{path: "/api/authz/forward-auth", header: traefik("https://app.example.com/"), cookies: []*http.Cookie{huge}}); resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("100 KiB cookie: %d, want 431", resp.StatusCode)
	}
}

func TestHealthAndMetrics(t *testing.T) {
	cfg := testConfig(backends[0].url(t))
	cfg.Database.UnreadyAfter = 0 // unready as soon as the database fails
	h := start(t, cfg)
	for _, p := range []string{"/-/health/live/", "/-/health/ready/"} {
		if resp, _ := h.do(req{path: p}); resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d", p, resp.StatusCode)
		}
	}
	h.do(req{path: "/api/authz/forward-auth", header: traefik("https://app.example.com/")})
	h.login("nobody", "wrong password", "")
	body := h.metrics()
	// Not on the public listener, which the README's proxy configs put on the internet.
	if resp, _ := h.do(req{path: "/metrics"}); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("/metrics on the public listener: %d, want 404", resp.StatusCode)
	}
	for _, want := range []string{
		`gatehouse_forward_auth_decisions_total{result="login"} 1`,
		`gatehouse_login_attempts_total{result="failure"} 1`,
		"gatehouse_forward_auth_decision_duration_seconds_bucket",
		"gatehouse_sessions_active ",
		"gatehouse_database_queries_total ",
		"gatehouse_change_feed_position ",
		`gatehouse_http_requests_total{code="302",route="/api/authz/forward-auth"} 1`,
		"process_resident_memory_bytes",
		"go_sql_open_connections{db_name=\"gatehouse\"}",
		"go_sql_wait_duration_seconds_total{db_name=\"gatehouse\"}",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	h.app.Store.Close()
	if resp, body := h.do(req{path: "/-/health/ready/"}); resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, "not ready") {
		t.Fatalf("ready with the database closed: %d %q", resp.StatusCode, body)
	}
	if resp, _ := h.do(req{path: "/-/health/live/"}); resp.StatusCode != http.StatusOK {
		t.Fatal("liveness must not depend on the database")
	}
}
