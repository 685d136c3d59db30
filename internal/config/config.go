// Package config owns Gatehouse's configuration: the model of the YAML file, its
// defaults, GATEHOUSE_* environment overrides and *_FILE secrets, strict validation
// (an unknown key or a bad value is an error naming it), the generated reference in the
// README, and live reloading.
//
// Infrastructure objects — access rules, declared groups — are code: they live here and
// nowhere else. Users, memberships and sessions are data and live in the store.
package config

import (
	"fmt"
	"net/url"
	"strings"
	"time"
)

// Config is the whole configuration file. Each field's doc tag is its entry in the
// README's config reference, which a test keeps in step with this model.
type Config struct {
	Server         Server          `yaml:"server"`
	Database       Database        `yaml:"database"`
	Session        Session         `yaml:"session"`
	Access         Access          `yaml:"access"`
	Groups         []GroupDecl     `yaml:"groups" doc:"Groups declared as code: created at start and on reload, read-only for the CLI. Groups may also be created as data with 'gatehouse group add'."`
	OIDC           OIDC            `yaml:"oidc"`
	Branding       Branding        `yaml:"branding"`
	Apps           []App           `yaml:"apps" doc:"The apps listed on Gatehouse's home page, each shown only to the people its rules let through (decided as forward auth decides a visit to its url). Empty: the hosts of the rules that cover a whole host, without wildcards."`
	SignUp         SignUp          `yaml:"signup"`
	SMTP           SMTP            `yaml:"smtp" doc:"The mail server Gatehouse sends through: invitations pinned to an address, password resets, address confirmations and \"new sign-in\" notices. Without a host no mail is sent, and the same links are shown to admins to pass on."`
	LoginProviders []LoginProvider `yaml:"login_providers" doc:"Other identity providers people may sign in with, a button each on the sign-in page in this order. A provider's account signs in to the Gatehouse account it is linked to: linked by its owner from the account page, by an invitation, or (opt-in) by a verified email."`
	Webhooks       []Webhook       `yaml:"webhooks" doc:"Where Gatehouse posts its events as they happen (people created, disabled or deleted, memberships, credentials, sign-ins from new devices, refusals): one replica delivers each event once, retried while the receiver is down; the admin page Webhooks shows every delivery."`
	Log            Log             `yaml:"log"`
}

// Branding is how Gatehouse's pages present themselves.
type Branding struct {
	Name   string `yaml:"name" doc:"The name the pages show (titles, the line above each heading). Empty: Gatehouse."`
	Logo   string `yaml:"logo" doc:"An https:// URL of an image shown beside the name; empty: none."`
	Accent string `yaml:"accent" doc:"The color of buttons and links, as #rrggbb; it must keep white text on it readable (4.5:1, WCAG AA). Empty: Gatehouse's blue."`
}

// App is one entry of the home page's list of apps.
type App struct {
	Name        string `yaml:"name" doc:"What the list calls it."`
	URL         string `yaml:"url" doc:"Where it opens: an absolute http:// or https:// URL, decided on as a browser's visit."`
	Icon        string `yaml:"icon" doc:"An https:// URL of a square image shown beside the name; empty: none."`
	Description string `yaml:"description" doc:"One line under the name; empty: none."`
}

