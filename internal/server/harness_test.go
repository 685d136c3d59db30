package server

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/gatehouse-id/gatehouse/internal/config"
	"github.com/gatehouse-id/gatehouse/internal/identity"
	"github.com/gatehouse-id/gatehouse/internal/store"
	"github.com/gatehouse-id/gatehouse/internal/store/sqlstore"
	"github.com/gatehouse-id/gatehouse/internal/testenv"
)

// backend opens one fresh database; both kinds run every integration test.
type backend struct {
	name string
	url  func(t *testing.T) string // a database.url for a new, empty database
}

var backends = []backend{
	{"sqlite", func(t *testing.T) string { return "sqlite:" + testenv.SQLitePath(t) }},
	{"postgres", func(t *testing.T) string { return testenv.PostgresURL(t) }},
	{"pgbouncer", func(t *testing.T) string { return testenv.PgBouncerURL(t) }},
}

func forEachBackend(t *testing.T, test func(t *testing.T, dbURL string)) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { test(t, b.url(t)) })
	}
}

// testConfig is the operator's config from DESIGN.md, on fictional hosts.
func testConfig(dbURL string) config.Config {
	cfg := config.Default()
	cfg.Server.PublicURL = "https://auth.example.com"
	cfg.Database.URL = dbURL
	cfg.Session.CookieDomain = "example.com"
	cfg.Access = config.Access{
		AdminGroups: []string{"Home Server Admins"},
		Rules: []config.Rule{
			{Hosts: []string{"grafana.example.com"}, Groups: []string{"Home Server Admins"}},
			{Hosts: []string{"immich.example.com"}, Paths: []string{"/api/", "/.well-known/"}, Public: true},
			{Hosts: []string{"*.example.com"}, Groups: []string{"Allow Login Users"}},
		},
	}
	cfg.Groups = []config.GroupDecl{{Name: "Allow Login Users"}, {Name: "Home Server Admins", Parent: "Allow Login Users"}}
	if _, sqlite := cfg.SQLitePath(); !sqlite {
		cfg.Server.Secret = testServerSecret // PostgreSQL: replicas share a key from outside the database
	}
	return cfg
}

// testServerSecret is the server key the PostgreSQL tests give every replica, as a
// Kubernetes Secret would.
const testServerSecret = "test-server-key-0123456789abcdef0123456789abcdef"

// harness is one Gatehouse on a real loopback HTTP server.
type harness struct {
	t      testing.TB
	app    *App
	srv    *httptest.Server
	log    *testenv.LogBuffer
	stopBG func()
}

// logText is what the app has logged so far, read under the writer's lock (the
// background work logs while tests read).
func (h *harness) logText() string {
	return h.log.String()
}

// quiet stops the app's background work (the change feed, last-seen writes,
// housekeeping), so that from then on only requests send queries: what tests that
// count queries need, however fast the machine is.
func (h *harness) quiet() { h.stopBG() }

// start runs Gatehouse with cfg; prepare, when given, changes the app before its
// background work starts (a test's shorter webhook pauses).
func start(t testing.TB, cfg config.Config, prepare ...func(*App)) *harness {
	t.Helper()
	return startOn(t, httptest.NewUnstartedServer(nil), cfg, prepare...)
}

// startSelf starts Gatehouse with server.public_url set to its own loopback address,
// for clients (OpenID Connect libraries) that talk to it by its issuer URL.
func startSelf(t *testing.T, cfg config.Config) *harness {
	t.Helper()
	srv := httptest.NewUnstartedServer(nil)
	cfg.Server.PublicURL = "http://" + srv.Listener.Addr().String()
	cfg.Session.CookieDomain = ""
	return startOn(t, srv, cfg)
}

func startOn(t testing.TB, srv *httptest.Server, cfg config.Config, prepare ...func(*App)) *harness {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("test config invalid: %v", err)
	}
	logs := &testenv.LogBuffer{}
	log, level := NewLogger(&cfg, logs)
	app, err := New(context.Background(), cfg, log, level)
	if err != nil {
		t.Fatalf("starting gatehouse: %v", err)
	}
	h := &harness{t: t, app: app, log: logs, srv: srv}
	for _, p := range prepare {
		p(app)
	}
	h.srv.Config = app.HTTPServer()
	h.srv.Start()
	h.stopBG = sync.OnceFunc(app.StartBackground(context.Background()))
	t.Cleanup(func() { h.srv.Close(); h.stopBG(); app.Store.Close() })
	return h
}

// addUser creates a user with a password in the given groups.
func (h *harness) addUser(name string, groups ...string) store.User {
	h.t.Helper()
	u, err := h.app.Directory().AddUser(context.Background(), "test", identity.NewUser{
		Username: name, Email: name + "@example.com", DisplayName: strings.ToUpper(name[:1]) + name[1:],
		Password: "correct horse " + name, Groups: groups,
	})
	if err != nil {
		h.t.Fatalf("adding user %s: %v", name, err)
	}
	return u
}

