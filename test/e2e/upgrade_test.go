package e2e

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-id/gatehouse/internal/mfa"
)

// upgradeFixture is what testdata/upgrade/main-schema-5.db holds, made by the
// previous release's binary (schema 5): an admin with a password and an authenticator
// app, signed in, a passkey, and an OpenID Connect signing key sealed with the server
// secret that release generated and kept in the database itself.
type upgradeFixture struct {
	Session    string `json:"session"`
	TOTPSecret string `json:"totp_secret"`
	Username   string `json:"username"`
	Password   string `json:"password"`
}

// Upgrading moves the server secret out of the database into the key file and seals
// the authenticator-app secrets, losing nothing: the session still passes, the
// password and app still sign in, the passkey is still there, the old signing key is
// still published. Afterwards the database file holds neither secret.
func TestUpgradeMovesTheSecretOutOfTheDatabase(t *testing.T) {
	var fx upgradeFixture
	raw, _ := os.ReadFile("testdata/upgrade/main-schema-5.json")
	if err := json.Unmarshal(raw, &fx); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	data := filepath.Join(dir, "gatehouse-data")
	os.MkdirAll(data, 0o700)
	dbPath := filepath.Join(data, "gatehouse.db")
	fixture, _ := os.ReadFile("testdata/upgrade/main-schema-5.db")
	writeFile(t, dbPath, string(fixture))

	db, err := sql.Open("sqlite", dbPath)
	if err != nil {
		t.Fatal(err)
	}
	var stored, kid string
	db.QueryRow("SELECT value FROM settings WHERE key = 'server_secret'").Scan(&stored)
	db.QueryRow("SELECT id FROM oidc_keys").Scan(&kid)
	// The fixture was made on 2026-12-01 with a 28-day session: keep it unexpired.
	if _, err := db.Exec("UPDATE sessions SET expires_at = $1", time.Now().Add(24*time.Hour).UnixMicro()); err != nil {
		t.Fatal(err)
	}
	// The old schema let a second account type the owner's address (in other letters).
	if _, err := db.Exec(`INSERT INTO users (id, username, username_key, email, display_name, password_hash, disabled, created_at, updated_at)
		VALUES ('twin-id', 'twin', 'twin', 'OWNER@example.com', '', '', 0, $1, $1)`, time.Now().UnixMicro()); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if stored == "" || kid == "" {
		t.Fatal("the fixture lacks the stored secret or the signing key")
	}

	port := freePort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	env := cleanEnv("GATEHOUSE_SERVER_ADDRESS="+addr, "GATEHOUSE_SERVER_PUBLIC_URL=http://"+addr)
	// What a PostgreSQL operator runs to take the secret into a Secret first.
	if out := ok(t, dir, env, "", "key", "export"); strings.TrimSpace(out) != stored {
		t.Fatalf("key export printed %q, not the stored secret", out)
	}
	s := serve(t, dir, env, addr)
	for _, line := range []string{"moved the server secret out of the database", "sealed the authenticator-app secrets"} {
		if !strings.Contains(s.output(), line) {
			t.Errorf("the upgrade did not log %q:\n%s", line, s.output())
		}
	}
	keyFile := filepath.Join(data, "gatehouse.key")
	info, err := os.Stat(keyFile)
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v, mode %v; want it made with mode 0600", err, info)
	}
	if key, _ := os.ReadFile(keyFile); strings.TrimSpace(string(key)) != stored {
		t.Fatal("the key file does not hold the secret the database had")
	}

	// The session from before the upgrade still passes forward auth.
	fa, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/api/authz/forward-auth", nil)
	fa.Header = http.Header{"X-Forwarded-Proto": {"https"}, "X-Forwarded-Host": {"app.example.com"}, "X-Forwarded-Uri": {"/"},
		"Cookie": {"gatehouse_session=" + fx.Session}}
	if resp, err := http.DefaultClient.Do(fa); err != nil || resp.StatusCode != http.StatusOK || resp.Header.Get("Remote-User") != fx.Username {
		t.Fatalf("the old session after the upgrade: %v %v", resp, err)
	}
	// The password and the authenticator app still sign in.
	b := newBrowser(t, port)
	auth := "http://" + addr
	_, page := b.get(auth + "/login")
	_, page = b.do(http.MethodPost, auth+"/login", strings.NewReader(url.Values{"username": {fx.Username}, "password": {fx.Password},
		"csrf_token": {csrfOf(t, page)}}.Encode()), nil)
	pending := regexp.MustCompile(`name="pending" value="([^"]+)"`).FindStringSubmatch(page)
	if pending == nil {
		t.Fatalf("no second step after the password:\n%s", page)
	}
	code, _ := mfa.Code(fx.TOTPSecret, mfa.Step(time.Now()))
	resp, _ := b.do(http.MethodPost, auth+"/login/second-factor", strings.NewReader(url.Values{"pending": {pending[1]}, "code": {code},
		"csrf_token": {csrfOf(t, page)}}.Encode()), nil)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("password and authenticator code after the upgrade: %d", resp.StatusCode)
	}
	// The old signing key is still published (it opened with the moved secret).
	jwks, err := http.Get(auth + "/oauth2/jwks")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(jwks.Body)
	jwks.Body.Close()
	if !strings.Contains(string(body), kid) {
		t.Fatalf("the signing key %s is gone after the upgrade: %s", kid, body)
	}
	if out := ok(t, dir, env, "", "user", "credentials", "list", fx.Username); !strings.Contains(out, "Old laptop") || !strings.Contains(out, "totp") {
		t.Fatalf("credentials after the upgrade:\n%s", out)
	}
	// Email addresses are unique now: the owner keeps theirs, the later account keeps
	// it only as a pending address an admin can sort out.
	if out := ok(t, dir, env, "", "user", "show", "twin"); !strings.Contains(out, "they asked for OWNER@example.com") {
		t.Fatalf("the duplicate address after the upgrade:\n%s", out)
	}
	if out := ok(t, dir, env, "", "user", "show", fx.Username); !strings.Contains(out, "email:     owner@example.com\n") {
		t.Fatalf("the owner's address after the upgrade:\n%s", out)
	}
	if code := s.stop(t); code != 0 {
		t.Fatalf("serve exited %d", code)
	}
	if r := gh(t, dir, env, "", "key", "export"); r.code != 1 || !strings.Contains(r.stderr, "the key is the key file") {
		t.Fatalf("key export after the move: exit %d %s", r.code, r.stderr)
	}

	// What a copy of the database holds now: neither secret, in any page.
	copied, _ := os.ReadFile(dbPath)
	for name, secret := range map[string]string{"the server secret": stored, "the authenticator-app secret": fx.TOTPSecret} {
		if bytes.Contains(copied, []byte(secret)) {
			t.Errorf("the database file still contains %s", name)
		}
	}
	if wal, _ := os.ReadFile(dbPath + "-wal"); len(wal) > 0 && bytes.Contains(wal, []byte(stored)) {
		t.Error("the write-ahead log still contains the server secret")
	}
}
