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
	"strings"

	"github.com/gatehouse-id/gatehouse/internal/access"
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
	Host   string // lower case, without a trailing dot, with the port if the proxy sent one
	URI    string // path and query exactly as the client sent them, for the return URL
	// Path is URI's path exactly as the app will receive it (still %-encoded), checked
	// by access.CheckPath: rules match every reading of it (see access/path.go).
	Path string
}

// URL is the original request's full URL, where the user returns after logging in.
func (o Original) URL() string { return o.Scheme + "://" + o.Host + o.URI }

// HostName is Host without its port.
func (o Original) HostName() string { return hostName(o.Host) }

func hostName(h string) string {
	if strings.HasPrefix(h, "[") {
		if end := strings.Index(h, "]"); end > 0 {
			return h[1:end]
		}
		return h
	}
	if name, _, ok := strings.Cut(h, ":"); ok {
		return name
	}
	return h
}

// reasonMissing is HeaderError.Reason for a header the proxy did not send at all.
const reasonMissing = "is missing"

// HeaderError says which header the proxy must send (or send correctly).
type HeaderError struct {
	Header string
	Reason string
}

func (e *HeaderError) Error() string {
	return fmt.Sprintf("%s %s: configure the proxy to send it (see the Traefik, nginx and Caddy examples in Gatehouse's README)", e.Header, e.Reason)
}

// xOriginalURL is nginx's X-Original-URL in Go's canonical spelling: looked up in any
// other spelling, net/http would build the canonical key anew on every request.
const xOriginalURL = "X-Original-Url"

