package server

import (
	"bufio"
	"database/sql"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/gatehouse-id/gatehouse/internal/testenv"
)

// openIDClientModulesEnv names the node_modules folder holding openid-client 6 from
// npm, which scripts/test.sh installs into a cache folder outside the repository.
const openIDClientModulesEnv = "TEST_GATEHOUSE_OPENID_CLIENT_MODULES"

// A relying party nobody on the project wrote: panva's openid-client 6, with ID token
// signatures checked against the JWKS, drives code + PKCE, userinfo, four parallel
// refreshes, a key rollover, introspection, revocation, client credentials, the
// device flow and logout with and without id_token_hint (testdata/openid-client-rp.mjs). This test
// plays the browser. Plain http on loopback is the one relaxation the RP is given.
func TestOpenIDClientRelyingParty(t *testing.T) {
	modules := os.Getenv(openIDClientModulesEnv)
	if modules == "" {
		testenv.Missing(t, "openid-client from npm ("+openIDClientModulesEnv+")")
	}
	node := testenv.Tool(t, "node", "nodejs")
	forEachBackend(t, func(t *testing.T, dbURL string) {
		o := startOIDC(t, dbURL)
		script, _ := filepath.Abs("testdata/openid-client-rp.mjs")
		cmd := exec.Command(node, script)
		cmd.Env = append(os.Environ(), "OPENID_CLIENT_MODULES="+modules, "ISSUER="+o.srv.URL,
			"CLIENT_ID=grafana", "CLIENT_SECRET="+grafanaSecret, "REDIRECT_URI="+grafanaCB,
			"POST_LOGOUT_URI=https://grafana.example.com/login", "ROBOT_ID=robot", "ROBOT_SECRET="+robotSecret,
			"DEVICE_CLIENT_ID=kubectl")
		var stderr strings.Builder
		cmd.Stderr = &stderr
		stdin, _ := cmd.StdinPipe()
		stdout, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		answer := func(line string) { io.WriteString(stdin, line+"\n") }
		_, sess := o.login("alice", "correct horse alice", "")
		var steps []string
		lines := bufio.NewScanner(stdout)
		lines.Buffer(make([]byte, 1<<20), 1<<20)
		for lines.Scan() {
			var msg map[string]any
			if err := json.Unmarshal(lines.Bytes(), &msg); err != nil {
				t.Fatalf("the RP printed %q", lines.Text())
			}
			for k := range msg {
				steps = append(steps, k)
			}
			switch {
			case msg["browse"] != nil:
				resp, body := o.browse(msg["browse"].(string), sess)
				if resp.StatusCode != http.StatusFound {
					t.Fatalf("authorize for the RP: %d\n%s", resp.StatusCode, body)
				}
				answer(resp.Header.Get("Location"))
			case msg["rotate"] == "publish":
				if _, err := o.app.OIDC.RotateKeys(o.ctx); err != nil {
					t.Fatal(err)
				}
				answer("published")
			case msg["rotate"] == "sign":
				// Seven minutes on: the new key has been published long enough to sign.
				if _, err := o.app.Store.(interface{ DB() *sql.DB }).DB().Exec("UPDATE oidc_keys SET created_at = created_at - 420000000"); err != nil {
					t.Fatal(err)
				}
				if err := o.app.OIDC.MaintainKeys(o.ctx); err != nil {
					t.Fatal(err)
				}
				answer("signing")
			case msg["device"] != nil:
				token, csrf := o.formToken("/login")
				_, page := o.do(req{path: "/device", cookies: []*http.Cookie{csrf, sess}, form: url.Values{"csrf_token": {token}, "user_code": {msg["device"].(string)}, "decision": {"approve"}}})
				if !strings.Contains(page, "signed in as alice") {
					t.Fatalf("approving the RP's device:\n%s", page)
				}
				answer("approved")
			case msg["logout"] != nil:
				// The ID token names this browser's person: signed out at once, back
				// at the app with its state.
				resp, _ := o.browse(msg["logout"].(string), sess)
				if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "https://grafana.example.com/login?state=bye" {
					t.Fatalf("logout with the RP's hint: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
				}
				if o.forwardAuth(sess) == http.StatusOK {
					t.Fatal("still signed in after the RP's logout")
				}
				_, sess = o.login("alice", "correct horse alice", "")
				answer("ok")
			case msg["logout_without_hint"] != nil:
				// client_id only: the person is asked first.
				resp, page := o.browse(msg["logout_without_hint"].(string), sess)
				if resp.StatusCode != http.StatusOK || !regexp.MustCompile(`name="confirm"`).MatchString(page) {
					t.Fatalf("logout without a hint: %d, want the confirmation page", resp.StatusCode)
				}
				answer("ok")
			}
		}
		if err := cmd.Wait(); err != nil {
			t.Fatalf("openid-client RP failed after steps %v: %v\n%s", steps, err, stderr.String())
		}
		t.Logf("openid-client steps: %v", steps)
		if !strings.Contains(strings.Join(steps, " "), "done") {
			t.Fatalf("the RP stopped early after %v\n%s", steps, stderr.String())
		}
	})
}
