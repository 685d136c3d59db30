package config

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Validate checks every value and returns all problems at once, each naming its key.
func (c *Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}

	if _, port, err := net.SplitHostPort(c.Server.Address); err != nil || port == "" {
		bad("server.address", "%q is not host:port (for example \":9000\" or \"127.0.0.1:9000\")", c.Server.Address)
	}
	if c.Server.MetricsAddress != "" {
		if _, port, err := net.SplitHostPort(c.Server.MetricsAddress); err != nil || port == "" {
			bad("server.metrics_address", "%q is not host:port (for example \":9001\"), or empty for no metrics", c.Server.MetricsAddress)
		} else if c.Server.MetricsAddress == c.Server.Address {
			bad("server.metrics_address", "%q is server.address too: metrics need their own listener, which the proxy does not reach", c.Server.MetricsAddress)
		}
	}
	if c.Server.DebugAddress != "" {
		if _, port, err := net.SplitHostPort(c.Server.DebugAddress); err != nil || port == "" {
			bad("server.debug_address", "%q is not host:port (for example \"127.0.0.1:6060\")", c.Server.DebugAddress)
		}
	}
	pub, err := url.Parse(c.Server.PublicURL)
	switch {
	case err != nil || (pub.Scheme != "http" && pub.Scheme != "https") || pub.Host == "":
		bad("server.public_url", "%q is not an absolute http:// or https:// URL", c.Server.PublicURL)
	case pub.Path != "" && pub.Path != "/" || pub.RawQuery != "" || pub.Fragment != "" || pub.User != nil:
		bad("server.public_url", "%q must be just scheme://host[:port], with no path, query or credentials", c.Server.PublicURL)
	}
	if c.Server.Secret != "" && len(c.Server.Secret) < 32 {
		bad("server.secret", "is %d characters long; use at least 32 random characters (openssl rand -hex 32)", len(c.Server.Secret))
	}
	for i, d := range c.Server.RedirectDomains {
		if err := CheckDomain(strings.TrimPrefix(d, ".")); err != nil {
			bad(fmt.Sprintf("server.redirect_domains[%d]", i), "%v", err)
		}
	}

	for i, cidr := range c.Server.TrustedProxies {
		_, errPrefix := netip.ParsePrefix(cidr)
		_, errAddr := netip.ParseAddr(cidr)
		if errPrefix != nil && errAddr != nil {
			bad(fmt.Sprintf("server.trusted_proxies[%d]", i), "%q is neither an address (10.0.0.5) nor a network (10.0.0.0/24) of a proxy", cidr)
		}
	}

	if len(c.Branding.Name) > 40 {
		bad("branding.name", "is %d characters long; keep it to 40", len(c.Branding.Name))
	}
	if u, err := url.Parse(c.Branding.Logo); c.Branding.Logo != "" && (err != nil || u.Scheme != "https" || u.Host == "") {
		bad("branding.logo", "%q is not an https:// URL of an image, or empty", c.Branding.Logo)
	}
	if a := c.Branding.Accent; a != "" {
		if ratio, ok := ContrastWithWhite(a); !ok {
			bad("branding.accent", "%q is not a color written #rrggbb (for example #2458c4)", a)
		} else if ratio < 4.5 {
			bad("branding.accent", "%s gives white text on it a contrast of %.1f:1; pick a darker color (at least 4.5:1, as #2458c4 gives 6.4:1)", a, ratio)
		}
	}

	names := map[string]bool{}
	for i, a := range c.Apps {
		key := fmt.Sprintf("apps[%d]", i)
		switch {
		case strings.TrimSpace(a.Name) == "" || len(a.Name) > 64:
			bad(key+".name", "give the app a name of 1 to 64 characters")
		case names[strings.ToLower(a.Name)]:
			bad(key+".name", "%q is listed twice; give each app its own name", a.Name)
		}
		names[strings.ToLower(a.Name)] = true
		if u, err := url.Parse(a.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
			bad(key+".url", "%q is not an absolute http:// or https:// URL (for example https://photos.example.com/)", a.URL)
		}
		if u, err := url.Parse(a.Icon); a.Icon != "" && (err != nil || u.Scheme != "https" || u.Host == "") {
			bad(key+".icon", "%q is not an https:// URL of an image, or empty", a.Icon)
		}
		if len(a.Description) > 200 {
			bad(key+".description", "is %d characters long; keep it to one line of at most 200", len(a.Description))
		}
	}

	c.validateWebhooks(bad)
	c.validateProviders(bad)
	c.SMTP.validate(bad)
	c.SignUp.validate(bad)

	if path, ok := c.SQLitePath(); ok {
		if path == "" {
			bad("database.url", "sqlite: needs a file path, for example sqlite:./gatehouse-data/gatehouse.db")
		}
	} else if !strings.HasPrefix(c.Database.URL, "postgres://") && !strings.HasPrefix(c.Database.URL, "postgresql://") {
		bad("database.url", "must start with sqlite: or postgres:// (got %q)", redact(c.Database.URL))
	}
	if d := c.Database.RequestTimeout.D(); d < 10*time.Millisecond || d > time.Minute {
		bad("database.request_timeout", "%s is outside 10ms to 1m", c.Database.RequestTimeout)
	}
	if c.Database.KeepAuditEvents < 1000 {
		bad("database.keep_audit_events", "keep at least 1000 events (got %d)", c.Database.KeepAuditEvents)
	}
	if c.Database.MaxOpenConns < 1 {
		bad("database.max_open_conns", "must be at least 1 (got %d)", c.Database.MaxOpenConns)
	}
	for key, d := range map[string]Duration{"database.conn_max_idle_time": c.Database.ConnMaxIdleTime, "database.conn_max_lifetime": c.Database.ConnMaxLifetime,
		"database.outage_grace": c.Database.OutageGrace, "database.unready_after": c.Database.UnreadyAfter,
		"server.drain_time": c.Server.DrainTime, "server.shutdown_delay": c.Server.ShutdownDelay} {
		if d < 0 {
			bad(key, "%s is negative", d)
		}
	}

	if c.Session.CookieName == "" || strings.IndexFunc(c.Session.CookieName, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-')
	}) >= 0 {
		bad("session.cookie_name", "%q may only use letters, digits, \"_\" and \"-\"", c.Session.CookieName)
	}
	if d := strings.TrimPrefix(c.Session.CookieDomain, "."); d != "" {
		if err := CheckDomain(d); err != nil {
			bad("session.cookie_domain", "%v", err)
		} else if pub != nil && !HostUnder(strings.ToLower(pub.Hostname()), d) {
			bad("session.cookie_domain", "%q does not contain the public_url host %q: browsers would refuse the login cookie", d, pub.Hostname())
		}
	}
	if lt := c.Session.Lifetime.D(); lt < time.Minute || lt > 366*24*time.Hour {
		bad("session.lifetime", "%s is outside 1m to 366d", c.Session.Lifetime)
	}

	if len(c.Access.AdminGroups) == 0 {
		bad("access.admin_groups", "name at least one admin group, so that the owner can never be locked out")
	}
	for i, g := range c.Access.AdminGroups {
		if err := CheckGroupName(g); err != nil {
			bad(fmt.Sprintf("access.admin_groups[%d]", i), "%v", err)
		}
	}
	for i, r := range c.Access.Rules {
		CheckRule(r, fmt.Sprintf("access.rules[%d]", i), bad)
	}
	c.Access.Kubernetes.validate(bad)

	declared := map[string]string{}
	for i, g := range c.Groups {
		key := fmt.Sprintf("groups[%d]", i)
		if err := CheckGroupName(g.Name); err != nil {
			bad(key+".name", "%v", err)
		}
		if _, dup := declared[g.Name]; dup {
			bad(key+".name", "group %q is declared twice", g.Name)
		}
		declared[g.Name] = g.Parent
	}
	for i, g := range c.Groups {
		if g.Parent == "" {
			continue
		}
		if _, ok := declared[g.Parent]; !ok {
			bad(fmt.Sprintf("groups[%d].parent", i), "%q is not a declared group: declare it under groups too", g.Parent)
			continue
		}
		seen := map[string]bool{g.Name: true}
		for p := g.Parent; p != ""; p = declared[p] {
			if seen[p] {
				bad(fmt.Sprintf("groups[%d].parent", i), "group %q is its own ancestor", g.Name)
				break
			}
			seen[p] = true
		}
	}

	errs = append(errs, c.OIDC.validate()...)

	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level", "%q is not one of debug, info, warn, error", c.Log.Level)
	}
	if c.Log.Format != "json" && c.Log.Format != "text" {
		bad("log.format", "%q is not json or text", c.Log.Format)
	}
	return errors.Join(errs...)
}