// Server is where Gatehouse listens and how it is reached.
type Server struct {
	Address         string   `yaml:"address" doc:"Address to listen on, host:port."`
	PublicURL       string   `yaml:"public_url" doc:"Base URL of Gatehouse's own pages as browsers reach them; login redirects point here. https:// makes cookies Secure. Left unset it follows server.address (http://localhost:PORT)."`
	Secret          string   `yaml:"secret" secret:"true" doc:"The server key (at least 32 characters): it seals signing keys and authenticator-app secrets and signs what pages carry. Required with PostgreSQL, the same for every replica (GATEHOUSE_SERVER_SECRET_FILE from a Secret). Empty with SQLite: a key file gatehouse.key is made beside the database at first start; back it up with the database."`
	RedirectDomains []string `yaml:"redirect_domains" doc:"Extra domains a post-login return URL (rd) may point into, besides session.cookie_domain and the public_url host. Subdomains are included."`
	DrainTime       Duration `yaml:"drain_time" doc:"On SIGTERM, how long in-flight requests get to finish before Gatehouse exits."`
	ShutdownDelay   Duration `yaml:"shutdown_delay" doc:"On SIGTERM, how long to keep serving while reporting unready, so load balancers stop sending new requests first (5s suits Kubernetes)."`
	MetricsAddress  string   `yaml:"metrics_address" doc:"Address of the listener for Prometheus metrics (/metrics), apart from server.address so that a proxy in front of Gatehouse never publishes them. Empty: no metrics. Behind Kubernetes use \":9001\" (the Helm chart's scrape annotations name it)."`
	DebugAddress    string   `yaml:"debug_address" doc:"If set, serve Go's profiler (/debug/pprof/) on this separate address, for finding where time and memory go. Keep it on loopback."`
	TrustedProxies  []string `yaml:"trusted_proxies" doc:"Networks (CIDR) or addresses of the proxies in front of Gatehouse, whose X-Forwarded-For is believed when finding a client's address (for throttling, audit events and session lists). Loopback only by default: name your proxy's address or network, never a whole LAN, or every client on it can claim any address."`
}

// Database selects and tunes the store.
type Database struct {
	URL             string   `yaml:"url" secret:"true" doc:"sqlite:PATH for the embedded database, or postgres://user:pass@host:port/db for replicas."`
	MaxOpenConns    int      `yaml:"max_open_conns" doc:"PostgreSQL: most connections open at once per replica."`
	ConnMaxIdleTime Duration `yaml:"conn_max_idle_time" doc:"PostgreSQL: close connections idle this long."`
	ConnMaxLifetime Duration `yaml:"conn_max_lifetime" doc:"PostgreSQL: replace connections this old (lets rotated credentials take effect)."`
	OutageGrace     Duration `yaml:"outage_grace" doc:"While the database is unreachable, sessions this replica has already checked keep passing forward auth (against the current rules) for this long."`
	KeepAuditEvents int      `yaml:"keep_audit_events" doc:"How many audit events to keep; older ones are deleted every 10 minutes, so the table stays bounded."`
	RequestTimeout  Duration `yaml:"request_timeout" doc:"The most time the database work of one request may take (a page, a sign-in, a forward-auth check whose session is not cached) before it gets a 503: a database that stopped answering must not hold a proxy's workers. Keep it well under the proxy's own timeout."`
	UnreadyAfter    Duration `yaml:"unready_after" doc:"Report unready only once the database has been unreachable this long; liveness never depends on the database."`
}

// Session configures the login cookie.
type Session struct {
	CookieName   string   `yaml:"cookie_name" doc:"Name of the session cookie."`
	CookieDomain string   `yaml:"cookie_domain" doc:"Domain the cookie is set for: one login for every host under it. Empty: only the public_url host."`
	Lifetime     Duration `yaml:"lifetime" doc:"How long a login lasts, the same for every login method. Units: s, m, h, d."`
}

// Access holds the forward-auth rules.
type Access struct {
	AdminGroups []string `yaml:"admin_groups" doc:"Members pass every rule (break-glass). The first admin created by the setup link joins the first of these."`
	Rules       []Rule   `yaml:"rules" doc:"Checked in order; the first rule whose hosts and paths match decides. No match means deny."`
	// Kubernetes adds rules from annotations, after these.
	Kubernetes Kubernetes `yaml:"kubernetes" doc:"Rules from annotations on Ingress and HTTPRoute objects, after access.rules."`
}

// Rule decides requests for some hosts and paths.
type Rule struct {
	Hosts  []string `yaml:"hosts" doc:"Host names this rule covers: exact, or a leading \"*.\" for every subdomain (not the bare domain)."`
	Paths  []string `yaml:"paths" doc:"Path prefixes this rule covers; empty means every path."`
	Groups []string `yaml:"groups" doc:"Members of any of these groups (directly or through a child group) pass."`
	Public bool     `yaml:"public" doc:"Everyone passes, logged in or not."`
	Deny   bool     `yaml:"deny" doc:"Nobody passes but admin groups."`
	// TwoFactor asks for a second factor on top of group membership.
	TwoFactor bool `yaml:"two_factor" doc:"With groups: only sessions signed in with a second factor pass (admins too); others are asked to step up, not signed out."`
	// AllowAppPasswords lets clients that cannot sign in through a browser pass.
	AllowAppPasswords bool `yaml:"allow_app_passwords" doc:"Also accept app passwords (HTTP Basic with the username, or Bearer) made for these hosts, for clients that cannot sign in through a browser: CalDAV and WebDAV apps, phones, scripts. The person must still pass groups (admins too); two_factor rules refuse them."`
}

