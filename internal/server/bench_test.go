package server

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/gatehouse-id/gatehouse/internal/config"
	"github.com/gatehouse-id/gatehouse/internal/forwardauth"
	"github.com/gatehouse-id/gatehouse/internal/session"
)

// BenchmarkForwardAuthCachedSession is the hot path without the network: a Traefik
// check with a valid, cached session against 100 rules, through the whole handler
// stack (routing, metrics, cookie, cache, decision, headers).
func BenchmarkForwardAuthCachedSession(b *testing.B) {
	cfg := testConfig("sqlite:" + b.TempDir() + "/gh.db")
	var rules []config.Rule
	for i := range 99 {
		rules = append(rules, config.Rule{Hosts: []string{"app" + string(rune('a'+i%26)) + string(rune('a'+i/26)) + ".example.org"}, Groups: []string{"team"}})
	}
	cfg.Access.Rules = append(rules, cfg.Access.Rules...)
	app, err := New(context.Background(), cfg, quietLogger(), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer app.Store.Close()
	u, err := app.Directory().AddUser(context.Background(), "bench", identityUser("alice", "Allow Login Users"))
	if err != nil {
		b.Fatal(err)
	}
	token, _, err := app.Sessions.Create(context.Background(), u, "password", "", "", "")
	if err != nil {
		b.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodGet, "/api/authz/forward-auth", nil)
	for k, v := range traefik("https://app.example.com/index.html?x=1") {
		req.Header[k] = v
	}
	req.AddCookie(&http.Cookie{Name: "gatehouse_session", Value: token})
	w := &discardWriter{h: http.Header{}}
	app.Handler.ServeHTTP(w, req)
	if w.code != http.StatusOK {
		b.Fatalf("warm-up: %d", w.code)
	}
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
