package forwardauth

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gatehouse-id/gatehouse/internal/access"
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
		{"the path stays as the app receives it", ForwardAuth, "/",
			map[string]string{"X-Forwarded-Proto": "https", "X-Forwarded-Host": "a.example.com", "X-Forwarded-Uri": "/caf%C3%A9;v=1//x?q=../y"},
			Original{Method: "GET", Scheme: "https", Host: "a.example.com", URI: "/caf%C3%A9;v=1//x?q=../y", Path: "/caf%C3%A9;v=1//x"}, ""},
		{"websocket schemes from Traefik", ForwardAuth, "/",
			map[string]string{"X-Forwarded-Proto": "wss", "X-Forwarded-Host": "a.example.com", "X-Forwarded-Uri": "/socket"},
			Original{Method: "GET", Scheme: "https", Host: "a.example.com", URI: "/socket", Path: "/socket"}, ""},
		{"plain websocket", ForwardAuth, "/",
			map[string]string{"X-Forwarded-Proto": "ws", "X-Forwarded-Host": "a.example.com", "X-Forwarded-Uri": "/socket"},
			Original{Method: "GET", Scheme: "http", Host: "a.example.com", URI: "/socket", Path: "/socket"}, ""},
		{"a trailing dot names the same host", ForwardAuth, "/",
			map[string]string{"X-Forwarded-Proto": "https", "X-Forwarded-Host": "A.example.com.:8443", "X-Forwarded-Uri": "/"},
			Original{Method: "GET", Scheme: "https", Host: "a.example.com:8443", URI: "/", Path: "/"}, ""},
		{"nginx X-Original-URL is not re-encoded", AuthRequest, "/api/authz/auth-request",
			map[string]string{"X-Original-URL": "https://a.example.com/caf\u00e9?x=%zz", "X-Forwarded-Host": "a.example.com"},
			Original{Method: "GET", Scheme: "https", Host: "a.example.com", URI: "/caf\u00e9?x=%zz", Path: "/caf\u00e9"}, ""},
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
		{"protocol-relative uri", ForwardAuth, "/", map[string]string{"X-Forwarded-Proto": "https", "X-Forwarded-Host": "a", "X-Forwarded-Uri": "//evil.com/"}, Original{}, `starts with "//"`},
		{"host with a path", ForwardAuth, "/", map[string]string{"X-Forwarded-Proto": "https", "X-Forwarded-Host": "a/b", "X-Forwarded-Uri": "/"}, Original{}, "X-Forwarded-Host"},
		{"host with a bad port", ForwardAuth, "/", map[string]string{"X-Forwarded-Proto": "https", "X-Forwarded-Host": "a:99999x", "X-Forwarded-Uri": "/"}, Original{}, "invalid port"},
		{"host with userinfo", ForwardAuth, "/", map[string]string{"X-Forwarded-Proto": "https", "X-Forwarded-Host": "user@a", "X-Forwarded-Uri": "/"}, Original{}, "X-Forwarded-Host"},
		{"NUL in the path", ForwardAuth, "/", map[string]string{"X-Forwarded-Proto": "https", "X-Forwarded-Host": "a", "X-Forwarded-Uri": "/a%00b"}, Original{}, "encoded control character (%00)"},
		{"dot segments", ForwardAuth, "/", map[string]string{"X-Forwarded-Proto": "https", "X-Forwarded-Host": "a", "X-Forwarded-Uri": "/api/../admin/"}, Original{}, `dot segment ("..")`},
		{"encoded dots", ForwardAuth, "/", map[string]string{"X-Forwarded-Proto": "https", "X-Forwarded-Host": "a", "X-Forwarded-Uri": "/photos/%2e%2e/api/x"}, Original{}, `encoded "." (%2e)`},
		{"raw # in the target", ForwardAuth, "/", map[string]string{"X-Forwarded-Proto": "https", "X-Forwarded-Host": "a", "X-Forwarded-Uri": "/api/x#/../../admin"}, Original{}, `raw "#"`},
		{"raw # in nginx's URL", AuthRequest, "/", map[string]string{"X-Original-URL": "https://a.example.com/api/#/../admin"}, Original{}, `raw "#"`},
		{"two X-Forwarded-Host values", ForwardAuth, "/", map[string]string{"X-Forwarded-Proto": "https", "X-Forwarded-Host": "public.example.com, app.example.com", "X-Forwarded-Uri": "/"}, Original{}, "is not a host name"},
		{"X-Original-URL beside another X-Forwarded-Host", AuthRequest, "/", map[string]string{"X-Original-URL": "https://app.example.com/admin", "X-Forwarded-Host": "public.example.com"}, Original{}, `names the host "public.example.com"`},
		{"Forwarded host beside X-Forwarded-Host", ForwardAuth, "/", map[string]string{"X-Forwarded-Proto": "https", "X-Forwarded-Host": "app.example.com", "X-Forwarded-Uri": "/", "Forwarded": `for=1.2.3.4;host="public.example.com"`}, Original{}, "Forwarded names the host"},
		{"envoy Host beside X-Forwarded-Host", ExtAuthz, "/api/authz/ext-authz/x", map[string]string{"X-Forwarded-Host": "public.example.com"}, Original{}, "X-Forwarded-Host names the host"},
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