// client never follows redirects: tests assert on each hop.
var client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

type req struct {
	method, path string
	header       http.Header
	form         url.Values
	cookies      []*http.Cookie
}

func (h *harness) do(r req) (*http.Response, string) {
	h.t.Helper()
	if r.method == "" {
		r.method = http.MethodGet
		if r.form != nil {
			r.method = http.MethodPost
		}
	}
	var body io.Reader
	if r.form != nil {
		body = strings.NewReader(r.form.Encode())
	}
	hr, err := http.NewRequest(r.method, h.srv.URL+r.path, body)
	if err != nil {
		h.t.Fatal(err)
	}
	for k, v := range r.header {
		hr.Header[k] = v
	}
	if r.form != nil {
		hr.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for _, c := range r.cookies {
		hr.AddCookie(c)
	}
	if host := r.header.Get("Host"); host != "" {
		hr.Host = host
	}
	resp, err := client.Do(hr)
	if err != nil {
		h.t.Fatalf("%s %s: %v", r.method, r.path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// caughtUp waits until every replica has applied every change written so far (each
// replica's start writes one that empties the others' caches), so that what a test
// caches next stays cached.
func caughtUp(t *testing.T, replicas ...*harness) {
	t.Helper()
	latest, err := replicas[0].app.Store.LatestChangeID(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "every replica to read the change feed", func() bool {
		for _, r := range replicas {
			if r.app.Sessions.FeedPosition() < latest {
				return false
			}
		}
		return true
	})
}

// metrics reads /metrics from the app's metrics handler (server.metrics_address).
func (h *harness) metrics() string {
	h.t.Helper()
	rec := httptest.NewRecorder()
	h.app.MetricsHandler.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		h.t.Fatalf("/metrics: %d", rec.Code)
	}
	return rec.Body.String()
}

var csrfField = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)

// formToken loads a page and returns its CSRF token with the cookie it belongs to.
func (h *harness) formToken(path string) (string, *http.Cookie) {
	h.t.Helper()
	resp, body := h.do(req{path: path})
	m := csrfField.FindStringSubmatch(body)
	if m == nil {
		h.t.Fatalf("GET %s (%d): no csrf_token in the page:\n%s", path, resp.StatusCode, body)
	}
	return m[1], cookieNamed(resp, "gatehouse_csrf")
}

func cookieNamed(resp *http.Response, name string) *http.Cookie {
	for _, c := range resp.Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// login signs a user in through the login form and returns the session cookie.
func (h *harness) login(username, password, rd string) (*http.Response, *http.Cookie) {
	h.t.Helper()
	return h.loginAs(username, password, rd, nil)
}

// loginAs signs in like login, with extra headers (X-Forwarded-For) and cookies (a
// device cookie).
func (h *harness) loginAs(username, password, rd string, header http.Header, cookies ...*http.Cookie) (*http.Response, *http.Cookie) {
	h.t.Helper()
	token, csrf := h.formToken("/login")
	resp, _ := h.do(req{path: "/login", cookies: append([]*http.Cookie{csrf}, cookies...), header: header,
		form: url.Values{"username": {username}, "password": {password}, "csrf_token": {token}, "rd": {rd}}})
	return resp, cookieNamed(resp, "gatehouse_session")
}

// traefik asks the forward-auth endpoint as Traefik would for a browser page load.
func traefik(rawURL string) http.Header {
	u, _ := url.Parse(rawURL)
	return http.Header{
		"X-Forwarded-Method": {"GET"}, "X-Forwarded-Proto": {u.Scheme}, "X-Forwarded-Host": {u.Host},
		"X-Forwarded-Uri": {u.RequestURI()}, "Accept": {"text/html,application/xhtml+xml"},
	}
}

// tableRows counts every row of every table, to prove a request wrote nothing.
func tableRows(t *testing.T, s store.Store) map[string]int {
	t.Helper()
	db := s.(*sqlstore.Store).DB()
	out := map[string]int{}
	for _, table := range []string{"gatehouse_schema", "users", "usergroups", "memberships", "sessions", "setup_tokens", "settings", "events", "changes", "leases", "totp_secrets", "recovery_codes", "passkeys", "spent_challenges", "oidc_keys", "oidc_tokens", "oidc_consents", "oidc_logouts", "throttle", "api_tokens", "api_idempotency"} {
		var n int
		if err := db.QueryRow("SELECT COUNT(*) FROM " + table).Scan(&n); err != nil {
			t.Fatalf("counting %s: %v", table, err)
		}
		out[table] = n
	}
	return out
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func identityUser(name string, groups ...string) identity.NewUser {
	return identity.NewUser{Username: name, Password: "correct horse " + name, Groups: groups}
}