// header is h.Get(key) for a key already in canonical form, without net/http
// checking and canonicalising it again on every request.
func header(h http.Header, key string) string {
	if v := h[key]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// ParseOriginal reads the original request from r as the dialect describes it. A
// request whose path apps could read differently from Gatehouse is an
// *access.PathError; a header the proxy sent wrongly (or not at all) is a *HeaderError.
func ParseOriginal(r *http.Request, d Dialect) (Original, error) {
	var o Original
	uriHeader := "X-Forwarded-Uri"
	switch d {
	case AuthRequest:
		if raw := header(r.Header, xOriginalURL); raw != "" {
			uriHeader = "X-Original-URL"
			if len(raw) > maxURLBytes {
				return o, &HeaderError{"X-Original-URL", "is longer than 8 KiB"}
			}
			var err error
			if o.Scheme, o.Host, o.URI, err = splitAbsoluteURL(raw); err != nil {
				return o, &HeaderError{"X-Original-URL", err.Error()}
			}
			o.Method = firstNonEmpty(header(r.Header, "X-Original-Method"), header(r.Header, "X-Forwarded-Method"), http.MethodGet)
			break
		}
		o.Host = r.Host
		fallthrough
	case ForwardAuth:
		o.Scheme = header(r.Header, "X-Forwarded-Proto")
		if h := header(r.Header, "X-Forwarded-Host"); h != "" || d == ForwardAuth {
			o.Host = h
		}
		o.URI = header(r.Header, "X-Forwarded-Uri")
		o.Method = firstNonEmpty(header(r.Header, "X-Forwarded-Method"), header(r.Header, "X-Original-Method"), http.MethodGet)
		for _, h := range []struct{ name, val string }{{"X-Forwarded-Proto", o.Scheme}, {"X-Forwarded-Host", o.Host}, {"X-Forwarded-Uri", o.URI}} {
			if h.val == "" {
				if d == AuthRequest {
					return o, &HeaderError{"X-Original-URL (or X-Forwarded-Proto, X-Forwarded-Host and X-Forwarded-Uri)", reasonMissing}
				}
				return o, &HeaderError{h.name, reasonMissing}
			}
		}
	case ExtAuthz:
		o.Scheme = firstNonEmpty(header(r.Header, "X-Forwarded-Proto"), "https")
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
	if err := o.normalise(uriHeader); err != nil {
		return o, err
	}
	return o, sameHostEverywhere(r, o)
}

// OriginalOf reads an absolute URL as the original request of a browser's page load
// (GET), with the checks ParseOriginal makes: what `gatehouse access explain` decides
// on, so that it refuses what forward auth refuses and reads the path the same way.
func OriginalOf(rawURL string) (Original, error) {
	var o Original
	var err error
	if len(rawURL) > maxURLBytes {
		return o, fmt.Errorf("the URL is longer than 8 KiB")
	}
	if o.Scheme, o.Host, o.URI, err = splitAbsoluteURL(rawURL); err != nil {
		return o, fmt.Errorf("the URL %w (give it as https://host/path)", err)
	}
	o.Method = http.MethodGet
	if err := o.normalise("URL"); err != nil {
		return o, err
	}
	return o, nil
}

// splitAbsoluteURL splits scheme://host/target without re-encoding the target: the
// app receives the bytes the client sent, so the decision must be on those bytes.
func splitAbsoluteURL(raw string) (scheme, host, target string, err error) {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok || scheme == "" {
		return "", "", "", fmt.Errorf("%q is not an absolute URL", clip(raw))
	}
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	host, target = rest[:end], rest[end:]
	if strings.Contains(host, "@") {
		return "", "", "", errors.New("must not carry credentials")
	}
	if host == "" {
		return "", "", "", fmt.Errorf("%q is not an absolute URL", clip(raw))
	}
	if target == "" || target[0] == '?' {
		target = "/" + target
	}
	return scheme, host, target, nil
}

// sameHostEverywhere refuses a request whose headers name different hosts: a proxy
// routes on one of them and Gatehouse must decide on that one, so when a client added
// another (a second X-Forwarded-Host, an X-Original-URL beside it, an RFC 7239
// Forwarded host), nobody can tell which one the proxy routed on.
func sameHostEverywhere(r *http.Request, o Original) error {
	want := o.HostName()
	check := func(header, host string) error {
		if host == "" {
			return nil
		}
		if normaliseHost(hostName(strings.ToLower(strings.TrimSpace(host)))) != want {
			return &HeaderError{header, fmt.Sprintf("names the host %q but the request is for %q; refused, since the proxy may have routed on either", clip(host), want)}
		}
		return nil
	}
	forwardedHosts := r.Header["X-Forwarded-Host"]
	if len(forwardedHosts) > 1 || strings.Contains(strings.Join(forwardedHosts, ""), ",") {
		return &HeaderError{"X-Forwarded-Host", "has several values; refused, since the proxy may have routed on any of them"}
	}
	errs := []error{check("X-Forwarded-Host", header(r.Header, "X-Forwarded-Host"))}
	if raw := header(r.Header, xOriginalURL); raw != "" {
		_, host, _, err := splitAbsoluteURL(raw)
		if err != nil {
			return &HeaderError{"X-Original-URL", err.Error()}
		}
		errs = append(errs, check("X-Original-URL", host))
	}
	for _, f := range r.Header["Forwarded"] {
		for part := range strings.SplitSeq(f, ";") {
			for elem := range strings.SplitSeq(part, ",") {
				if k, v, ok := strings.Cut(strings.TrimSpace(elem), "="); ok && strings.EqualFold(k, "host") {
					errs = append(errs, check("Forwarded", strings.Trim(v, `"`)))
				}
			}
		}
	}
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// normaliseHost drops one trailing dot: "app.example.com." is the same DNS name, and
// proxies route it to the same server block.
func normaliseHost(h string) string {
	if len(h) > 1 && strings.HasSuffix(h, ".") {
		return h[:len(h)-1]
	}
	return h
}

func (o *Original) normalise(uriHeader string) error {
	o.Scheme = strings.ToLower(strings.TrimSpace(o.Scheme))
	if i := strings.IndexByte(o.Scheme, ','); i >= 0 { // "https,http" from chained proxies: the first hop
		o.Scheme = strings.TrimSpace(o.Scheme[:i])
	}
	switch o.Scheme { // Traefik names a websocket upgrade's scheme
	case "ws":
		o.Scheme = "http"
	case "wss":
		o.Scheme = "https"
	}
	if o.Scheme != "http" && o.Scheme != "https" {
		return &HeaderError{"X-Forwarded-Proto", fmt.Sprintf("is %q, not http or https", clip(o.Scheme))}
	}
	o.Host = strings.ToLower(strings.TrimSpace(o.Host))
	if name := hostName(o.Host); name != normaliseHost(name) {
		o.Host = strings.Replace(o.Host, name, normaliseHost(name), 1)
	}
	if err := checkHost(o.Host); err != nil {
		return &HeaderError{"X-Forwarded-Host", err.Error()}
	}
	if len(o.URI) > maxURLBytes {
		return &HeaderError{uriHeader, "is longer than 8 KiB"}
	}
	if !strings.HasPrefix(o.URI, "/") {
		return &HeaderError{uriHeader, fmt.Sprintf("%q does not start with \"/\"", clip(o.URI))}
	}
	if err := access.CheckPath(o.URI); err != nil {
		return err
	}
	for i := 0; i < len(o.URI); i++ {
		if c := o.URI[i]; c < 0x21 || c == 0x7f {
			return &HeaderError{uriHeader, "contains a space or control character"}
		}
	}
	if len(o.Method) > 32 || strings.IndexFunc(o.Method, func(r rune) bool { return r < 'A' || r > 'Z' }) >= 0 {
		return &HeaderError{"X-Forwarded-Method", fmt.Sprintf("%q is not an HTTP method", clip(o.Method))}
	}
	o.Path, _, _ = strings.Cut(o.URI, "?")
	return nil
}

// checkHost accepts name[:port] and [ipv6][:port] with sane characters only.
func checkHost(h string) error {
	if h == "" {
		return errors.New(reasonMissing)
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
