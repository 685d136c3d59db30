package server

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-id/gatehouse/internal/config"
	"github.com/gatehouse-id/gatehouse/internal/store"
	"github.com/gatehouse-id/gatehouse/internal/testenv"
)

// While PostgreSQL is unreachable: sessions this replica already checked keep passing,
// new logins get a friendly 503 page, readiness holds for unready_after and then drops,
// liveness never does; when the database returns everything recovers without a
// restart and nothing written before is lost.
func TestDatabaseOutage(t *testing.T) {
	dbURL, link := testenv.CuttableURL(t, testenv.PostgresURL(t))
	cfg := testConfig(dbURL)
	cfg.Database.UnreadyAfter = config.Duration(300 * time.Millisecond)
	cfg.Database.ConnMaxIdleTime = config.Duration(time.Second)
	h := start(t, cfg)
	h.addUser("alice", "Allow Login Users")
	h.addUser("bob", "Allow Login Users")
	_, sess := h.login("alice", "correct horse alice", "")
	hdr := traefik("https://app.example.com/")
	check := func(c *http.Cookie) int {
		var cookies []*http.Cookie
		if c != nil {
			cookies = []*http.Cookie{c}
		}
		resp, _ := h.do(req{path: "/api/authz/forward-auth", header: hdr, cookies: cookies})
		return resp.StatusCode
	}
	if check(sess) != http.StatusOK {
		t.Fatal("alice does not pass before the outage")
	}
	rowsBefore := tableRows(t, h.app.Store)

	link.Cut()
	if got := check(sess); got != http.StatusOK {
		t.Fatalf("a checked session during the outage: %d, want 200 from the cache", got)
	}
	if got := check(nil); got != http.StatusFound {
		t.Fatalf("anonymous during the outage: %d, want 302 (no database needed)", got)
	}
	token, csrf := h.formToken("/login")
	resp, body := h.do(req{path: "/login", cookies: []*http.Cookie{csrf},
		form: url.Values{"username": {"bob"}, "password": {"correct horse bob"}, "csrf_token": {token}}})
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, "cannot reach its database") {
		t.Fatalf("login during the outage: %d\n%s", resp.StatusCode, body)
	}
	if resp, _ := h.do(req{path: "/-/health/ready/"}); resp.StatusCode != http.StatusOK {
		t.Fatalf("ready right after the database went away: %d, want 200 until unready_after", resp.StatusCode)
	}
	waitFor(t, "readiness to drop", func() bool {
		resp, _ := h.do(req{path: "/-/health/ready/"})
		return resp.StatusCode == http.StatusServiceUnavailable
	})
	if resp, _ := h.do(req{path: "/-/health/live/"}); resp.StatusCode != http.StatusOK {
		t.Fatal("liveness failed during a database outage")
	}

	link.Restore()
	waitFor(t, "readiness to return", func() bool {
		resp, _ := h.do(req{path: "/-/health/ready/"})
		return resp.StatusCode == http.StatusOK
	})
	if resp, bobSess := h.login("bob", "correct horse bob", ""); resp.StatusCode != http.StatusSeeOther || check(bobSess) != http.StatusOK {
		t.Fatalf("login after the outage: %d", resp.StatusCode)
	}
	after := tableRows(t, h.app.Store)
	for table, n := range rowsBefore {
		if after[table] < n {
			t.Errorf("table %s lost rows in the outage: %d → %d", table, n, after[table])
		}
	}
}

// Past its cache trust, a checked session still passes during an outage, within the
// grace, and so does one signed in on this replica just before it; a session this
// replica never saw (signed in on another) does not.
func TestOutageGraceForStaleCacheEntries(t *testing.T) {
	dbURL, link := testenv.CuttableURL(t, testenv.PostgresURL(t))
	h, other := start(t, testConfig(dbURL)), start(t, testConfig(dbURL))
	h.addUser("alice", "Allow Login Users")
	h.addUser("bob", "Allow Login Users")
	h.addUser("carol", "Allow Login Users")
	caughtUp(t, h, other)
	_, alice := h.login("alice", "correct horse alice", "")
	_, bob := other.login("bob", "correct horse bob", "")
	if resp, _ := h.do(req{path: "/api/authz/forward-auth", header: traefik("https://app.example.com/"), cookies: []*http.Cookie{alice}}); resp.StatusCode != http.StatusOK {
		t.Fatal("alice before the outage")
	}
	ctx := context.Background()
	h.app.Sessions.ExpireCacheTrust()                       // as if the cache TTL had passed
	_, carol := h.login("carol", "correct horse carol", "") // signed in here, never checked yet
	link.Cut()
	if p, err := h.app.Sessions.Lookup(ctx, carol.Value); err != nil || p == nil || p.Username != "carol" {
		t.Fatalf("a session made on this replica just before the outage: %v, %v", p, err)
	}
	if p, err := h.app.Sessions.Lookup(ctx, alice.Value); err != nil || p == nil || p.Username != "alice" {
		t.Fatalf("stale but checked session during the outage: %v, %v", p, err)
	}
	if p, err := h.app.Sessions.Lookup(ctx, bob.Value); err == nil || p != nil {
		t.Fatalf("a session this replica never checked passed during the outage: %v, %v", p, err)
	}
	if resp, body := h.do(req{path: "/api/authz/forward-auth", header: traefik("https://app.example.com/"), cookies: []*http.Cookie{bob}}); resp.StatusCode != http.StatusServiceUnavailable || strings.Contains(body, "goroutine") {
		t.Fatalf("unchecked session during the outage: %d %q, want a plain 503", resp.StatusCode, body)
	}
	link.Restore()
}