// GroupDecl declares a group in config.
type GroupDecl struct {
	Name   string `yaml:"name" doc:"Group name; spaces allowed, but not \",\" or \"|\" (they separate groups in headers)."`
	Parent string `yaml:"parent" doc:"Optional parent group: members of this group are members of the parent too."`
}

// OIDC configures the OpenID Connect provider. Its issuer is server.public_url.
type OIDC struct {
	SigningAlgorithm  string   `yaml:"signing_algorithm" doc:"RS256 (accepted by every app) or ES256: the algorithm of new signing keys."`
	RefreshReuseGrace Duration `yaml:"refresh_reuse_grace" doc:"How long a refresh token that was just rotated still gets a valid answer: apps refresh from several requests at once, or retry after a lost answer. Its use after this is taken as a stolen copy and ends the whole grant."`
	KeyRotation       Duration `yaml:"key_rotation" doc:"Make a new signing key this often. The previous key stays published until every token signed with it has expired."`
	Clients           []Client `yaml:"clients" doc:"The apps that sign in with OpenID Connect. They are code: an app is added or changed here, and a reload applies it."`
}

// Client is one app that signs in with OpenID Connect.
type Client struct {
	ID                     string   `yaml:"id" doc:"The client_id the app is configured with: letters, digits, \".\", \"-\", \"_\", \"~\"."`
	Name                   string   `yaml:"name" doc:"Shown on the consent and \"not allowed\" pages; the id when empty."`
	Type                   string   `yaml:"type" doc:"confidential (the default: a server-side app holding a secret) or public (a native app, CLI or single-page app: no secret, PKCE required)."`
	Secret                 string   `yaml:"secret" secret:"true" doc:"Confidential clients: the client secret (at least 32 characters), or its argon2id hash from 'gatehouse oidc hash-secret', or secret_file: PATH."`
	RedirectURIs           []string `yaml:"redirect_uris" doc:"Where the app may receive codes, matched exactly. A loopback http://127.0.0.1/..., http://[::1]/... or http://localhost/... URI matches any port (RFC 8252); custom schemes (com.example.app:/cb) are allowed."`
	PostLogoutRedirectURIs []string `yaml:"post_logout_redirect_uris" doc:"Where the app may send people after signing out at Gatehouse (RP-initiated logout), matched exactly."`
	BackchannelLogoutURI   string   `yaml:"backchannel_logout_uri" doc:"Where Gatehouse posts a signed logout token (OpenID Back-Channel Logout 1.0, with sid) when a sign-in the app was given ends: signed out, revoked, disabled or expired. Delivered within seconds by one replica; failures are retried with growing pauses for about two and a half hours. Empty: none."`
	Groups                 []string `yaml:"groups" doc:"Members of any of these groups (directly or through a child group) may use the app; others see a \"not allowed\" page."`
	AllUsers               bool     `yaml:"all_users" doc:"Every signed-in user may use the app. A client that signs people in needs groups or all_users: true, so no app is open to everyone by accident."`
	TwoFactor              bool     `yaml:"two_factor" doc:"Only sessions signed in with two factors may use the app; others are asked to step up."`
	Consent                string   `yaml:"consent" doc:"implicit (the default, for first-party apps: no question asked) or explicit (ask once per user, remembered until the app asks for more scopes)."`
	Scopes                 []string `yaml:"scopes" doc:"Scopes the app may ask for, among openid, profile, email, groups, offline_access. Empty: all of them."`
	GrantTypes             []string `yaml:"grant_types" doc:"authorization_code, refresh_token, client_credentials (confidential clients), device_code (RFC 8628). Empty: authorization_code and refresh_token."`
	Subject                string   `yaml:"subject" doc:"What the sub claim holds: id (the default: the user's permanent id) or username."`
	AccessTokenLifetime    Duration `yaml:"access_token_lifetime" doc:"How long access tokens last. Empty: 1h."`
	IDTokenLifetime        Duration `yaml:"id_token_lifetime" doc:"How long ID tokens last. Empty: 1h."`
	RefreshTokenLifetime   Duration `yaml:"refresh_token_lifetime" doc:"How long a refresh token lasts unused; each use gives a new one. Empty: 30d."`
}