// A client that adds its own X-Forwarded-Host line beside the proxy's cannot choose
// which one Gatehouse decides on.
func TestTwoForwardedHostLines(t *testing.T) {
	r := httptest.NewRequest(http.MethodGet, "http://gatehouse/api/authz/forward-auth", nil)
	r.Header["X-Forwarded-Host"] = []string{"public.example.com", "app.example.com"}
	r.Header.Set("X-Forwarded-Proto", "https")
	r.Header.Set("X-Forwarded-Uri", "/admin")
	if _, err := ParseOriginal(r, ForwardAuth); err == nil || !strings.Contains(err.Error(), "several values") {
		t.Fatalf("two X-Forwarded-Host lines: %v", err)
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
				var pe *access.PathError
				if !errors.As(err, &pe) && (!errors.As(err, &he) || he.Header == "") {
					t.Fatalf("error %v neither names a header nor refuses the path", err)
				}
				continue
			}
			if access.CheckPath(o.URI) != nil || o.Path != strings.SplitN(o.URI, "?", 2)[0] {
				t.Fatalf("accepted path %q of %q", o.Path, o.URI)
			}
			if o.Scheme != "http" && o.Scheme != "https" {
				t.Fatalf("accepted scheme %q", o.Scheme)
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

// FuzzOriginalOf: the URL `gatehouse access explain` and the refusal page decide on
// is read exactly as nginx's X-Original-URL is (the same request, or the same
// refusal), so an explanation can never be about another reading of the URL than the
// check's.
func FuzzOriginalOf(f *testing.F) {
	for _, seed := range []string{"https://app.example.com/a/b?c=d", "http://[::1]:8080/%2e%2e/x", "https://a.example.com", "https://A.Example.COM./x",
		"https://user@app.example.com/", "app.example.com/x", "https://app.example.com/a\\b", "ws://app.example.com/socket", "https://app.example.com/a;b/../c"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		got, err := OriginalOf(raw)
		r := httptest.NewRequest(http.MethodGet, "http://gatehouse/api/authz/auth-request", nil)
		r.Header.Set("X-Original-URL", raw)
		want, wantErr := ParseOriginal(r, AuthRequest)
		if raw == "" || strings.ContainsAny(raw, "\r\n\x00") { // not a header value nginx can send
			return
		}
		switch {
		case (err == nil) != (wantErr == nil):
			t.Fatalf("%q: explain reads it with error %v, forward auth with %v", raw, err, wantErr)
		case err == nil && got != want:
			t.Fatalf("%q: explain reads %+v, forward auth %+v", raw, got, want)
		}
	})
}
