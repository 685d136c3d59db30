package e2e

import (
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/gatehouse-id/gatehouse/internal/testenv"
	_ "modernc.org/sqlite"
)

// TestCLI manages users, groups and sessions with the same commands on SQLite and on
// PostgreSQL, including the refusals that keep the owner from being locked out.
func TestCLI(t *testing.T) {
	for _, backend := range []struct {
		name string
		url  func(t *testing.T) string
	}{
		{"sqlite", func(t *testing.T) string { return "sqlite:" + filepath.Join(t.TempDir(), "gh.db") }},
		{"postgres", func(t *testing.T) string { return testenv.PostgresURL(t) }},
	} {
		t.Run(backend.name, func(t *testing.T) {
			dir := t.TempDir()
			env := cleanEnv("GATEHOUSE_DATABASE_URL=" + backend.url(t))
			run := func(stdin string, args ...string) string { return ok(t, dir, env, stdin, args...) }
			fail := func(wantCode int, says string, stdin string, args ...string) {
				t.Helper()
				r := gh(t, dir, env, stdin, args...)
				if r.code != wantCode || !strings.Contains(r.stderr, says) {
					t.Fatalf("gatehouse %s: exit %d, stderr %q; want exit %d saying %q", strings.Join(args, " "), r.code, r.stderr, wantCode, says)
				}
				if strings.Contains(r.stderr, "goroutine") || strings.Contains(r.stderr, "panic") {
					t.Fatalf("stack trace:\n%s", r.stderr)
				}
			}

			// Only serve and migrate create a database: pointed at nothing, a command
			// says where it looked and what to do, and creates nothing.
			fail(1, "does not create one", "", "user", "list")
			if backend.name == "sqlite" {
				if _, err := os.Stat(strings.TrimPrefix(envValue(env, "GATEHOUSE_DATABASE_URL"), "sqlite:")); !errors.Is(err, fs.ErrNotExist) {
					t.Fatalf("a refused command left a database file: %v", err)
				}
			}
			run("", "migrate")
			run("", "group", "add", "Allow Login Users")
			run("", "group", "add", "admins", "--parent", "Allow Login Users")
			run("", "group", "add", "Family")
			run("s3cret-password\n", "user", "add", "root", "--group", "admins", "--password-stdin")
			run("another-password\n", "user", "add", "alice", "--email", "alice@example.com", "--name", "Alice Liddell", "--password-stdin")
			run("", "group", "members", "add", "Family", "alice")

			show := run("", "user", "show", "alice")
			for _, want := range []string{"alice@example.com", "Alice Liddell", "Family", "password:  set", "active"} {
				if !strings.Contains(show, want) {
					t.Errorf("user show lacks %q:\n%s", want, show)
				}
			}
			if show := run("", "user", "show", "root"); !strings.Contains(show, "Allow Login Users, admins") {
				t.Errorf("root's effective groups should include the parent:\n%s", show)
			}
			var users []map[string]any
			if err := json.Unmarshal([]byte(run("", "user", "list", "--json")), &users); err != nil || len(users) != 2 {
				t.Fatalf("user list --json: %v %v", users, err)
			}
			if strings.Contains(run("", "user", "list", "--json"), "argon2") {
				t.Fatal("user list leaks password hashes")
			}
			if list := run("", "group", "list"); !regexp.MustCompile(`admins\s+Allow Login Users\s+1\s+data`).MatchString(list) {
				t.Errorf("group list:\n%s", list)
			}

			// Exact names only; clear errors; never a fuzzy match.
			fail(1, `user "ali": not found`, "", "user", "delete", "ali")
			fail(1, `user "alice%": not found`, "", "user", "show", "alice%")
			fail(1, "already exists", "x-long-password\n", "user", "add", "ALICE", "--password-stdin")
			fail(1, "contains a control character", "x-long-password\n", "user", "add", "bad\nname", "--password-stdin")
			fail(1, "shorter than 8", "short\n", "user", "add", "carol", "--password-stdin")
			fail(1, "no password given", "", "user", "add", "carol")
			fail(1, "contains \",\" or \"|\"", "", "group", "add", "a,b")
			fail(2, "unknown command", "", "frobnicate")
			fail(2, "expected user add USERNAME", "", "user", "add")
			fail(2, "flag provided but not defined: -pasword-stdin", "", "user", "add", "x", "--pasword-stdin")

			// The last admin can be neither disabled, deleted, nor removed from the group.
			fail(1, "refused: this would leave no enabled admin", "", "user", "disable", "root")
			fail(1, "refused: this would leave no enabled admin", "", "user", "delete", "root")
			fail(1, "refused: this would leave no enabled admin", "", "group", "members", "remove", "admins", "root")
			fail(1, "refused: this would leave no enabled admin", "", "group", "delete", "admins")
			run("", "group", "members", "add", "admins", "alice")
			run("", "user", "disable", "root")
			run("", "user", "enable", "root")
			run("", "group", "members", "remove", "admins", "alice")

			run("new-password-1\n", "user", "passwd", "alice", "--password-stdin")
			if out := run("", "user", "credentials", "list", "alice"); !regexp.MustCompile(`password\s+password\s+set \d{4}-`).MatchString(out) || strings.Contains(out, "totp") {
				t.Errorf("credentials list:\n%s", out)
			}
			fail(1, `user "alic": not found`, "", "user", "credentials", "list", "alic")
			fail(1, "password is the only way \"alice\" can sign in; add a passkey or set a password first", "", "user", "credentials", "remove", "alice", "password")
			fail(1, `user "alice" has no credential "totp"`, "", "user", "credentials", "remove", "alice", "totp")
			fail(2, "expected user credentials list USERNAME, or user credentials remove USERNAME ID", "", "user", "credentials", "remove", "alice")
			if out := run("", "user", "link", "alice"); !regexp.MustCompile(`^http://localhost:9000/signin-link\?token=[A-Za-z0-9_-]{43}\n$`).MatchString(out) {
				t.Errorf("user link printed %q", out)
			}
			fail(1, `user "alic": not found`, "", "user", "link", "alic")
			fail(2, "expected user link USERNAME", "", "user", "link")
			invite := strings.Fields(run("", "invite", "create", "--group", "Family", "--uses", "2", "--note", "cousins"))
			if len(invite) != 2 || !regexp.MustCompile(`^[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}$`).MatchString(invite[0]) || invite[1] != "http://localhost:9000/invite?code="+invite[0] {
				t.Errorf("invite create printed %q", invite)
			}
			listed := run("", "invite", "list")
			if !strings.Contains(listed, "Family") || !strings.Contains(listed, "0 of 2") || !strings.Contains(listed, "cousins") || strings.Contains(listed, invite[0]) {
				t.Errorf("invite list:\n%s", listed)
			}
			id := strings.Fields(strings.Split(listed, "\n")[1])[0]
			if out := run("", "invite", "revoke", id); !strings.Contains(out, "revoked") {
				t.Errorf("invite revoke: %s", out)
			}
			fail(1, "name the group (or groups) the invited person joins", "", "invite", "create")
			fail(1, `group "Nobody": not found`, "", "invite", "create", "--group", "Nobody")
			fail(2, `--expires "soon"`, "", "invite", "create", "--group", "Family", "--expires", "soon")
			fail(1, "not found", "", "invite", "revoke", "no-such-id")
			if out := run("", "user", "mfa", "reset", "alice"); !strings.Contains(out, "second factors of alice removed") {
				t.Errorf("mfa reset: %q", out)
			}
			fail(1, `user "alic": not found`, "", "user", "mfa", "reset", "alic")
			fail(2, "expected user mfa reset USERNAME", "", "user", "mfa", "alice")

			// OpenID Connect: a client secret hashed for the config; keys made and listed.
			if out := run(strings.Repeat("s", 40)+"\n", "oidc", "hash-secret", "--secret-stdin"); !strings.HasPrefix(out, "$argon2id$") {
				t.Errorf("hash-secret: %q", out)
			}
			fail(1, "too short", "short\n", "oidc", "hash-secret", "--secret-stdin")
			fail(2, "reads the secret from standard input", "", "oidc", "hash-secret")
			first := regexp.MustCompile(`new signing key (\S+) \(RS256\)`).FindStringSubmatch(run("", "oidc", "rotate-keys"))
			if first == nil {
				t.Fatal("rotate-keys did not name the new key")
			}
			second := regexp.MustCompile(`new signing key (\S+)`).FindStringSubmatch(run("", "oidc", "rotate-keys"))
			// Both keys are minutes old: the first signs until the second has been
			// published longer than apps cache the key set.
			if keys := run("", "oidc", "keys"); !regexp.MustCompile(regexp.QuoteMeta(second[1]) + `\s+RS256\s+\S+ \S+\s+published, signs once apps have cached it\n` + regexp.QuoteMeta(first[1]) + `\s+RS256.*signing`).MatchString(keys) {
				t.Errorf("oidc keys:\n%s", keys)
			}
			fail(2, `oidc: unknown subcommand "rotate"`, "", "oidc", "rotate")
			run("", "session", "revoke", "--user", "alice")
			if out := run("", "session", "list"); !strings.HasPrefix(out, "ID") {
				t.Errorf("session list: %q", out)
			}
			fail(1, "not found", "", "session", "revoke", "no-such-session")
			run("", "user", "delete", "alice")
			run("", "group", "delete", "Family")
			if out := run("", "migrate", "--dry-run"); !strings.Contains(out, "up to date") {
				t.Errorf("migrate --dry-run on a current schema: %q", out)
			}
		})
	}
}

