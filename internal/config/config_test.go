package config

import (
	"context"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "gatehouse.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDefaultsAreValidAndNeedNoFile(t *testing.T) {
	cfg, err := Load("", nil)
	if err != nil {
		t.Fatalf("defaults: %v", err)
	}
	if cfg.Server.Address != ":9000" || cfg.Database.URL != "sqlite:./gatehouse-data/gatehouse.db" || cfg.Session.Lifetime.D() != 28*24*time.Hour {
		t.Fatalf("defaults changed: %+v", cfg)
	}
	if cfg.SecureCookies() {
		t.Fatal("http://localhost must not get Secure cookies: the browser would drop them")
	}
}

func TestLoadFileAndEnvironment(t *testing.T) {
	secret := filepath.Join(t.TempDir(), "db-url")
	os.WriteFile(secret, []byte("postgres://gh:s3cret@db:5432/gatehouse\n"), 0o600)
	path := writeFile(t, `
server:
  public_url: https://auth.example.com
session:
  cookie_domain: example.com
  lifetime: 12h
access:
  admin_groups: ["Home Server Admins"]
  rules:
    - hosts: ["*.example.com"]
      groups: ["Allow Login Users"]
groups:
  - name: Allow Login Users
  - name: Home Server Admins
    parent: Allow Login Users
`)
	cfg, err := Load(path, []string{
		"GATEHOUSE_SESSION_LIFETIME=7d", "GATEHOUSE_DATABASE_URL_FILE=" + secret, "GATEHOUSE_LOG_LEVEL=debug",
		"GATEHOUSE_ACCESS_ADMIN_GROUPS=a, b", "GATEHOUSE_PORT=tcp://10.0.0.1:9000", "GATEHOUSE_SERVICE_HOST=10.0.0.1", "PATH=/bin",
	})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Session.Lifetime.D() != 7*24*time.Hour {
		t.Errorf("env did not override the file: lifetime %v", cfg.Session.Lifetime)
	}
	if cfg.Database.URL != "postgres://gh:s3cret@db:5432/gatehouse" {
		t.Errorf("*_FILE secret: %q", cfg.Database.URL)
	}
	if cfg.Log.Level != "debug" || strings.Join(cfg.Access.AdminGroups, "|") != "a|b" || len(cfg.Access.Rules) != 1 || cfg.Groups[1].Parent != "Allow Login Users" {
		t.Errorf("loaded: %+v", cfg)
	}
	if !cfg.SecureCookies() {
		t.Error("https public_url must give Secure cookies")
	}
}

func TestSecretFileKeyInYAML(t *testing.T) {
	secret := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(secret, []byte(strings.Repeat("k", 40)+"\n"), 0o600)
	cfg, err := Load(writeFile(t, "server:\n  secret_file: "+secret+"\n"), nil)
	if err != nil || cfg.Server.Secret != strings.Repeat("k", 40) {
		t.Fatalf("secret_file: %q, %v", cfg.Server.Secret, err)
	}
	if _, err := Load(writeFile(t, "server:\n  address_file: /x\n"), nil); err == nil || !strings.Contains(err.Error(), `unknown key "server.address_file"`) {
		t.Fatalf("_file on a non-secret key: %v", err)
	}
}

