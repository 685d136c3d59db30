package e2e

import (
	"fmt"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// TestQuickstart is the README's run command on a fresh machine: `gatehouse serve` with
// no config and no flags starts on port 9000 on an embedded SQLite file, prints a
// one-time setup link, and the link creates the first admin, who can then sign in.
func TestQuickstart(t *testing.T) {
	dir := t.TempDir()
	addr, env := "127.0.0.1:9000", cleanEnv()
	if l, err := net.Listen("tcp", ":9000"); err != nil {
		// Something else holds 9000 on this machine: keep the test, move the port.
		port := freePort(t)
		addr, env = fmt.Sprintf("127.0.0.1:%d", port), cleanEnv(fmt.Sprintf("GATEHOUSE_SERVER_ADDRESS=:%d", port), fmt.Sprintf("GATEHOUSE_SERVER_PUBLIC_URL=http://localhost:%d", port))
		t.Logf("port 9000 is taken here; using %s", addr)
	} else {
		l.Close()
	}
	srv := serve(t, dir, env, addr)
	link := srv.waitLine(t, regexp.MustCompile(`^\s+(http://localhost:\d+/setup\?token=[\w-]{43})$`))[1]
	if !strings.Contains(srv.output(), `"level":"INFO"`) {
		t.Errorf("logs are not structured JSON:\n%s", srv.output())
	}

	b := newBrowser(t, portOf(addr))
	resp, page := b.get(link)
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, "Create the first admin") {
		t.Fatalf("setup link: %d\n%s", resp.StatusCode, page)
	}
	token := strings.TrimPrefix(link[strings.Index(link, "?"):], "?token=")
	form := url.Values{"csrf_token": {csrfOf(t, page)}, "token": {token}, "username": {"owner"},
		"password": {"correct horse battery"}, "password_confirm": {"correct horse battery"}}
	resp, _ = b.do(http.MethodPost, "http://localhost/setup", strings.NewReader(form.Encode()), nil)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("completing setup: %d", resp.StatusCode)
	}
	if _, home := b.get("http://localhost/"); !strings.Contains(home, "signed in as <strong>owner</strong>") || !strings.Contains(home, "admins") {
		t.Fatalf("after setup the home page does not show the signed-in admin:\n%s", home)
	}
	if resp, _ := b.get(link); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("the setup link works twice: %d", resp.StatusCode)
	}

	// The CLI works on the same database while the server runs.
	ok(t, dir, env, "another long password\n", "user", "add", "alice", "--email", "alice@example.com", "--password-stdin")
	if out := ok(t, dir, env, "", "user", "list"); !strings.Contains(out, "owner") || !strings.Contains(out, "alice@example.com") {
		t.Fatalf("user list:\n%s", out)
	}
	if out := ok(t, dir, env, "", "healthcheck"); !strings.Contains(out, "ready") {
		t.Fatalf("healthcheck: %q", out)
	}
	if code := srv.stop(t); code != 0 {
		t.Fatalf("gatehouse exited %d on SIGTERM, want 0", code)
	}
	if r := gh(t, dir, env, "", "healthcheck"); r.code == 0 {
		t.Fatal("healthcheck passes with the server stopped")
	}
}

func portOf(addr string) int {
	_, p, _ := net.SplitHostPort(addr)
	var n int
	fmt.Sscan(p, &n)
	return n
}