// TestOlderBinaryRefusesNewerSchema: after a newer Gatehouse migrated the database,
// this binary exits non-zero, names both versions, and writes nothing.
func TestOlderBinaryRefusesNewerSchema(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "gh.db")
	env := cleanEnv("GATEHOUSE_DATABASE_URL=sqlite:" + path)
	ok(t, dir, env, "", "migrate")
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("INSERT INTO gatehouse_schema (version, name, applied_at) VALUES (999, 'future', 0)"); err != nil {
		t.Fatal(err)
	}
	migrations, _ := filepath.Glob("../../internal/store/sqlstore/migrations/*.sql")
	want := fmt.Sprintf("database schema is at version 999 but this gatehouse binary only knows versions up to %d", len(migrations))
	for _, args := range [][]string{{"serve"}, {"migrate"}, {"migrate", "--dry-run"}, {"user", "list"}} {
		r := gh(t, dir, env, "", args...)
		if r.code != 1 || !strings.Contains(r.stderr, want) {
			t.Fatalf("gatehouse %v on a newer schema: exit %d\n%s", args, r.code, r.stderr)
		}
	}
	var users, schema int
	db.QueryRow("SELECT COUNT(*) FROM users").Scan(&users)
	db.QueryRow("SELECT COUNT(*) FROM gatehouse_schema").Scan(&schema)
	if users != 0 || schema != len(migrations)+1 {
		t.Fatalf("the refused commands wrote: users=%d schema rows=%d", users, schema)
	}
}

