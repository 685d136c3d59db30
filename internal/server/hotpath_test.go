package server

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"strings"
	"testing"

	"github.com/gatehouse-id/gatehouse/internal/config"
	"github.com/gatehouse-id/gatehouse/internal/session"
)

// The incident this prevents: an outpost wrote one session file per anonymous request
// until its disk filled. Anonymous requests must create no state anywhere.
func TestAnonymousRequestsWriteNothing(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dbURL string) {
		h := start(t, testConfig(dbURL))
		h.addUser("alice", "Allow Login Users")
		h.quiet()
		before := tableRows(t, h.app.Store)
		queries := h.app.Store.QueryCount()

		for i := range 300 {
			var cookies []*http.Cookie
			switch i % 3 {
			case 1: // garbage of the wrong shape: rejected without a lookup
				cookies = []*http.Cookie{{Name: "gatehouse_session", Value: strings.Repeat("x", i) + "*"}}
			case 2: // well-formed but unknown: one read, never a write or a cache entry
				cookies = []*http.Cookie{{Name: "gatehouse_session", Value: session.NewToken()}}
			}
			hdr := traefik(fmt.Sprintf("https://app.example.com/page/%d", i))
			if resp, _ := h.do(req{path: "/api/authz/forward-auth", header: hdr, cookies: cookies}); resp.StatusCode != http.StatusFound {
				t.Fatalf("anonymous request %d: %d, want 302", i, resp.StatusCode)
			}
			if resp, _ := h.do(req{path: "/login?rd=https://app.example.com/" + fmt.Sprint(i)}); resp.StatusCode != http.StatusOK {
				t.Fatalf("login page %d: %d", i, resp.StatusCode)
			}
		}
		if after := tableRows(t, h.app.Store); !maps.Equal(before, after) {
			t.Fatalf("anonymous requests wrote rows:\nbefore %v\nafter  %v", before, after)
		}
		// One read per well-formed unknown cookie, and nothing else.
		if got := h.app.Store.QueryCount() - queries; got != 100 {
			t.Fatalf("600 anonymous requests sent %d queries; want one for each of the 100 well-formed unknown cookies", got)
		}
		if n := h.app.Sessions.CachedSessions(); n != 0 {
			t.Fatalf("anonymous requests left %d cache entries", n)
		}
	})
}

// A valid, cached session is decided without touching the database.
func TestCachedSessionSendsNoQueries(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dbURL string) {
		h := start(t, testConfig(dbURL))
		h.addUser("alice", "Allow Login Users")
		_, sess := h.login("alice", "correct horse alice", "")
		hdr := traefik("https://app.example.com/")
		if resp, _ := h.do(req{path: "/api/authz/forward-auth", header: hdr, cookies: []*http.Cookie{sess}}); resp.StatusCode != http.StatusOK {
			t.Fatalf("first check: %d", resp.StatusCode)
		}
		h.quiet()
		before := h.app.Store.QueryCount()
		for range 200 {
			if resp, _ := h.do(req{path: "/api/authz/forward-auth", header: hdr, cookies: []*http.Cookie{sess}}); resp.StatusCode != http.StatusOK {
				t.Fatalf("cached check: %d", resp.StatusCode)
			}
		}
		if got := h.app.Store.QueryCount() - before; got != 0 {
			t.Fatalf("200 cached checks sent %d queries, want none", got)
		}
	})
}

// Two replicas on one database: a login on A passes on B; disabling the user, changing
// their groups or revoking the session on A (or from the CLI) reaches B's cache through
// the change feed.
func TestChangesReachOtherReplicas(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dbURL string) {
		cfg := testConfig(dbURL)
		a := start(t, cfg)
		b := start(t, cfg)
		a.addUser("alice", "Allow Login Users")
		a.addUser("root", "Home Server Admins")
		_, sess := a.login("alice", "correct horse alice", "")
		hdr := traefik("https://app.example.com/")
		check := func(h *harness) int {
			resp, _ := h.do(req{path: "/api/authz/forward-auth", header: hdr, cookies: []*http.Cookie{sess}})
			return resp.StatusCode
		}
		if check(b) != http.StatusOK || check(a) != http.StatusOK {
			t.Fatal("a session made on replica A does not pass on replica B")
		}
		ctx := context.Background()
		if err := a.app.Directory().RemoveMembers(ctx, "test", "Allow Login Users", []string{"alice"}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "replica B to see the membership change", func() bool { return check(b) == http.StatusForbidden })
		if err := a.app.Directory().AddMembers(ctx, "test", "Allow Login Users", []string{"alice"}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "replica B to see the membership come back", func() bool { return check(b) == http.StatusOK })
		if err := a.app.Directory().SetDisabled(ctx, "test", "alice", true); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "replica B to see the user disabled", func() bool { return check(b) == http.StatusFound })
		if check(a) != http.StatusFound {
			t.Fatal("replica A still passes a disabled user")
		}
	})
}

func TestConfigReloadAppliesRulesLive(t *testing.T) {
	cfg := testConfig(backends[0].url(t))
	h := start(t, cfg)
	if _, err := h.app.Directory().AddGroup(context.Background(), "test", "Family", ""); err != nil {
		t.Fatal(err)
	}
	h.addUser("bob", "Family")
	_, sess := h.login("bob", "correct horse bob", "")
	hdr := traefik("https://app.example.com/")
	check := func() int {
		resp, _ := h.do(req{path: "/api/authz/forward-auth", header: hdr, cookies: []*http.Cookie{sess}})
		return resp.StatusCode
	}
	if check() != http.StatusForbidden {
		t.Fatal("bob passes before the rule exists")
	}
	next := cfg
	next.Access.Rules = append([]config.Rule{{Hosts: []string{"app.example.com"}, Groups: []string{"Family"}}}, cfg.Access.Rules...)
	next.Groups = append(next.Groups, config.GroupDecl{Name: "Family"})
	if err := h.app.Reload(context.Background(), next); err != nil {
		t.Fatal(err)
	}
	if check() != http.StatusOK {
		t.Fatal("a reloaded rule did not apply")
	}
	groups, _ := h.app.Store.ListGroups(context.Background())
	for _, g := range groups {
		if g.Name == "Family" && !g.FromConfig {
			t.Fatal("a group declared in the reloaded config is not marked as config-owned")
		}
	}
}

func TestReloadRefusesToLockTheAdminsOut(t *testing.T) {
	cfg := testConfig(backends[0].url(t))
	h := start(t, cfg)
	h.addUser("root", "Home Server Admins")
	next := cfg
	next.Access.AdminGroups = []string{"Nobody Is In This"}
	err := h.app.Reload(context.Background(), next)
	if err == nil || !strings.Contains(err.Error(), "lock every admin out") {
		t.Fatalf("reload that leaves no admin: %v", err)
	}
	if h.app.Config().Access.AdminGroups[0] != "Home Server Admins" {
		t.Fatal("the refused reload was applied")
	}
	next.Access.AdminGroups = []string{"Allow Login Users"} // root is in it through the parent link
	if err := h.app.Reload(context.Background(), next); err != nil {
		t.Fatalf("reload to a group the admin is in: %v", err)
	}
}
