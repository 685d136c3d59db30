package server

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/gatehouse-id/gatehouse/internal/store"
)

// The admin pages show admins the people and the audit log, and nobody else: a
// person not in access.admin_groups is refused, a visitor signs in first. Finding is
// exact (any letter case) or by the start of a username, and says which; listings
// page by username, the audit log by age, with its filters kept across pages.
func TestAdminPages(t *testing.T) {
	h := start(t, testConfig(backends[0].url(t)))
	h.addUser("root", "Home Server Admins")
	h.addUser("fay", "Allow Login Users")
	for i := range 60 {
		if _, err := h.app.Store.CreateUser(context.Background(), store.User{Username: fmt.Sprintf("kid%02d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	_, root := h.login("root", "correct horse root", "")
	_, fay := h.login("fay", "correct horse fay", "")
	get := func(path string, c *http.Cookie) (*http.Response, string) {
		var cookies []*http.Cookie
		if c != nil {
			cookies = []*http.Cookie{c}
		}
		return h.do(req{path: path, cookies: cookies})
	}
	if resp, body := get("/admin/users", fay); resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "for members of Home Server Admins") {
		t.Fatalf("a person who is no admin: %d", resp.StatusCode)
	}
	if resp, _ := get("/admin/audit", nil); resp.StatusCode != http.StatusFound || !strings.HasPrefix(resp.Header.Get("Location"), "/login?rd="+url.QueryEscape("https://auth.example.com/admin/audit")) {
		t.Fatalf("a visitor: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	names := func(body string) (out []string) {
		for _, part := range strings.Split(body, `<td><a href="/admin/users/`)[1:] {
			name, _, _ := strings.Cut(part, `"`)
			out = append(out, name)
		}
		return out
	}
	resp, body := get("/admin/users", root)
	if resp.StatusCode != http.StatusOK || len(names(body)) != 50 || !strings.Contains(body, `href="/admin/users?after=kid48"`) || !strings.Contains(body, `href="/admin/users">Admin</a>`) {
		t.Fatalf("the first page of people: %d, %d names\n%s", resp.StatusCode, len(names(body)), body)
	}
	if _, body := get("/admin/users?after=kid48", root); strings.Join(names(body), " ") != "kid49 kid50 kid51 kid52 kid53 kid54 kid55 kid56 kid57 kid58 kid59 root" {
		t.Fatalf("the second page: %v", names(body))
	}
	if _, body := get("/admin/users?q=kid5&match=prefix", root); len(names(body)) != 10 || names(body)[0] != "kid50" {
		t.Fatalf("usernames starting with kid5: %v", names(body))
	}
	if _, body := get("/admin/users?q=KID07&match=exact", root); strings.Join(names(body), " ") != "kid07" {
		t.Fatalf("exactly KID07 (any case): %v", names(body))
	}
	if _, body := get("/admin/users?q=kid7&match=prefix", root); len(names(body)) != 0 || !strings.Contains(body, "Nobody's username starts with kid7") {
		t.Fatalf("a prefix nobody has: %v\n%s", names(body), body)
	}
	if resp, body := get("/admin/users/fay", root); resp.StatusCode != http.StatusOK || !strings.Contains(body, "Allow Login Users") || !strings.Contains(body, "password") {
		t.Fatalf("fay's page: %d\n%s", resp.StatusCode, body)
	}
	if resp, _ := get("/admin/users/nobody", root); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("nobody's page: %d", resp.StatusCode)
	}
	waitFor(t, "the sign-ins in the audit log", func() bool {
		_, body := get("/admin/audit?kind=login.succeeded&actor=fay", root)
		return strings.Contains(body, "<td>login.succeeded</td><td>fay</td>")
	})
	if resp, _ := h.do(req{path: "/api/authz/forward-auth", header: traefik("https://grafana.example.com/d/1"), cookies: []*http.Cookie{fay}}); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("fay at grafana: %d", resp.StatusCode)
	}
	waitFor(t, "fay's refusal under its host", func() bool {
		_, body := get("/admin/audit?host=Grafana.example.com", root)
		return strings.Contains(body, "<td>access.denied</td><td>fay</td><td>grafana.example.com/d/1</td>")
	})
	if _, body := get("/admin/audit?host=grafana.example", root); strings.Contains(body, "access.denied") {
		t.Fatalf("a host's start matched as the host:\n%s", body)
	}
	if _, body := get("/admin/audit?actor=nobody-at-all", root); !strings.Contains(body, "No event matches") {
		t.Fatalf("a filter nothing matches:\n%s", body)
	}
	if _, body := get("/admin/audit?since=yesterday", root); !strings.Contains(body, `is not a date written 2026-12-31`) {
		t.Fatalf("a bad date:\n%s", body)
	}

	// Groups: the tree, and a parent's effective members include its child group's.
	resp, body = get("/admin/groups", root)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `<td class="depth0"><a href="/admin/groups/Allow%20Login%20Users">`) ||
		!strings.Contains(body, `<td class="depth1"><a href="/admin/groups/Home%20Server%20Admins">`) {
		t.Fatalf("the groups page: %d\n%s", resp.StatusCode, body)
	}
	_, body = get("/admin/groups/"+url.PathEscape("Allow Login Users"), root)
	direct, effective, _ := strings.Cut(body, "Effective members")
	if !strings.Contains(direct, ">fay</a>") || strings.Contains(direct, ">root</a>") || !strings.Contains(effective, ">root</a>") || !strings.Contains(effective, ">fay</a>") {
		t.Fatalf("Allow Login Users: fay directly, root through Home Server Admins:\n%s", body)
	}
	if resp, _ := get("/admin/groups/nothing", root); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("a group nobody made: %d", resp.StatusCode)
	}
	// The config, read-only, secrets never shown.
	resp, body = get("/admin/config", root)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "defined in the config file") || !strings.Contains(body, "immich.example.com") ||
		!strings.Contains(body, "<td>/api/, /.well-known/</td><td>everyone</td>") {
		t.Fatalf("the config page: %d\n%s", resp.StatusCode, body)
	}
	if resp, _ := get("/admin/config", fay); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("the config page for a person who is no admin: %d", resp.StatusCode)
	}
}

// BenchmarkAdminUserList renders the admin users page of a directory of 10,000
// people: the first page, and a search by the start of a username.
func BenchmarkAdminUserList(b *testing.B) {
	h := start(b, testConfig("sqlite:"+b.TempDir()+"/gh.db"))
	h.addUser("root", "Home Server Admins")
	ctx := context.Background()
	for i := range 10_000 {
		if _, err := h.app.Store.CreateUser(ctx, store.User{Username: fmt.Sprintf("user%05d", i), Email: fmt.Sprintf("user%05d@example.com", i)}); err != nil {
			b.Fatal(err)
		}
	}
	_, root := h.login("root", "correct horse root", "")
	for _, path := range []string{"/admin/users", "/admin/users?q=user07&match=prefix", "/admin/audit"} {
		b.Run(strings.TrimPrefix(path, "/"), func(b *testing.B) {
			for b.Loop() {
				if resp, _ := h.do(req{path: path, cookies: []*http.Cookie{root}}); resp.StatusCode != http.StatusOK {
					b.Fatalf("%s: %d", path, resp.StatusCode)
				}
			}
		})
	}
}