// A client secret can come from a file, inside the list of clients.
func TestClientSecretFile(t *testing.T) {
	secret := filepath.Join(t.TempDir(), "grafana-secret")
	os.WriteFile(secret, []byte(strings.Repeat("g", 40)+"\n"), 0o600)
	cfg, err := Load(writeFile(t, "oidc:\n  clients:\n    - id: other\n      type: public\n      all_users: true\n      grant_types: [device_code]\n    - id: grafana\n      secret_file: "+secret+"\n      groups: [Admins]\n      redirect_uris: [https://grafana.example.com/login/generic_oauth]\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	c, ok := cfg.OIDC.ClientByID("grafana")
	if !ok || c.Secret != strings.Repeat("g", 40) || c.Public() {
		t.Fatalf("client: %+v", c)
	}
	if other, _ := cfg.OIDC.ClientByID("other"); other.Secret != "" {
		t.Fatal("the secret went to the wrong client")
	}
}

func TestErrorsNameTheKey(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		env  []string
		want []string
	}{
		{"typo in a section", "server:\n  adress: \":9000\"\n", nil, []string{`line 2: unknown key "server.adress"`, `did you mean "address"`}},
		{"unknown section", "sever:\n  address: x\n", nil, []string{`unknown key "sever"`, `did you mean "server"`}},
		{"typo inside a rule", "access:\n  rules:\n    - hosts: [a.example.com]\n      group: [x]\n", nil, []string{`line 4: unknown key "access.rules[0].group"`, `did you mean "groups"`}},
		{"bad host pattern", "access:\n  rules:\n    - hosts: [\"*.ex*ample.com\"]\n      groups: [x]\n", nil, []string{`access.rules[0].hosts[0]: "*.ex*ample.com" is not a valid host pattern (only a leading "*." wildcard is allowed)`}},
		{"rule with no decision", "access:\n  rules:\n    - hosts: [a.example.com]\n", nil, []string{"access.rules[0]: say exactly one of groups"}},
		{"rule with two decisions", "access:\n  rules:\n    - hosts: [a.example.com]\n      public: true\n      groups: [x]\n", nil, []string{"access.rules[0]: say exactly one"}},
		{"path without slash", "access:\n  rules:\n    - hosts: [a.example.com]\n      paths: [api]\n      public: true\n", nil, []string{`access.rules[0].paths[0]: "api" must start with "/"`}},
		{"argon2id hash asking for 4 GiB", "oidc:\n  clients:\n    - id: app\n      secret: \"$argon2id$v=19$m=4194304,t=2,p=1$c2FsdHNhbHQ$a2V5a2V5\"\n      redirect_uris: [\"https://app.example.com/cb\"]\n      all_users: true\n", nil, []string{`oidc.clients[0].secret: argon2id parameters "m=4194304,t=2,p=1" are outside`}},
		{"argon2id hash asking for 2^32-1 passes", "oidc:\n  clients:\n    - id: app\n      secret: \"$argon2id$v=19$m=19456,t=4294967295,p=1$c2FsdHNhbHQ$a2V5a2V5\"\n      redirect_uris: [\"https://app.example.com/cb\"]\n      all_users: true\n", nil, []string{`are outside m=1024..262144 (KiB), t=1..16`}},
		{"encoded path", "access:\n  rules:\n    - hosts: [a.example.com]\n      paths: [/my%20docs/]\n      public: true\n", nil, []string{`access.rules[0].paths[0]: "/my%20docs/" must not contain "%"`}},
		{"path with a dot segment", "access:\n  rules:\n    - hosts: [a.example.com]\n      paths: [/api/../x]\n      public: true\n", nil, []string{`access.rules[0].paths[0]: "/api/../x" must not contain "." or ".." segments`}},
		{"group name with a pipe", "groups:\n  - name: \"a|b\"\n", nil, []string{`groups[0].name: group name "a|b" contains`}},
		{"undeclared parent", "groups:\n  - name: a\n    parent: b\n", nil, []string{`groups[0].parent: "b" is not a declared group`}},
		{"parent loop", "groups:\n  - name: a\n    parent: b\n  - name: b\n    parent: a\n", nil, []string{"is its own ancestor"}},
		{"bad duration", "session:\n  lifetime: forever\n", nil, []string{`line 2: session.lifetime: "forever" is not a duration`}},
		{"a word for a list", "access:\n  rules:\n    - hosts: app.example.com\n      public: true\n", nil, []string{`line 3: access.rules[0].hosts must be a list, not "app.example.com"`}},
		{"a word for a switch", "access:\n  rules:\n    - hosts: [a.example.com]\n      public: yes please\n", nil, []string{`line 4: access.rules[0].public must be true or false, not "yes please"`}},
		{"lifetime too short", "session:\n  lifetime: 1s\n", nil, []string{"session.lifetime: 1s is outside 1m to 366d"}},
		{"cookie domain outside public url", "server:\n  public_url: https://auth.example.com\nsession:\n  cookie_domain: example.org\n", nil, []string{`session.cookie_domain: "example.org" does not contain the public_url host`}},
		{"public url with path", "server:\n  public_url: https://auth.example.com/gh\n", nil, []string{"server.public_url"}},
		{"bad database url", "database:\n  url: mysql://x\n", nil, []string{"database.url: must start with sqlite: or postgres://"}},
		{"password is redacted", "database:\n  url: mysql://u:hunter2@x/db\n", nil, []string{"xxxxx"}},
		{"no admin group", "access:\n  admin_groups: []\n", nil, []string{"access.admin_groups: name at least one admin group"}},
		{"short secret", "server:\n  secret: short\n", nil, []string{"server.secret: is 5 characters long"}},
		{"bad log level", "log:\n  level: loud\n", nil, []string{`log.level: "loud" is not one of`}},
		{"bad branding", "branding:\n  accent: \"#8fb3ff\"\n  logo: logo.png\n", nil,
			[]string{`branding.accent: #8fb3ff gives white text on it a contrast of 2.1:1; pick a darker color`, `branding.logo: "logo.png" is not an https:// URL`}},
		{"bad accent", "branding:\n  accent: blue\n", nil, []string{`branding.accent: "blue" is not a color written #rrggbb`}},
		{"bad apps", "apps:\n  - name: Photos\n    url: photos.example.com\n  - name: photos\n    url: https://p.example.com/\n    icon: http://p.example.com/i.png\n  - url: https://x.example.com/\n", nil,
			[]string{`apps[0].url: "photos.example.com" is not an absolute http:// or https:// URL`, `apps[1].name: "photos" is listed twice`,
				`apps[1].icon: "http://p.example.com/i.png" is not an https:// URL`, `apps[2].name: give the app a name`}},
		{"bad webhooks", "webhooks:\n  - name: audit archive\n    url: hooks.example.com\n    events: [user.create, \"*\", \"mfa.*\", \"nothing.*\"]\n  - name: chat\n    url: https://u:p@chat.example.com/x\n    format: teams\n    secret: abc\n    retry_for: 30d\n  - name: chat\n    url: https://chat.example.com/\n    format: slack\n", nil,
			[]string{`webhooks[0].name: "audit archive": give 1 to 64 letters`, `webhooks[0].url: "hooks.example.com" is not an absolute`, `webhooks[0].events[0]: "user.create" is not an event kind Gatehouse records (did you mean "user.created"?)`,
				`webhooks[0].events[3]: "nothing.*"`, `webhooks[0].secret: a standard webhook is signed`, `webhooks[1].url: "https://u:p@chat.example.com/x"`, `webhooks[1].format: "teams" is neither standard nor slack`,
				`webhooks[1].secret: is not whsec_ followed by`, `webhooks[1].retry_for: 30d is outside 1m to 7d`, `webhooks[2].name: "chat" is used twice`}},
		{"unknown env", "", []string{"GATEHOUSE_SESION_LIFETIME=1h"}, []string{"unknown environment variable GATEHOUSE_SESION_LIFETIME", `did you mean "GATEHOUSE_SESSION_LIFETIME"`}},
		{"env and file both", "", []string{"GATEHOUSE_SERVER_SECRET=" + strings.Repeat("x", 32), "GATEHOUSE_SERVER_SECRET_FILE=/nonexistent"}, []string{"use one"}},
		{"missing secret file", "", []string{"GATEHOUSE_SERVER_SECRET_FILE=/nonexistent/secret"}, []string{"GATEHOUSE_SERVER_SECRET_FILE: reading secret file"}},
		{"bad env number", "", []string{"GATEHOUSE_DATABASE_MAX_OPEN_CONNS=many"}, []string{`GATEHOUSE_DATABASE_MAX_OPEN_CONNS (database.max_open_conns): "many" is not a whole number`}},
		{"not a mapping", "server: [1, 2]\n", nil, []string{"server must be a mapping"}},
		{"client open to everyone", "oidc:\n  clients:\n    - id: grafana\n      secret: " + strings.Repeat("s", 32) + "\n      redirect_uris: [https://grafana.example.com/login/generic_oauth]\n", nil, []string{`oidc.clients[0]: say which groups may use "grafana"`}},
		{"confidential client without secret", "oidc:\n  clients:\n    - id: app\n      all_users: true\n      redirect_uris: [https://a.example.com/cb]\n", nil, []string{"oidc.clients[0].secret: a confidential client needs a secret", "type: public"}},
		{"public client with secret", "oidc:\n  clients:\n    - id: cli\n      type: public\n      secret: " + strings.Repeat("s", 32) + "\n      all_users: true\n      grant_types: [device_code, client_credentials]\n", nil, []string{"oidc.clients[0].secret: a public client has no secret", "client_credentials needs a confidential client"}},
		{"client redirect with a script", "oidc:\n  clients:\n    - id: app\n      type: public\n      all_users: true\n      redirect_uris: [\"javascript:alert(1)\", \"https://a.example.com/cb#x\"]\n", nil, []string{"redirect_uris[0]: \"javascript:alert(1)\" uses the javascript: scheme", "redirect_uris[1]"}},
		{"client without redirect", "oidc:\n  clients:\n    - id: app\n      type: public\n      all_users: true\n", nil, []string{"oidc.clients[0].redirect_uris: list where \"app\" receives codes"}},
		{"client typo", "oidc:\n  clients:\n    - id: app\n      redirect_uri: [x]\n", nil, []string{`unknown key "oidc.clients[0].redirect_uri"`, `did you mean "redirect_uris"`}},
		{"client bad values", "oidc:\n  signing_algorithm: HS256\n  clients:\n    - id: \"my app\"\n      type: public\n      all_users: true\n      grant_types: [implicit]\n      scopes: [admin]\n      consent: always\n      subject: email\n", nil, []string{"oidc.signing_algorithm", "is not a client id", `grant_types[0]: "implicit"`, `scopes[0]: "admin"`, "consent", "subject"}},
		{"client twice", "oidc:\n  clients:\n    - {id: a, type: public, all_users: true, grant_types: [device_code]}\n    - {id: a, type: public, all_users: true, grant_types: [device_code]}\n", nil, []string{`oidc.clients[1].id: client "a" is declared twice`}},
		{"several problems at once", "log:\n  level: loud\n  format: xml\n", nil, []string{"log.level", "log.format"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := ""
			if tc.yaml != "" {
				path = writeFile(t, tc.yaml)
			}
			_, err := Load(path, tc.env)
			if err == nil {
				t.Fatal("loaded without error")
			}
			for _, want := range tc.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error does not say %q:\n%v", want, err)
				}
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Error("error leaks a password")
			}
		})
	}
}

