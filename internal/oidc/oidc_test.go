package oidc

import (
	"net/url"
	"strings"
	"testing"

	"github.com/gatehouse-id/gatehouse/internal/config"
	"github.com/gatehouse-id/gatehouse/internal/session"
)

func TestPKCE(t *testing.T) {
	// RFC 7636 appendix B.
	if !pkceMatches("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk") {
		t.Fatal("the RFC's example does not match")
	}
	for _, v := range []string{"", "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXj", "short", strings.Repeat("a", 129)} {
		if pkceMatches("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", v) {
			t.Errorf("verifier %q matched", v)
		}
	}
}

func TestRedirectMatching(t *testing.T) {
	c := &config.Client{RedirectURIs: []string{"https://app.example.com/cb", "http://127.0.0.1/callback", "http://localhost:8000", "com.example.app:/oauth"}}
	for uri, want := range map[string]bool{
		"https://app.example.com/cb":       true,
		"https://app.example.com/cb/":      false,
		"https://app.example.com/cb?x=1":   false,
		"https://APP.example.com/cb":       false,
		"http://app.example.com/cb":        false,
		"https://app.example.com.evil/cb":  false,
		"http://127.0.0.1/callback":        true,
		"http://127.0.0.1:51234/callback":  true, // any port on loopback (RFC 8252)
		"http://127.0.0.1:51234/other":     false,
		"http://[::1]:51234/callback":      false, // another host than registered
		"https://127.0.0.1:51234/callback": false,
		"http://localhost:18000":           true,
		"http://localhost.evil.com:8000":   false,
		"com.example.app:/oauth":           true,
		"com.example.app:/oauth2":          false,
		"":                                 false,
	} {
		if got := redirectAllowed(c, uri); got != want {
			t.Errorf("redirectAllowed(%q) = %v, want %v", uri, got, want)
		}
	}
}

func TestUserCodes(t *testing.T) {
	seen := map[string]bool{}
	for range 200 {
		c := newUserCode()
		if len(c) != 9 || c[4] != '-' || normalUserCode(c) != strings.ReplaceAll(c, "-", "") {
			t.Fatalf("user code %q", c)
		}
		seen[c] = true
	}
	if len(seen) < 199 {
		t.Fatalf("only %d distinct codes in 200", len(seen))
	}
	if normalUserCode(" wdjb mjht ") != "WDJBMJHT" || normalUserCode("wdjb-mjht") != "WDJBMJHT" {
		t.Fatal("typed codes are not normalised")
	}
}

func TestConsentCovers(t *testing.T) {
	if !covers("openid email groups", []string{"openid", "email"}) || covers("openid", []string{"openid", "email"}) || covers("", nil) {
		t.Fatal("covers")
	}
}

// FuzzRedirectAllowed: whatever an app sends as redirect_uri, Gatehouse redirects only
// to a registered address, or to the same loopback host and path on another port.
func FuzzRedirectAllowed(f *testing.F) {
	for _, s := range []string{"https://app.example.com/cb", "http://127.0.0.1:1/cb", "http://localhost:8000", "http://127.0.0.1@evil.com/cb",
		"http://127.0.0.1:80@evil.com/cb", "http://evil.com#@127.0.0.1/cb", "http:/\\/127.0.0.1/cb", "javascript:alert(1)//127.0.0.1"} {
		f.Add(s)
	}
	c := &config.Client{RedirectURIs: []string{"https://app.example.com/cb", "http://127.0.0.1/cb", "http://localhost:8000"}}
	f.Fuzz(func(t *testing.T, uri string) {
		if !redirectAllowed(c, uri) {
			return
		}
		for _, r := range c.RedirectURIs {
			if r == uri {
				return
			}
		}
		u, err := url.Parse(uri)
		if err != nil || u.Scheme != "http" || u.User != nil || (u.Hostname() != "127.0.0.1" && !strings.EqualFold(u.Hostname(), "localhost")) {
			t.Fatalf("%q was accepted as a redirect", uri)
		}
	})
}

func TestAMR(t *testing.T) {
	for method, want := range map[string]string{
		"password": "pwd", "setup": "pwd", "password+totp": "pwd otp mfa", "password+recovery": "pwd mfa",
		"passkey+verified": "hwk mfa", "password+passkey": "pwd mfa",
	} {
		p := &session.Principal{Method: method, TwoFactor: session.TwoFactorMethod(method)}
		if got := strings.Join(amrOf(p), " "); got != want {
			t.Errorf("amr of %q = %q, want %q", method, got, want)
		}
	}
}