func TestServeCheckConfig(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "gatehouse.yaml")
	writeFile(t, cfg, "server:\n  adress: \":9000\"\n")
	r := gh(t, dir, cleanEnv(), "", "serve", "--config", cfg, "--check-config")
	if r.code != 1 || !strings.Contains(r.stderr, `line 2: unknown key "server.adress" (did you mean "address"?)`) {
		t.Fatalf("typo in config: exit %d\n%s", r.code, r.stderr)
	}
	example, _ := filepath.Abs("../../deploy/examples/gatehouse.yaml")
	out := ok(t, dir, cleanEnv(), "", "serve", "--config", example, "--check-config")
	if !strings.Contains(out, "config is valid: 3 access rule(s)") {
		t.Fatalf("example config: %q", out)
	}
	// Valid but unable to work: a typo'd group and a host the cookie never reaches are
	// named, with their keys, against the groups in the database too.
	lint := filepath.Join(dir, "lint.yaml")
	writeFile(t, lint, fmt.Sprintf(`database:
  url: %q
server:
  public_url: "https://auth.example.com"
session:
  cookie_domain: example.com
access:
  admin_groups: [admins]
  rules:
    - hosts: [photos.example.com]
      groups: [Famliy]
    - hosts: [wiki.example.org]
      public: true
`, "sqlite:"+filepath.Join(dir, "lint.db")))
	ok(t, dir, cleanEnv(), "", "migrate", "--config", lint)
	ok(t, dir, cleanEnv(), "", "group", "add", "Family", "--config", lint)
	ok(t, dir, cleanEnv(), "", "user", "add", "bob", "--no-password", "--group", "Family", "--config", lint)
	out = ok(t, dir, cleanEnv(), "", "serve", "--config", lint, "--check-config")
	for _, want := range []string{`warning: access.rules[0].groups[0]: group "Famliy" does not exist (did you mean "Family"?)`,
		`warning: access.rules[1].hosts[0]: "wiki.example.org" is outside session.cookie_domain`,
		`warning: access.admin_groups[0]: group "admins" does not exist`,
		`warning: access.admin_groups: There are 1 users, but none is an enabled member of access.admin_groups ["admins"]. Groups with members: "Family" (1).`} {
		if !strings.Contains(out, want) {
			t.Errorf("--check-config lacks %q:\n%s", want, out)
		}
	}
	ref := ok(t, dir, cleanEnv(), "", "config", "reference")
	if !strings.Contains(ref, "`GATEHOUSE_SESSION_LIFETIME`") {
		t.Fatalf("config reference: %q", ref)
	}
}

