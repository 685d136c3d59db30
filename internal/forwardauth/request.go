// Package forwardauth answers the proxies — Traefik, Caddy, nginx, Envoy — that ask
// "may this request pass?" before every request to a protected app. Each proxy describes
// the original request its own way (a dialect); this package turns that description
// into an access.Request, asks the one decision function in package access, and answers
// in the status codes and identity headers the proxy and the app expect.
package forwardauth

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"path"
	"strings"
)

// Dialect is how a proxy describes the original request.
type Dialect int

// The dialects Gatehouse speaks.
const (
	// ForwardAuth is Traefik's ForwardAuth and Caddy's forward_auth: X-Forwarded-Proto,
	// X-Forwarded-Host, X-Forwarded-Uri and X-Forwarded-Method headers.
	ForwardAuth Dialect = iota
	// AuthRequest is nginx's auth_request: X-Original-URL, or the X-Forwarded-* set.
	// It answers 401 instead of 302 (nginx cannot pass a redirect through), with the
	// login URL in Location for `auth_request_set`.
	AuthRequest
	// ExtAuthz is Envoy's ext_authz HTTP service: the original path follows the
	// endpoint's prefix, the original Host and method are the request's own.
	ExtAuthz
)

// The paths under which Envoy appends the original path: Gatehouse's own and the
// Authentik outpost's, for configs written for Authentik.
const (
	ExtAuthzPrefix          = "/api/authz/ext-authz"
	AuthentikExtAuthzPrefix = "/outpost.goauthentik.io/auth/envoy"
)

// maxURLBytes bounds what a proxy may send as the original URL.
const maxURLBytes = 8192

// Original is the request a proxy asks about.
type Original struct {
	Method string
	Scheme string
	Host   string // lower case, with the port if the proxy sent one
	URI    string // path and query as sent, for the return URL
	// Path is URI's path decoded and cleaned ("/a/../b" → "/b", "%2e%2e" decoded,
	// "\" read as "/"): what rules match against, so encodings cannot dodge a rule.
	Path string
}

// URL is the original request's full URL, where the user returns after logging in.
func (o Original) URL() string { return o.Scheme + "://" + o.Host + o.URI }

// HostName is Host without its port.
func (o Original) HostName() string {
	if h, _, ok := strings.Cut(o.Host, ":"); ok && !strings.HasPrefix(o.Host, "[") {
		return h
	}
	if strings.HasPrefix(o.Host, "[") {
		if end := strings.Index(o.Host, "]"); end > 0 {
			return o.Host[1:end]
		}
	}
	return o.Host
}

// HeaderError says which header the proxy must send (or send correctly).
type HeaderError struct {
	Header string
	Reason string
}

func (e *HeaderError) Error() string {
	return fmt.Sprintf("%s %s: configure the proxy to send it (see the Traefik, nginx and Caddy examples in Gatehouse's README)", e.Header, e.Reason)
}

// ParseOriginal reads the original request from r as the dialect describes it.
func ParseOriginal(r *http.Request, d Dialect) (Original, error) {
	var o Original
	switch d {
	case AuthRequest:
		if raw := r.Header.Get("X-Original-URL"); raw != "" {
			if len(raw) > maxURLBytes {
				return o, &HeaderError{"X-Original-URL", "is longer than 8 KiB"}
			}
			u, err := url.Parse(raw)
			if err != nil || u.Host == "" || u.Scheme == "" {
				return o, &HeaderError{"X-Original-URL", fmt.Sprintf("%q is not an absolute URL", clip(raw))}
			}
			o.Scheme, o.Host, o.URI = u.Scheme, u.Host, u.RequestURI()
			if u.User != nil {
				return o, &HeaderError{"X-Original-URL", "must not carry credentials"}
			}
			o.Method = firstNonEmpty(r.Header.Get("X-Original-Method"), r.Header.Get("X-Forwarded-Method"), http.MethodGet)
			if err := o.normalise(); err != nil {
				var he *HeaderError
				if errors.As(err, &he) && he.Header != "X-Forwarded-Method" {
					he.Header = "X-Original-URL"
				}
				return o, err
			}
			return o, nil
		}
		fallthrough
	case ForwardAuth:
		o.Scheme = r.Header.Get("X-Forwarded-Proto")
		o.Host = r.Header.Get("X-Forwarded-Host")
		o.URI = r.Header.Get("X-Forwarded-Uri")
		o.Method = firstNonEmpty(r.Header.Get("X-Forwarded-Method"), r.Header.Get("X-Original-Method"), http.MethodGet)
		if o.Host == "" && d == AuthRequest {
			o.Host = r.Host
		}
		for _, h := range []struct{ name, val string }{{"X-Forwarded-Proto", o.Scheme}, {"X-Forwarded-Host", o.Host}, {"X-Forwarded-Uri", o.URI}} {
			if h.val == "" {
				if d == AuthRequest {
					return o, &HeaderError{"X-Original-URL (or X-Forwarded-Proto, X-Forwarded-Host and X-Forwarded-Uri)", "is missing"}
				}
				return o, &HeaderError{h.name, "is missing"}
			}
		}
	case ExtAuthz:
		o.Scheme = firstNonEmpty(r.Header.Get("X-Forwarded-Proto"), "https")
		o.Host = r.Host
		o.URI = r.URL.RequestURI()
		for _, prefix := range []string{ExtAuthzPrefix, AuthentikExtAuthzPrefix} {
			if rest, ok := strings.CutPrefix(o.URI, prefix); ok {
				o.URI = rest
				break
			}
		}
		if o.URI == "" || o.URI[0] == '?' {
			o.URI = "/" + o.URI
		}
		o.Method = r.Method
	}
	return o, o.normalise()
}

