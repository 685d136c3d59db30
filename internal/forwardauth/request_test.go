package forwardauth

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestParseOriginal(t *testing.T) {
	tests := []struct {
		name    string
		dialect Dialect
		target  string
		header  map[string]string
		want    Original
		wantErr string
	}{
		{"traefik", ForwardAuth, "/api/authz/forward-auth",
			map[string]string{"X-Forwarded-Proto": "https", "X-Forwarded-Host": "App.Example.com", "X-Forwarded-Uri": "/a/b?c=d", "X-Forwarded-Method": "POST"},
			Original{Method: "POST", Scheme: "https", Host: "app.example.com", URI: "/a/b?c=d", Path: "/a/b"}, ""},
		{"method defaults to GET", ForwardAuth, "/",
			map[string]string{"X-Forwarded-Proto": "http", "X-Forwarded-Host": "a.example.com:8443", "X-Forwarded-Uri": "/"},
			Original{Method: "GET", Scheme: "http", Host: "a.example.com:8443", URI: "/", Path: "/"}, ""},
		{"chained proxies send a list of schemes", ForwardAuth, "/",
			map[string]string{"X-Forwarded-Proto": "https, http", "X-Forwarded-Host": "a.example.com", "X-Forwarded-Uri": "/"},
			Original{Method: "GET", Scheme: "https", Host: "a.example.com", URI: "/", Path: "/"}, ""},
		{"dot segments are cleaned for matching", ForwardAuth, "/",
			map[string]string{"X-Forwarded-Proto": "https", "X-Forwarded-Host": "a.example.com", "X-Forwarded-Uri": "/api/../admin/"},
			Original{Method: "GET", Scheme: "https", Host: "a.example.com", URI: "/api/../admin/", Path: "/admin/"}, ""},
		{"encoded dot segments and backslashes too", ForwardAuth, "/",
			map[string]string{"X-Forwarded-Proto": "https", "X-Forwarded-Host": "a.example.com", "X-Forwarded-Uri": "/api/%2e%2e%5cadmin"},
			Original{Method: "GET", Scheme: "https", Host: "a.example.com", URI: "/api/%2e%2e%5cadmin", Path: "/admin"}, ""},
		{"nginx X-Original-URL", AuthRequest, "/api/authz/auth-request",
			map[string]string{"X-Original-URL": "https://a.example.com/x?y=1", "X-Original-Method": "DELETE"},
			Original{Method: "DELETE", Scheme: "https", Host: "a.example.com", URI: "/x?y=1", Path: "/x"}, ""},
		{"nginx with forwarded headers", AuthRequest, "/api/authz/auth-request",
			map[string]string{"X-Forwarded-Proto": "https", "X-Forwarded-Host": "a.example.com", "X-Forwarded-Uri": "/x"},
			Original{Method: "GET", Scheme: "https", Host: "a.example.com", URI: "/x", Path: "/x"}, ""},
		{"envoy", ExtAuthz, "/api/authz/ext-authz/photos/1?x=2", map[string]string{"X-Forwarded-Proto": "https"},
			Original{Method: "GET", Scheme: "https", Host: "example.org", URI: "/photos/1?x=2", Path: "/photos/1"}, ""},
		{"envoy root", ExtAuthz, "/api/authz/ext-authz", nil,
			Original{Method: "GET", Scheme: "https", Host: "example.org", URI: "/", Path: "/"}, ""},
		{"ipv6 host", ForwardAuth, "/",
			map[string]string{"X-Forwarded-Proto": "https", "X-Forwarded-Host": "[2001:db8::1]:443", "X-Forwarded-Uri": "/"},
			Original{Method: "GET", Scheme: "https", Host: "[2001:db8::1]:443", URI: "/", Path: "/"}, ""},

		{"missing proto", ForwardAuth, "/", map[string]string{"X-Forwarded-Host": "a", "X-Forwarded-Uri": "/"}, Original{}, "X-Forwarded-Proto is missing"},
		{"uri without slash", ForwardAuth, "/", map[string]string{"X-Forwarded-Proto": "https", "X-Forwarded-Host": "a", "X-Forwarded-Uri": "x"}, Original{}, "X-Forwarded-Uri"},
		{"protocol-relative uri", ForwardAuth, "/", map[string]string{"X-Forwarded-Proto": "https", "X-Forwarded-Host": "a", "X-Forwarded-Uri": "//evil.com/"}, Original{}, "X-Forwarded-Uri"},
		{"host with a path", ForwardAuth, "/", map[string]string{"X-Forwarded-Proto": "https", "X-Forwarded-Host": "a/b", "X-Forwarded-Uri": "/"}, Original{}, "X-Forwarded-Host"},
		{"host with a bad port", ForwardAuth, "/", map[string]string{"X-Forwarded-Proto": "https", "X-Forwarded-Host": "a:99999x", "X-Forwarded-Uri": "/"}, Original{}, "invalid port"},
		{"host with userinfo", ForwardAuth, "/", map[string]string{"X-Forwarded-Proto": "https", "X-Forwarded-Host": "user@a", "X-Forwarded-Uri": "/"}, Original{}, "X-Forwarded-Host"},
		{"NUL in the path", ForwardAuth, "/", map[string]string{"X-Forwarded-Proto": "https", "X-Forwarded-Host": "a", "X-Forwarded-Uri": "/a%00b"}, Original{}, "NUL"},
		{"lower-case method", ForwardAuth, "/", map[string]string{"X-Forwarded-Proto": "https", "X-Forwarded-Host": "a", "X-Forwarded-Uri": "/", "X-Forwarded-Method": "get"}, Original{}, "X-Forwarded-Method"},
		{"nginx URL with credentials", AuthRequest, "/", map[string]string{"X-Original-URL": "https://u:p@a.example.com/"}, Original{}, "credentials"},
		{"nginx javascript URL", AuthRequest, "/", map[string]string{"X-Original-URL": "javascript:alert(1)"}, Original{}, "X-Original-URL"},
		{"oversized uri", ForwardAuth, "/", map[string]string{"X-Forwarded-Proto": "https", "X-Forwarded-Host": "a", "X-Forwarded-Uri": "/" + strings.Repeat("a", 9000)}, Original{}, "8 KiB"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "http://example.org"+tc.target, nil)
			for k, v := range tc.header {
				r.Header.Set(k, v)
			}
			got, err := ParseOriginal(r, tc.dialect)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one naming %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

// FuzzForwardedRequest feeds arbitrary proxy headers to the parser: it must never
// panic, and whatever it accepts must be safe to match rules on and to send back as
// a return URL.
func FuzzForwardedRequest(f *testing.F) {
	f.Add("https", "app.example.com", "/a/b?c=d", "GET", "https://a.example.com/x")
	f.Add("http", "[::1]:80", "/%2e%2e/x", "POST", "")
	f.Add("https,http", "a.example.com:443", "/a\\..\\b", "", "http://[::1]/")
	f.Add("", "", "", "", "//evil.com")
	f.Fuzz(func(t *testing.T, proto, host, uri, method, original string) {
		for _, d := range []Dialect{ForwardAuth, AuthRequest} {
			r := httptest.NewRequest(http.MethodGet, "http://gatehouse/api/authz/forward-auth", nil)
			r.Header.Set("X-Forwarded-Proto", proto)
			r.Header.Set("X-Forwarded-Host", host)
			r.Header.Set("X-Forwarded-Uri", uri)
			r.Header.Set("X-Forwarded-Method", method)
			if d == AuthRequest {
				r.Header.Set("X-Original-URL", original)
			}
			o, err := ParseOriginal(r, d)
			if err != nil {
				var he *HeaderError
				if !asHeaderError(err, &he) || he.Header == "" {
					t.Fatalf("error %v does not name a header", err)
				}
				continue
			}
			if o.Scheme != "http" && o.Scheme != "https" {
				t.Fatalf("accepted scheme %q", o.Scheme)
			}
			if !strings.HasPrefix(o.Path, "/") || strings.Contains(o.Path, "/../") || strings.Contains(o.Path, "\\") || strings.HasSuffix(o.Path, "/..") {
				t.Fatalf("uncleaned path %q from %q", o.Path, o.URI)
			}
			if !strings.HasPrefix(o.URI, "/") || strings.HasPrefix(o.URI, "//") || strings.ContainsAny(o.URI, " \r\n\t") {
				t.Fatalf("unsafe URI %q", o.URI)
			}
			if strings.ContainsAny(o.Host, "/@?# \r\n\\") || o.Host != strings.ToLower(o.Host) {
				t.Fatalf("unsafe host %q", o.Host)
			}
		}
	})
}

func asHeaderError(err error, target **HeaderError) bool {
	he, ok := err.(*HeaderError)
	*target = he
	return ok
}

func TestCookieValues(t *testing.T) {
	h := http.Header{"Cookie": {"a=1; gatehouse_session=first;x=y", "gatehouse_session=second", "gatehouse_sessionx=no; =; gatehouse_session"}}
	var got []string
	for v := range CookieValues(h, "gatehouse_session") {
		got = append(got, v)
	}
	if strings.Join(got, ",") != "first,second" {
		t.Fatalf("cookie values = %q", got)
	}
	for range CookieValues(h, "gatehouse_session") {
		break // stopping early must not panic
	}
}