// envValue is the value of key in env.
func envValue(env []string, key string) string {
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, key+"="); ok {
			return v
		}
	}
	return ""
}

// The CLI finds its config as people expect: --config before or after the command,
// GATEHOUSE_CONFIG, ./gatehouse.yaml; --help lists a command's flags; a typo gets a
// suggestion.
func TestCLIFindsItsConfig(t *testing.T) {
	dir := t.TempDir()
	other := t.TempDir()
	cfg := filepath.Join(dir, "gatehouse.yaml")
	writeFile(t, cfg, fmt.Sprintf("database:\n  url: %q\n", "sqlite:"+filepath.Join(dir, "gh.db")))
	env := cleanEnv()
	ok(t, dir, env, "", "migrate", "--config", cfg)
	ok(t, dir, env, "", "group", "add", "Family", "--config", cfg)
	for name, c := range map[string]struct {
		dir  string
		env  []string
		args []string
	}{
		"--config before the command": {other, env, []string{"--config", cfg, "group", "list"}},
		"--config=FILE before":        {other, env, []string{"--config=" + cfg, "group", "list"}},
		"--config after":              {other, env, []string{"group", "list", "--config", cfg}},
		"GATEHOUSE_CONFIG":            {other, append(cleanEnv(), "GATEHOUSE_CONFIG="+cfg), []string{"group", "list"}},
		"./gatehouse.yaml":            {dir, env, []string{"group", "list"}},
	} {
		if out := ok(t, c.dir, c.env, "", c.args...); !strings.Contains(out, "Family") {
			t.Errorf("%s: %q", name, out)
		}
	}
	if r := gh(t, other, env, "", "serve", "--help"); r.code != 0 || !strings.Contains(r.stdout, "-check-config") {
		t.Errorf("serve --help: exit %d %q", r.code, r.stdout)
	}
	if r := gh(t, other, env, "", "user", "--help"); r.code != 0 || !strings.Contains(r.stdout, "-password-stdin") || !strings.Contains(r.stdout, "set-email") {
		t.Errorf("user --help: exit %d %q", r.code, r.stdout)
	}
	if r := gh(t, other, env, "", "sesion", "list"); r.code != 2 || !strings.Contains(r.stderr, `did you mean "session"`) {
		t.Errorf("a typo: exit %d %q", r.code, r.stderr)
	}
	if r := gh(t, other, env, "", "--config", filepath.Join(other, "missing.yaml"), "user", "list"); r.code == 0 || !strings.Contains(r.stderr, "missing.yaml") {
		t.Errorf("a missing config file: exit %d %q", r.code, r.stderr)
	}
}