// Signing out during an outage fails whole: the session keeps working on every
// replica and the page says so; and a replica that cannot check the session never
// claims "You are signed out".
func TestSignOutDuringAnOutageIsAllOrNothing(t *testing.T) {
	dbURL, link := testenv.CuttableURL(t, testenv.PostgresURL(t))
	h, other, third := start(t, testConfig(dbURL)), start(t, testConfig(dbURL)), start(t, testConfig(dbURL))
	h.addUser("alice", "Allow Login Users")
	caughtUp(t, h, other, third)
	_, alice := h.login("alice", "correct horse alice", "")
	check := func(r *harness) int {
		resp, _ := r.do(req{path: "/api/authz/forward-auth", header: traefik("https://app.example.com/"), cookies: []*http.Cookie{alice}})
		return resp.StatusCode
	}
	if check(h) != http.StatusOK || check(other) != http.StatusOK {
		t.Fatal("alice before the outage")
	}
	token, csrf := h.formToken("/login")
	link.Cut()
	resp, body := h.do(req{path: "/logout", cookies: []*http.Cookie{alice, csrf}, form: url.Values{"csrf_token": {token}}})
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, "still signed in") || cookieNamed(resp, "gatehouse_session") != nil {
		t.Fatalf("sign-out during the outage: %d, cookie %v", resp.StatusCode, cookieNamed(resp, "gatehouse_session"))
	}
	if a, b := check(h), check(other); a != http.StatusOK || b != http.StatusOK {
		t.Fatalf("after the failed sign-out the session answers %d here and %d on the other replica, want 200 on both", a, b)
	}
	if resp, body := third.do(req{path: "/logout", cookies: []*http.Cookie{alice}}); resp.StatusCode != http.StatusServiceUnavailable ||
		strings.Contains(resp.Header.Get("Location"), "logged_out") || !strings.Contains(body, "still signed in") {
		t.Fatalf("GET /logout on a replica that cannot check the session: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	link.Restore()
	waitFor(t, "the database to answer again", func() bool { return check(third) == http.StatusOK })
	if check(h) != http.StatusOK || check(other) != http.StatusOK {
		t.Fatal("the session is not whole after the outage")
	}
}

// A database that stops answering (frozen, as with SIGSTOP) costs a request at most
// database.request_timeout: forward auth with a session this replica has not cached,
// a sign-in and a page all answer 503 while it stays frozen, and the timeouts are
// counted; cached sessions keep passing.
func TestFrozenDatabaseAnswersWithinTheDeadline(t *testing.T) {
	dbURL, link := testenv.CuttableURL(t, testenv.PostgresURL(t))
	cfg := testConfig(dbURL)
	cfg.Database.RequestTimeout = config.Duration(300 * time.Millisecond)
	h, other := start(t, cfg), start(t, cfg)
	ua, ub := h.addUser("alice", "Allow Login Users"), h.addUser("bob", "Allow Login Users")
	caughtUp(t, h, other)
	// Sessions made directly, not through sign-ins: on a busy machine a sign-in's
	// argon2id alone can take longer than this test's 300 ms request deadline.
	signIn := func(on *harness, u store.User) *http.Cookie {
		token, _, err := on.app.Sessions.Create(context.Background(), u, "password", "127.0.0.1", "test", "")
		if err != nil {
			t.Fatal(err)
		}
		return &http.Cookie{Name: "gatehouse_session", Value: token}
	}
	alice, bob := signIn(h, ua), signIn(other, ub) // bob's is never seen by h
	token, csrf := h.formToken("/login")
	link.Freeze()
	defer link.Thaw()
	check := func(c *http.Cookie) int {
		resp, _ := h.do(req{path: "/api/authz/forward-auth", header: traefik("https://app.example.com/"), cookies: []*http.Cookie{c}})
		return resp.StatusCode
	}
	if got := check(alice); got != http.StatusOK {
		t.Fatalf("a cached session with the database frozen: %d, want 200", got)
	}
	if got := check(bob); got != http.StatusServiceUnavailable {
		t.Fatalf("an uncached session with the database frozen: %d, want 503 within the deadline", got)
	}
	resp, body := h.do(req{path: "/login", cookies: []*http.Cookie{csrf},
		form: url.Values{"username": {"alice"}, "password": {"correct horse alice"}, "csrf_token": {token}}})
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, "cannot reach its database") {
		t.Fatalf("a sign-in with the database frozen: %d, want the 503 page", resp.StatusCode)
	}
	if resp, _ := h.do(req{path: "/account", cookies: []*http.Cookie{bob}}); resp.StatusCode == http.StatusOK {
		t.Fatalf("the account page of an unchecked session answered %d with the database frozen", resp.StatusCode)
	}
	// The forward-auth check and the sign-in at least (the account page may redirect).
	counted := regexp.MustCompile(`(?m)^gatehouse_request_database_timeouts_total (\d+)$`).FindStringSubmatch(h.metrics())
	if counted == nil {
		t.Fatal("no gatehouse_request_database_timeouts_total metric")
	}
	if n, _ := strconv.Atoi(counted[1]); n < 2 {
		t.Errorf("the timeouts are not counted: %v", counted)
	}
}