// HostUnder reports whether host is domain or a subdomain of it (both lower case).
func HostUnder(host, domain string) bool {
	return host == domain || strings.HasSuffix(host, "."+domain)
}

// redact hides a password in a URL before it reaches an error message or a log.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	if _, has := u.User.Password(); has {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}

// CheckRule checks one access rule, wherever it was written (key names it: the config
// file's access.rules[2], or a Kubernetes object's annotation), and calls bad for
// each problem.
func CheckRule(r Rule, key string, bad func(key, format string, args ...any)) {
	if len(r.Hosts) == 0 {
		bad(key+".hosts", "a rule needs at least one host")
	}
	for j, h := range r.Hosts {
		if err := CheckHostPattern(h); err != nil {
			bad(fmt.Sprintf("%s.hosts[%d]", key, j), "%v", err)
		}
	}
	for j, p := range r.Paths {
		if err := CheckRulePath(p); err != nil {
			bad(fmt.Sprintf("%s.paths[%d]", key, j), "%q %v", p, err)
		}
	}
	for j, g := range r.Groups {
		if err := CheckGroupName(g); err != nil {
			bad(fmt.Sprintf("%s.groups[%d]", key, j), "%v", err)
		}
	}
	n := 0
	for _, set := range []bool{len(r.Groups) > 0, r.Public, r.Deny} {
		if set {
			n++
		}
	}
	if n != 1 {
		bad(key, "say exactly one of groups: [...], public: true or deny: true (a rule that names no group would open its hosts to nobody or to everybody by accident)")
	}
	if r.TwoFactor && len(r.Groups) == 0 {
		bad(key+".two_factor", "goes with groups: [...] (a public or deny rule asks nobody to sign in)")
	}
	if r.AllowAppPasswords && len(r.Groups) == 0 {
		bad(key+".allow_app_passwords", "goes with groups: [...] (a public rule needs no password, and a deny rule lets none pass)")
	}
	if r.AllowAppPasswords && r.TwoFactor {
		bad(key+".allow_app_passwords", "cannot go with two_factor: true: an app password is one factor; split the hosts into two rules")
	}
}

