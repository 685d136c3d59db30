package web

import (
	"net/url"
	"strings"
	"testing"

	"github.com/gatehouse-id/gatehouse/internal/config"
)

var domains = []string{"auth.example.com", "example.com"}

func TestSafeReturnURL(t *testing.T) {
	ok := map[string]string{
		"https://app.example.com/x?y=1#z":     "https://app.example.com/x?y=1#z",
		"http://example.com/":                 "http://example.com/",
		"https://a.b.example.com:8443/p":      "https://a.b.example.com:8443/p",
		"https://APP.Example.COM/":            "https://APP.Example.COM/",
		"/account":                            "/account",
		"/a?b=c":                              "/a?b=c",
		"https://app.example.com/%2F%2Fevil/": "https://app.example.com/%2F%2Fevil/",
	}
	for in, want := range ok {
		if got, accepted := SafeReturnURL(in, domains); !accepted || got != want {
			t.Errorf("SafeReturnURL(%q) = %q, %v; want %q, true", in, got, accepted, want)
		}
	}
	refused := []string{
		"", "https://evil.com/", "//evil.com", "///evil.com", "/\\evil.com", "\\\\evil.com", "javascript:alert(1)",
		"JAVASCRIPT:alert(1)", "data:text/html,x", "vbscript:x", "https://example.com.evil.com/", "https://notexample.com/",
		"https://app.example.com@evil.com/", "https://u:p@app.example.com/", "https://evil.com\\@app.example.com/",
		"https:evil.com", "https:/evil.com", "http://[::1]/", "https://app.example.com\t.evil.com/", "https://app.example.com./",
		" /x", "/x y", "ftp://app.example.com/", "https:///app.example.com", "//app.example.com/",
		"https://" + strings.Repeat("a", 5000) + ".example.com/", "https://evil.com%23.example.com/", "\x00https://app.example.com",
		"/%2Fevil.com/\x8e", "/%2Fm%20e\x8e/8me//8m%20e\x8e/_lhtt\xf0t/8m%20", // the fuzzer's find: re-encoded as //evil.com
	}
	for _, in := range refused {
		if got, accepted := SafeReturnURL(in, domains); accepted {
			t.Errorf("SafeReturnURL(%q) accepted as %q", in, got)
		}
	}
}

// FuzzReturnURL checks that no input is accepted unless a browser following it would
// stay on Gatehouse or go to a host under a configured domain.
func FuzzReturnURL(f *testing.F) {
	for _, s := range []string{"https://app.example.com/x", "//evil.com", "/\\evil.com", "javascript:alert(1)", "/ok", "https://a@b/", "http://example.com:80/%2e"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		got, ok := SafeReturnURL(raw, domains)
		if !ok {
			return
		}
		if strings.ContainsAny(got, "\\\r\n\t\x00 ") || strings.HasPrefix(got, "//") {
			t.Fatalf("accepted %q as %q", raw, got)
		}
		u, err := url.Parse(got)
		if err != nil {
			t.Fatalf("accepted %q as unparsable %q", raw, got)
		}
		if u.Host == "" {
			if u.Scheme != "" || !strings.HasPrefix(got, "/") {
				t.Fatalf("accepted %q as %q", raw, got)
			}
			return
		}
		host := strings.ToLower(u.Hostname())
		if (u.Scheme != "http" && u.Scheme != "https") || u.User != nil || !(config.HostUnder(host, "example.com") || config.HostUnder(host, "auth.example.com")) {
			t.Fatalf("accepted %q leading to %q", raw, got)
		}
	})
}