func (o *Original) normalise() error {
	o.Scheme = strings.ToLower(strings.TrimSpace(o.Scheme))
	if i := strings.IndexByte(o.Scheme, ','); i >= 0 { // "https,http" from chained proxies: the first hop
		o.Scheme = strings.TrimSpace(o.Scheme[:i])
	}
	if o.Scheme != "http" && o.Scheme != "https" {
		return &HeaderError{"X-Forwarded-Proto", fmt.Sprintf("is %q, not http or https", clip(o.Scheme))}
	}
	o.Host = strings.ToLower(strings.TrimSpace(o.Host))
	if err := checkHost(o.Host); err != nil {
		return &HeaderError{"X-Forwarded-Host", err.Error()}
	}
	if len(o.URI) > maxURLBytes {
		return &HeaderError{"X-Forwarded-Uri", "is longer than 8 KiB"}
	}
	if !strings.HasPrefix(o.URI, "/") || strings.HasPrefix(o.URI, "//") {
		return &HeaderError{"X-Forwarded-Uri", fmt.Sprintf("%q does not start with a single \"/\"", clip(o.URI))}
	}
	for i := 0; i < len(o.URI); i++ {
		if c := o.URI[i]; c < 0x21 || c == 0x7f {
			return &HeaderError{"X-Forwarded-Uri", "contains a space or control character"}
		}
	}
	if len(o.Method) > 32 || strings.IndexFunc(o.Method, func(r rune) bool { return r < 'A' || r > 'Z' }) >= 0 {
		return &HeaderError{"X-Forwarded-Method", fmt.Sprintf("%q is not an HTTP method", clip(o.Method))}
	}
	p, err := CleanPath(o.URI)
	if err != nil {
		return &HeaderError{"X-Forwarded-Uri", err.Error()}
	}
	o.Path = p
	return nil
}

// CleanPath decodes and cleans the path part of a request URI for rule matching.
func CleanPath(uri string) (string, error) {
	raw, _, _ := strings.Cut(uri, "?")
	raw, _, _ = strings.Cut(raw, "#")
	dec, err := url.PathUnescape(raw)
	if err != nil {
		return "", errors.New("has an invalid %-escape")
	}
	if strings.ContainsAny(dec, "\x00") {
		return "", errors.New("contains a NUL byte")
	}
	dec = strings.ReplaceAll(dec, "\\", "/")
	clean := path.Clean("/" + dec)
	if strings.HasSuffix(dec, "/") && clean != "/" {
		clean += "/"
	}
	return clean, nil
}

// checkHost accepts name[:port] and [ipv6][:port] with sane characters only.
func checkHost(h string) error {
	if h == "" {
		return errors.New("is missing")
	}
	if len(h) > 261 {
		return errors.New("is too long")
	}
	name, port := h, ""
	if strings.HasPrefix(h, "[") {
		end := strings.Index(h, "]")
		if end < 0 {
			return fmt.Errorf("%q is not a host name", clip(h))
		}
		name, port = h[1:end], strings.TrimPrefix(h[end+1:], ":")
		if h[end+1:] != "" && !strings.HasPrefix(h[end+1:], ":") {
			return fmt.Errorf("%q is not a host name", clip(h))
		}
		for _, c := range name {
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c == ':' || c == '.') {
				return fmt.Errorf("%q is not a host name", clip(h))
			}
		}
	} else {
		if i := strings.LastIndexByte(h, ':'); i >= 0 {
			name, port = h[:i], h[i+1:]
		}
		if name == "" {
			return fmt.Errorf("%q is not a host name", clip(h))
		}
		for _, c := range name {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_') {
				return fmt.Errorf("%q is not a host name", clip(h))
			}
		}
	}
	if strings.Contains(h, ":") && !strings.HasPrefix(h, "[") || strings.Contains(h, "]:") {
		if port == "" || len(port) > 5 || strings.IndexFunc(port, func(r rune) bool { return r < '0' || r > '9' }) >= 0 {
			return fmt.Errorf("%q has an invalid port", clip(h))
		}
	}
	return nil
}

func firstNonEmpty(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}

// clip shortens hostile input before it is echoed in an error.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