// OutsideCookieDomain reports whether a host pattern lies outside session.cookie_domain
// (empty: no domain, nothing is outside), so that the sign-in cookie never reaches it.
func OutsideCookieDomain(pattern, cookieDomain string) bool {
	domain := strings.ToLower(strings.TrimPrefix(cookieDomain, "."))
	host := strings.ToLower(strings.TrimPrefix(pattern, "*."))
	return domain != "" && host != domain && !strings.HasSuffix(host, "."+domain)
}

// CheckRulePath accepts a path prefix written as a browser's address bar shows it:
// decoded, without a query, parameters, dot segments or repeated slashes. Requests are
// matched in every reading an app may give them (access/path.go), so a rule written
// in one encoded form would match only some of them.
func CheckRulePath(p string) error {
	switch {
	case !strings.HasPrefix(p, "/"):
		return errors.New(`must start with "/"`)
	case strings.Contains(p, "//"):
		return errors.New(`must not contain "//"`)
	case strings.ContainsAny(p, "%;?#\\"):
		return errors.New(`must not contain "%", ";", "?", "#" or "\\": write the path decoded, as the address bar shows it, without parameters or a query`)
	case strings.IndexFunc(p, func(r rune) bool { return r < ' ' || r == 0x7f }) >= 0:
		return errors.New("must not contain control characters")
	}
	for _, seg := range strings.Split(p[1:], "/") {
		if seg == "." || seg == ".." {
			return errors.New(`must not contain "." or ".." segments`)
		}
	}
	return nil
}

// ContrastWithWhite is the WCAG contrast ratio of white against the color #rrggbb, and
// whether hex is such a color.
func ContrastWithWhite(hex string) (float64, bool) {
	if len(hex) != 7 || hex[0] != '#' {
		return 0, false
	}
	var rgb [3]float64
	for i := range rgb {
		v, err := strconv.ParseUint(hex[1+2*i:3+2*i], 16, 8)
		if err != nil {
			return 0, false
		}
		c := float64(v) / 255
		if c <= 0.04045 {
			rgb[i] = c / 12.92
		} else {
			rgb[i] = math.Pow((c+0.055)/1.055, 2.4)
		}
	}
	luminance := 0.2126*rgb[0] + 0.7152*rgb[1] + 0.0722*rgb[2]
	return 1.05 / (luminance + 0.05), true
}
