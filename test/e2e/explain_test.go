package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// explainAgreesWithProxy asks `gatehouse access explain` about people opening URLs and
// opens the same URLs through the real proxy as those people: each answer the CLI
// gives is what the proxy did — let through, sent to sign in, refused — and a target
// the CLI will not decide on is one forward auth refused as well.
func explainAgreesWithProxy(t *testing.T, proxyPort int, dir string, env []string) {
	t.Helper()
	auth := fmt.Sprintf("http://auth.example.com:%d", proxyPort)
	signedIn := func(user, password string) *browser {
		b := newBrowser(t, proxyPort)
		b.signIn(auth, user, password)
		return b
	}
	people := map[string]*browser{"-": newBrowser(t, proxyPort), "alice": signedIn("alice", "alice-password"), "bob": signedIn("bob", "bob-password")}
	targets := []string{
		"http://app.example.com/photos/1", "http://app.example.com/api/list", "http://app.example.com/API/list",
		"http://www.example.com/admin", "http://www.example.com/Admin/users", "http://www.example.com/admin;x/users",
		"http://www.example.com/public/../admin", "http://www.example.com/%61dmin", "http://www.example.com/news",
		"http://app.example.com/api/%2e%2e/photos", "http://app.example.com/api/..%2fphotos",
	}
	for _, target := range targets {
		for who, b := range people {
			r := gh(t, dir, env, "", "access", "explain", who, target, "--json")
			u, _ := url.Parse(target)
			u.Host = fmt.Sprintf("%s:%d", u.Hostname(), proxyPort)
			resp, _ := b.get(u.String())
			if r.code != 0 {
				// Not decided on: forward auth must have refused it too (the proxy may
				// also have refused it itself, before asking).
				if resp.StatusCode < 400 {
					t.Errorf("%s %s: explain refused to decide (%s) but the proxy answered %d", who, target, strings.TrimSpace(r.stderr), resp.StatusCode)
				}
				continue
			}
			var report struct{ Result, Reason, Outcome string }
			if err := json.Unmarshal([]byte(r.stdout), &report); err != nil {
				t.Fatalf("explain --json: %v\n%s", err, r.stdout)
			}
			got, location := resp.StatusCode, resp.Header.Get("Location")
			switch {
			case got == http.StatusNotFound: // the app's own answer: forward auth let it through
				got = http.StatusOK
			case got == http.StatusFound && strings.Contains(location, "/refused?rd="): // nginx's way to the refusal page
				got = http.StatusForbidden
			case got == http.StatusFound && !strings.Contains(location, "/login?rd="):
				t.Errorf("%s %s: the proxy sent the browser to %q", who, target, location)
			}
			if want := map[string]int{"allow": http.StatusOK, "login": http.StatusFound, "deny": http.StatusForbidden}[report.Result]; got != want {
				t.Errorf("%s %s: explain says %s (%s), the proxy answered %d", who, target, report.Result, report.Reason, resp.StatusCode)
			}
		}
	}
	r := gh(t, dir, env, "", "access", "explain", "alice", "http://www.example.com/admin")
	if r.code != 0 || !strings.Contains(r.stdout, "may not open www.example.com") || !strings.Contains(r.stdout, "access.rules[2]") ||
		!strings.Contains(r.stdout, "members of admins") {
		t.Errorf("explain for a person: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := gh(t, dir, env, "", "access", "explain", "carol", "http://www.example.com/admin"); r.code == 0 || !strings.Contains(r.stderr, `no such user "carol"`) {
		t.Errorf("explain for nobody known: %d %s", r.code, r.stderr)
	}
}

// TestReadmeExplainExample runs the README's `gatehouse access explain` session on the
// example config and compares every line: the commands shown are the commands that
// work, and their answers are the ones they give.
func TestReadmeExplainExample(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, _ := strings.Cut(string(readme), "### Why was this refused?")
	_, block, ok1 := strings.Cut(rest, "```console\n")
	block, _, ok2 := strings.Cut(block, "```")
	if !ok1 || !ok2 {
		t.Fatal("the README's explain section has no console block")
	}
	dir := t.TempDir()
	example, _ := filepath.Abs("../../deploy/examples/gatehouse.yaml")
	port := freePort(t)
	env := cleanEnv("GATEHOUSE_CONFIG="+example, "GATEHOUSE_DATABASE_URL=sqlite:"+filepath.Join(dir, "gh.db"),
		fmt.Sprintf("GATEHOUSE_SERVER_ADDRESS=127.0.0.1:%d", port))
	srv := serve(t, dir, env, fmt.Sprintf("127.0.0.1:%d", port)) // makes the database and the config's groups
	srv.stop(t)
	ok(t, dir, env, "", "user", "add", "grandma", "--group", "Allow Login Users", "--no-password")
	sessions := strings.Split("\n"+block, "\n$ ")[1:]
	if len(sessions) < 3 {
		t.Fatalf("the README shows %d explain commands, want an allowed-or-refused person, a reading, and a refused URL", len(sessions))
	}
	for _, s := range sessions {
		command, want, _ := strings.Cut(s, "\n")
		var args []string
		for _, f := range strings.Fields(command) {
			args = append(args, strings.Trim(f, "'"))
		}
		if args[0] != "gatehouse" {
			t.Fatalf("README: %q is not a gatehouse command", command)
		}
		r := gh(t, dir, env, "", args[1:]...)
		if got := r.stdout + r.stderr; strings.TrimSuffix(got, "\n") != strings.TrimSuffix(want, "\n") {
			t.Errorf("README shows, for %s:\n%s\nthe command prints (exit %d):\n%s", command, want, r.code, got)
		}
	}
}