// Log configures the structured logs on standard error.
type Log struct {
	Level  string `yaml:"level" doc:"debug, info, warn or error."`
	Format string `yaml:"format" doc:"json or text."`
}

// Default returns the configuration used when no file and no variable says otherwise:
// enough to start on an embedded database with nothing configured.
func Default() Config {
	return Config{
		Server: Server{Address: ":9000", PublicURL: "http://localhost:9000", DrainTime: Duration(10 * time.Second), MetricsAddress: "127.0.0.1:9001",
			TrustedProxies: []string{"127.0.0.0/8", "::1/128"}},
		Database: Database{
			URL:             "sqlite:./gatehouse-data/gatehouse.db",
			MaxOpenConns:    10,
			ConnMaxIdleTime: Duration(5 * time.Minute),
			ConnMaxLifetime: Duration(time.Hour),
			OutageGrace:     Duration(5 * time.Minute),
			UnreadyAfter:    Duration(15 * time.Second),
			RequestTimeout:  Duration(2 * time.Second),
			KeepAuditEvents: 100_000,
		},
		Session: Session{CookieName: "gatehouse_session", Lifetime: Duration(28 * 24 * time.Hour)},
		Access:  Access{AdminGroups: []string{"admins"}, Kubernetes: Kubernetes{AnnotationPrefix: "gatehouse.io/", HTTPRoutes: true}},
		SMTP:    SMTP{Port: 587, StartTLS: true},
		OIDC:    OIDC{SigningAlgorithm: "RS256", KeyRotation: Duration(30 * 24 * time.Hour), RefreshReuseGrace: Duration(time.Minute)},
		Log:     Log{Level: "info", Format: "json"},
	}
}

// PublicURL returns server.public_url parsed (Validate guarantees it parses).
func (c *Config) PublicURL() *url.URL {
	u, _ := url.Parse(c.Server.PublicURL)
	return u
}

// SecureCookies reports whether cookies get the Secure flag: whenever Gatehouse is
// reached over https, which browsers require for Secure cookies to be sent back.
func (c *Config) SecureCookies() bool { return c.PublicURL().Scheme == "https" }

// RedirectDomains lists the domains a return URL may point into.
func (c *Config) RedirectDomains() []string {
	out := []string{strings.ToLower(c.PublicURL().Hostname())}
	if d := strings.TrimPrefix(c.Session.CookieDomain, "."); d != "" {
		out = append(out, strings.ToLower(d))
	}
	for _, d := range c.Server.RedirectDomains {
		out = append(out, strings.ToLower(strings.TrimPrefix(d, ".")))
	}
	return out
}

// SQLitePath returns the file path of a sqlite: database URL, and whether it is one.
func (c *Config) SQLitePath() (string, bool) {
	return strings.CutPrefix(c.Database.URL, "sqlite:")
}

// Duration is a time.Duration written as "90s", "12h" or "28d" in YAML.
type Duration time.Duration

// ParseDuration accepts Go's duration syntax plus a "d" suffix for days.
func ParseDuration(s string) (Duration, error) {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		var n int
		if _, err := fmt.Sscanf(days, "%d", &n); err == nil && fmt.Sprint(n) == days {
			return Duration(time.Duration(n) * 24 * time.Hour), nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration (write it like 90s, 15m, 12h or 28d)", s)
	}
	return Duration(d), nil
}

// UnmarshalText parses a duration from YAML or an environment variable.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := ParseDuration(string(b))
	*d = v
	return err
}

// MarshalText writes the duration the way it is read.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// String formats whole days as "28d" and anything else as Go does.
func (d Duration) String() string {
	td := time.Duration(d)
	if td >= 24*time.Hour && td%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", td/(24*time.Hour))
	}
	return td.String()
}

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }
