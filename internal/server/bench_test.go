package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/gatehouse-id/gatehouse/internal/config"
	"github.com/gatehouse-id/gatehouse/internal/forwardauth"
	"github.com/gatehouse-id/gatehouse/internal/session"
	"github.com/gatehouse-id/gatehouse/internal/store"
	"github.com/gatehouse-id/gatehouse/internal/testenv"
)

// BenchmarkForwardAuthCachedSession is the hot path without the network: a Traefik
// check with a valid, cached session against 100 rules, through the whole handler
// stack (routing, metrics, cookie, cache, decision, headers).
func BenchmarkForwardAuthCachedSession(b *testing.B) {
	benchForwardAuth(b, func(app *App, u store.User, req *http.Request) {
		token, _, err := app.Sessions.Create(context.Background(), u, "password", "", "", "")
		if err != nil {
			b.Fatal(err)
		}
		req.AddCookie(&http.Cookie{Name: "gatehouse_session", Value: token})
	})
}

// BenchmarkForwardAuthCachedAppPassword is the same check from a CalDAV app sending
// an app password as HTTP Basic, on a rule that accepts them (the target:
// within 10% of the cookie).
func BenchmarkForwardAuthCachedAppPassword(b *testing.B) {
	benchForwardAuth(b, func(app *App, u store.User, req *http.Request) {
		secret, _, err := app.Directory().CreateAppPassword(context.Background(), "bench", u.Username, "calendar", []string{"*.example.com"}, 0)
		if err != nil {
			b.Fatal(err)
		}
		req.SetBasicAuth(u.Username, secret)
	})
}

// benchForwardAuth measures cached checks of app.example.com against 100 rules (the
// last of which, a catch-all, takes app passwords), with the credential sign puts on
// the request.
func benchForwardAuth(b *testing.B, sign func(*App, store.User, *http.Request)) {
	app, req, w := forwardAuthBench(b, sign)
	queries := app.Store.QueryCount()
	b.ReportAllocs()
	for b.Loop() {
		clear(w.h)
		app.Handler.ServeHTTP(w, req)
	}
	if w.code != http.StatusOK || app.Store.QueryCount() != queries {
		b.Fatalf("status %d, %d queries on the hot path", w.code, app.Store.QueryCount()-queries)
	}
}

// BenchmarkForwardAuthFirstSight is a session's first check on a replica (after a
// restart, or once its cache entry was dropped): the session, its user and its groups
// are read from the database (SQLite here), then the check is answered.
func BenchmarkForwardAuthFirstSight(b *testing.B) {
	var hash string
	app, req, w := forwardAuthBench(b, func(app *App, u store.User, req *http.Request) {
		token, s, err := app.Sessions.Create(context.Background(), u, "password", "", "", "")
		if err != nil {
			b.Fatal(err)
		}
		hash = s.TokenHash
		req.AddCookie(&http.Cookie{Name: "gatehouse_session", Value: token})
	})
	b.ReportAllocs()
	for b.Loop() {
		app.Sessions.Apply(store.Change{Kind: store.ChangeSession, Subject: hash})
		clear(w.h)
		app.Handler.ServeHTTP(w, req)
	}
	if w.code != http.StatusOK {
		b.Fatalf("status %d", w.code)
	}
}

// forwardAuthBench makes a Gatehouse with 100 rules and a user, and a Traefik check of
// app.example.com carrying what sign puts on it, answered once.
func forwardAuthBench(b *testing.B, sign func(*App, store.User, *http.Request)) (*App, *http.Request, *discardWriter) {
	cfg := testConfig("sqlite:" + b.TempDir() + "/gh.db")
	var rules []config.Rule
	for i := range 99 {
		rules = append(rules, config.Rule{Hosts: []string{"app" + string(rune('a'+i%26)) + string(rune('a'+i/26)) + ".example.org"}, Groups: []string{"team"}})
	}
	cfg.Access.Rules = append(rules, cfg.Access.Rules...)
	cfg.Access.Rules[len(cfg.Access.Rules)-1].AllowAppPasswords = true
	app, err := New(context.Background(), cfg, quietLogger(), nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { app.Store.Close() })
	u, err := app.Directory().AddUser(context.Background(), "bench", identityUser("alice", "Allow Login Users"))
	if err != nil {
		b.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodGet, "/api/authz/forward-auth", nil)
	for k, v := range traefik("https://app.example.com/index.html?x=1") {
		req.Header[k] = v
	}
	sign(app, u, req)
	w := &discardWriter{h: http.Header{}}
	app.Handler.ServeHTTP(w, req)
	if w.code != http.StatusOK {
		b.Fatalf("warm-up: %d", w.code)
	}
	return app, req, w
}

// BenchmarkIdentityHeaders is the cost of writing the nine identity headers.
func BenchmarkIdentityHeaders(b *testing.B) {
	p := &session.Principal{UserID: "0123456789abcdef0123456789abcdef", Username: "alice", Email: "alice@example.com",
		DisplayName: "Alice", Groups: []string{"Allow Login Users", "Home Server Admins"}}
	h := http.Header{}
	b.ReportAllocs()
	for b.Loop() {
		forwardauth.SetIdentityHeaders(h, p)
	}
}

type discardWriter struct {
	h    http.Header
	code int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *discardWriter) WriteHeader(code int)        { w.code = code }

// benchAPI starts Gatehouse on dbURL with users users, the first members of one group
// "Big", and an API token that may read them.
func benchAPI(b *testing.B, dbURL string, users, members int) (*apiClient, string) {
	h := start(b, testConfig(dbURL))
	ctx := context.Background()
	g, err := h.app.Directory().AddGroup(ctx, "bench", "Big", "")
	if err != nil {
		b.Fatal(err)
	}
	for i := range users {
		u, err := h.app.Store.CreateUser(ctx, store.User{Username: fmt.Sprintf("user%05d", i)})
		if err != nil {
			b.Fatal(err)
		}
		if i < members {
			if err := h.app.Store.AddMember(ctx, g.ID, u.ID); err != nil {
				b.Fatal(err)
			}
		}
	}
	c := &apiClient{h: h}
	token, _, err := h.app.Directory().CreateAPIToken(ctx, "bench", nil, "bench", nil, time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	return c, token
}

// BenchmarkAPIListUsers lists 10,000 users through the API, 100 to a page: one
// operation is the whole listing (TEST_GATEHOUSE_POSTGRES_URL runs it on PostgreSQL).
func BenchmarkAPIListUsers(b *testing.B) {
	for _, be := range benchBackends(b) {
		b.Run(be.name, func(b *testing.B) {
			c, token := benchAPI(b, be.url(b), 10_000, 0)
			b.ResetTimer()
			for b.Loop() {
				n, next := 0, ""
				for {
					path := "/api/v1/users?limit=100"
					if next != "" {
						path += "&cursor=" + url.QueryEscape(next)
					}
					page := c.get(b, path, token)
					n += len(page["items"].([]any))
					if next, _ = page["next_cursor"].(string); next == "" {
						break
					}
				}
				if n != 10_000 {
					b.Fatalf("listed %d users", n)
				}
			}
		})
	}
}

// BenchmarkAPIGroupMembers reads a 1,000-member group through the API.
func BenchmarkAPIGroupMembers(b *testing.B) {
	for _, be := range benchBackends(b) {
		b.Run(be.name, func(b *testing.B) {
			c, token := benchAPI(b, be.url(b), 1_000, 1_000)
			b.ResetTimer()
			for b.Loop() {
				if page := c.get(b, "/api/v1/groups/Big/members", token); len(page["items"].([]any)) != 1_000 {
					b.Fatal("not 1,000 members")
				}
			}
		})
	}
}

// benchBackend names a database and makes a fresh one for each run.
type benchBackend struct {
	name string
	url  func(b *testing.B) string
}

func benchBackends(*testing.B) []benchBackend {
	out := []benchBackend{{"sqlite", func(b *testing.B) string { return "sqlite:" + b.TempDir() + "/gh.db" }}}
	if os.Getenv(testenv.PostgresURLEnv) != "" {
		out = append(out, benchBackend{"postgres", func(b *testing.B) string { return testenv.PostgresURL(b) }})
	}
	return out
}

// get is an API GET for benchmarks: no contract check, just the decoded body.
func (c *apiClient) get(b *testing.B, path, token string) map[string]any {
	r, _ := http.NewRequest(http.MethodGet, c.h.srv.URL+path, nil)
	r.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(r)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]any{}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != 200 {
		b.Fatalf("%s: %d %v", path, resp.StatusCode, err)
	}
	return out
}
