package e2e

import (
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gatehouse-id/gatehouse/internal/testenv"
)

// The README's admin API script (deploy/examples/api.sh) runs as written, with curl and
// jq, against a server, with a token from `gatehouse token create`.
func TestAPIExampleScript(t *testing.T) {
	sh := testenv.Tool(t, "sh", "dash")
	testenv.Tool(t, "curl", "curl") // the script calls them by name
	testenv.Tool(t, "jq", "jq")
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	dir := t.TempDir()
	cfg := filepath.Join(dir, "gatehouse.yaml")
	writeFile(t, cfg, fmt.Sprintf(`server:
  address: %q
  public_url: "http://%s"
groups:
  - name: Family
access:
  rules:
    - hosts: [dav.example.com]
      groups: [Family]
      allow_app_passwords: true
`, addr, addr))
	env := cleanEnv("GATEHOUSE_DATABASE_URL=sqlite:" + filepath.Join(dir, "gh.db"))
	serve(t, dir, env, addr, "--config", cfg)
	token := strings.TrimSpace(ok(t, dir, env, "", "token", "create", "automation", "--scope", "users:read", "--scope", "users:write",
		"--scope", "groups:read", "--scope", "groups:write", "--scope", "credentials:write", "--config", cfg))
	script, _ := filepath.Abs("../../deploy/examples/api.sh")
	cmd := exec.Command(sh, script)
	cmd.Env = append(cmd.Environ(), "GATEHOUSE=http://"+addr, "TOKEN="+token)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("api.sh: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 5 || !strings.Contains(lines[0], `"username":"grandma"`) || lines[1] != "grandma" || !strings.Contains(lines[2], `"display_name":"Granny"`) ||
		!strings.HasPrefix(lines[3], "gatehouse-app-") || !strings.HasPrefix(lines[4], "http://"+addr+"/signin-link?token=") {
		t.Fatalf("api.sh printed:\n%s", out)
	}
	// Grandma's calendar app gets in with it, as Traefik would ask.
	check, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/api/authz/forward-auth", nil)
	check.Header = http.Header{"X-Forwarded-Proto": {"https"}, "X-Forwarded-Host": {"dav.example.com"}, "X-Forwarded-Uri": {"/calendars/"},
		"X-Forwarded-Method": {"PROPFIND"}}
	check.SetBasicAuth("grandma", lines[3])
	resp, err := http.DefaultClient.Do(check)
	if err != nil || resp.StatusCode != http.StatusOK || resp.Header.Get("Remote-User") != "grandma" {
		t.Fatalf("the app password from api.sh at forward auth: %v %v", err, resp)
	}
	resp.Body.Close()
	// The link opens grandma's one-time sign-in page.
	if resp, err := http.Get(lines[4]); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("the sign-in link from api.sh: %v %v", err, resp)
	} else {
		resp.Body.Close()
	}
	// The same script with a read-only token stops at the first write, with the reason.
	reader := strings.TrimSpace(ok(t, dir, env, "", "token", "create", "reader", "--config", cfg))
	cmd = exec.Command(sh, script)
	cmd.Env = append(cmd.Environ(), "GATEHOUSE=http://"+addr, "TOKEN="+reader)
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "users:write") {
		t.Fatalf("api.sh with a read-only token: %v\n%s", err, out)
	}
}