func TestEmptyFileIsTheDefaults(t *testing.T) {
	if _, err := Load(writeFile(t, "# nothing yet\n"), nil); err != nil {
		t.Fatal(err)
	}
}

func TestWatchAppliesValidEditsAndKeepsTheLastGoodConfig(t *testing.T) {
	path := writeFile(t, "log:\n  level: info\n")
	cfg, err := Load(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	applied := make(chan Config, 4)
	go Watch(ctx, path, nil, 5*time.Millisecond, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), func(c Config) { applied <- c })

	os.WriteFile(path, []byte("log:\n  level: loud\n"), 0o600) // invalid: must be ignored
	time.Sleep(50 * time.Millisecond)
	os.WriteFile(path, []byte("log:\n  level: debug\n"), 0o600)
	select {
	case c := <-applied:
		if c.Log.Level != "debug" {
			t.Fatalf("applied %q; the invalid edit must never be applied", c.Log.Level)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a valid edit was not applied")
	}
}

func TestRestartKeys(t *testing.T) {
	a, b := Default(), Default()
	b.Server.Address = ":9001"
	b.Access.Rules = []Rule{{Hosts: []string{"x.example.com"}, Public: true}}
	if got := RestartKeys(a, b); len(got) != 1 || got[0] != "server" {
		t.Fatalf("restart keys = %v, want [server]", got)
	}
}

// The README's config reference is generated from the model; this fails when they drift.
func TestReadmeConfigReferenceIsCurrent(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	const begin, end = "<!-- BEGIN CONFIG REFERENCE (generated by `gatehouse config reference`) -->\n", "<!-- END CONFIG REFERENCE -->"
	s := string(readme)
	i, j := strings.Index(s, begin), strings.Index(s, end)
	if i < 0 || j < i {
		t.Fatalf("README.md lacks the config reference markers %q … %q", begin, end)
	}
	if got := s[i+len(begin) : j]; got != Reference() {
		t.Fatalf("README.md's config reference is out of date: paste the output of `gatehouse config reference` between the markers.\nwant:\n%s", Reference())
	}
	for _, l := range Leaves() {
		if !strings.Contains(s, l.Key) {
			t.Errorf("README does not mention %s", l.Key)
		}
	}
}

// The example configs in deploy/examples must load as they are.
func TestExampleConfigsLoad(t *testing.T) {
	files, _ := filepath.Glob("../../deploy/examples/*.yaml")
	if len(files) == 0 {
		t.Fatal("no example configs found in deploy/examples")
	}
	for _, f := range files {
		switch filepath.Base(f) {
		case "compose.yaml", "traefik-kubernetes.yaml": // Docker's and Kubernetes', not Gatehouse's
			continue
		}
		if _, err := Load(f, nil); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}

// FuzzLoad feeds arbitrary YAML to the loader: errors are fine, panics are not.
func FuzzLoad(f *testing.F) {
	f.Add("server:\n  address: \":9000\"\n")
	f.Add("access:\n  rules:\n    - hosts: [\"*.example.com\"]\n      groups: [a]\n")
	f.Add("a: &x [*x]\n")
	f.Add("groups:\n  - name: a\n    parent: a\n")
	f.Fuzz(func(t *testing.T, body string) {
		cfg := Default()
		if err := decodeYAML([]byte(body), &cfg); err == nil {
			_ = cfg.Validate()
		}
	})
}

// With server.public_url left at its default, it follows server.address, so the setup
// link and login redirects name the port Gatehouse listens on.
func TestPublicURLFollowsTheAddress(t *testing.T) {
	for addr, want := range map[string]string{":8080": "http://localhost:8080", "127.0.0.1:9100": "http://127.0.0.1:9100", ":9000": "http://localhost:9000"} {
		cfg, err := Load("", []string{"GATEHOUSE_SERVER_ADDRESS=" + addr})
		if err != nil || cfg.Server.PublicURL != want {
			t.Errorf("address %s: public_url %q (%v), want %q", addr, cfg.Server.PublicURL, err, want)
		}
	}
	cfg, err := Load("", []string{"GATEHOUSE_SERVER_ADDRESS=:8080", "GATEHOUSE_SERVER_PUBLIC_URL=https://auth.example.com"})
	if err != nil || cfg.Server.PublicURL != "https://auth.example.com" {
		t.Errorf("an explicit public_url is kept: %q %v", cfg.Server.PublicURL, err)
	}
}

// A webhook's secret may come from a file, and is read as Standard Webhooks write it.
func TestWebhookSecretFile(t *testing.T) {
	secret := writeFile(t, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n")
	cfg, err := Load(writeFile(t, "webhooks:\n  - name: archive\n    url: https://hooks.example.com/in\n    secret_file: "+secret+"\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if key := cfg.Webhooks[0].SigningKey(); len(key) != 24 || cfg.Webhooks[0].Retry() != DefaultWebhookRetry {
		t.Fatalf("signing key of %d bytes, retry %s", len(key), cfg.Webhooks[0].Retry())
	}
}

// Every event kind a webhook may name is one Gatehouse records somewhere: a kind in
// WebhookEventKinds that no code writes would be a webhook that never fires.
func TestWebhookEventKindsAreRecorded(t *testing.T) {
	var code strings.Builder
	err := filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(path, ".go") && !strings.HasSuffix(path, "_test.go") && !strings.Contains(path, "config/") {
			b, err := os.ReadFile(path)
			code.Write(b)
			return err
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, kind := range WebhookEventKinds {
		if !strings.Contains(code.String(), `"`+kind+`"`) {
			t.Errorf("no code records %q", kind)
		}
	}
	for _, kind := range DefaultWebhookEvents {
		if !slices.Contains(WebhookEventKinds, kind) {
			t.Errorf("default event %q is not in WebhookEventKinds", kind)
		}
	}
}
