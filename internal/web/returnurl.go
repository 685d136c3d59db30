package web

import (
	"net/url"
	"strings"

	"github.com/gatehouse-id/gatehouse/internal/config"
)

// maxReturnURL bounds the rd parameter.
const maxReturnURL = 4096

// SafeReturnURL decides whether a post-login return URL (rd) may be followed, and
// returns it re-serialised so that what is checked is exactly what the browser gets.
// Accepted: a path on Gatehouse itself ("/x", never "//x" or "/\x"), or an absolute
// http(s) URL whose host is one of domains or under one. Everything else — other sites,
// javascript:, credentials in the URL, backslashes, control characters, encoded
// tricks that parse differently in browsers — is refused.
func SafeReturnURL(raw string, domains []string) (string, bool) {
	if raw == "" || len(raw) > maxReturnURL || strings.ContainsAny(raw, "\\") {
		return "", false
	}
	for i := 0; i < len(raw); i++ {
		if raw[i] <= 0x20 || raw[i] == 0x7f {
			return "", false
		}
	}
	u, err := url.Parse(raw)
	if err != nil || u.User != nil || u.Opaque != "" {
		return "", false
	}
	if u.Scheme == "" && u.Host == "" {
		if !strings.HasPrefix(raw, "/") || strings.HasPrefix(raw, "//") {
			return "", false
		}
		// Judge what the browser gets: a path whose encoded slash survives only in the
		// raw form ("/%2Fevil.com" beside a byte that makes Go drop the raw form) comes
		// out as "//evil.com", which a browser reads as another host.
		out := u.RequestURI() + fragment(u)
		if strings.HasPrefix(out, "//") || strings.HasPrefix(out, "/\\") {
			return "", false
		}
		return out, true
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return "", false
	}
	host := strings.ToLower(u.Hostname())
	if host == "" || strings.HasSuffix(host, ".") {
		return "", false
	}
	for _, d := range domains {
		if d != "" && config.HostUnder(host, d) {
			return u.String(), true
		}
	}
	return "", false
}

func fragment(u *url.URL) string {
	if u.Fragment == "" {
		return ""
	}
	return "#" + u.EscapedFragment()
}
