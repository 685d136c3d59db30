package e2e

import (
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gatehouse-id/gatehouse/internal/testenv"
)

// protectedSite starts Gatehouse (its config pointing the login pages at the proxy's
// port) with two users, and returns its port.
func protectedSite(t *testing.T, proxyPort int) (dir string, env []string, ghPort int) {
	t.Helper()
	dir = t.TempDir()
	ghPort = freePort(t)
	cfg := filepath.Join(dir, "gatehouse.yaml")
	writeFile(t, cfg, fmt.Sprintf(`server:
  address: "127.0.0.1:%[1]d"
  public_url: "http://auth.example.com:%[2]d"
session:
  cookie_domain: example.com
access:
  admin_groups: [admins]
  rules:
    - hosts: [app.example.com]
      groups: [Family]
groups:
  - name: Family
  - name: admins
oidc:
  clients:
    - id: photos
      type: public
      redirect_uris: ["http://app.example.com:%[2]d/oauth/callback"]
      groups: [Family]
`, ghPort, proxyPort))
	env = cleanEnv("GATEHOUSE_DATABASE_URL=sqlite:" + filepath.Join(dir, "gh.db"))
	serve(t, dir, env, fmt.Sprintf("127.0.0.1:%d", ghPort), "--config", cfg)
	ok(t, dir, env, "alice-password\n", "user", "add", "alice", "--email", "alice@example.com", "--name", "Alice", "--group", "Family", "--password-stdin")
	ok(t, dir, env, "bob-password\n", "user", "add", "bob", "--password-stdin")
	return dir, env, ghPort
}

// fromExample reads an example file from deploy/examples and points its addresses at
// the test's ports, so the README's snippet is what runs.
func fromExample(t *testing.T, name string, replace ...string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("../../deploy/examples", name))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for i := 0; i+1 < len(replace); i += 2 {
		if !strings.Contains(s, replace[i]) {
			t.Fatalf("deploy/examples/%s no longer contains %q: update this test with the example", name, replace[i])
		}
		s = strings.ReplaceAll(s, replace[i], replace[i+1])
	}
	return s
}

func waitPort(t *testing.T, port int, logs func() string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing listens on port %d:\n%s", port, logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// visitAsPeople walks the flow a person sees through the proxy: sent to the login page,
// signed in once, back on the page they asked for with identity headers at the app;
// someone outside the rule's group gets 403; after signing out they are sent back to
// the login page.
func visitAsPeople(t *testing.T, proxyPort int) {
	app := fmt.Sprintf("http://app.example.com:%d/photos/42?size=large", proxyPort)
	auth := fmt.Sprintf("http://auth.example.com:%d", proxyPort)

	b := newBrowser(t, proxyPort)
	resp, _ := b.get(app)
	wantLogin := auth + "/login?rd=" + url.QueryEscape(app)
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != wantLogin {
		t.Fatalf("anonymous visit: %d to %q, want 302 to %q", resp.StatusCode, resp.Header.Get("Location"), wantLogin)
	}
	resp, page := b.get(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, `name="password"`) {
		t.Fatalf("login page through the proxy: %d\n%s", resp.StatusCode, page)
	}
	rd := regexpRD.FindStringSubmatch(page)
	if rd == nil || rd[1] != app {
		t.Fatalf("login page does not carry the return URL %q: %v", app, rd)
	}
	login := func(b *browser, user, password, page string) *http.Response {
		form := url.Values{"username": {user}, "password": {password}, "csrf_token": {csrfOf(t, page)}, "rd": {app}}
		resp, body := b.do(http.MethodPost, auth+"/login", strings.NewReader(form.Encode()), nil)
		if resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("logging in %s: %d\n%s", user, resp.StatusCode, body)
		}
		return resp
	}
	resp = login(b, "alice", "alice-password", page)
	if resp.Header.Get("Location") != app {
		t.Fatalf("after login: sent to %q, want %q", resp.Header.Get("Location"), app)
	}
	resp, body := b.do(http.MethodGet, app, nil, http.Header{"Remote-User": {"root"}, "Remote-Groups": {"admins"}})
	want := `app says hello to "alice" in "Family" <alice@example.com> (Alice) at /photos/42?size=large`
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, want) {
		t.Fatalf("after login (with spoofed identity headers from the client): %d %q, want %q", resp.StatusCode, body, want)
	}

	bob := newBrowser(t, proxyPort)
	_, page = bob.get(wantLogin)
	login(bob, "bob", "bob-password", page)
	if resp, _ := bob.get(app); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("bob is not in Family: %d, want 403", resp.StatusCode)
	}

	_, home := b.get(auth + "/")
	form := url.Values{"csrf_token": {csrfOf(t, home)}}
	if resp, _ := b.do(http.MethodPost, auth+"/logout", strings.NewReader(form.Encode()), nil); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("logout: %d", resp.StatusCode)
	}
	if resp, _ := b.get(app); resp.StatusCode != http.StatusFound {
		t.Fatalf("after logout: %d, want 302 to the login page", resp.StatusCode)
	}
}

// TestNginxAuthRequest runs deploy/examples/nginx.conf (the README's snippet) in a real nginx.
func TestNginxAuthRequest(t *testing.T) {
	proxyPort, upPort := freePort(t), upstream(t)
	_, _, ghPort := protectedSite(t, proxyPort)
	cmd, logFile := nginxCommand(t, proxyPort, ghPort, upPort)
	runProxy(t, proxyPort, cmd, logFile)
}

// nginxCommand prepares a real nginx running deploy/examples/nginx.conf with its
// addresses pointed at the test's ports, and the file its errors go to.
func nginxCommand(t *testing.T, proxyPort, ghPort, upPort int) (*exec.Cmd, string) {
	t.Helper()
	nginx := testenv.Tool(t, "nginx", "nginx")
	dir := t.TempDir()
	os.Chmod(dir, 0o777) // nginx workers run as nobody when started by root
	site := fromExample(t, "nginx.conf",
		"listen 80;", fmt.Sprintf("listen 127.0.0.1:%d;", proxyPort),
		"127.0.0.1:9000", fmt.Sprintf("127.0.0.1:%d", ghPort),
		"127.0.0.1:8080", fmt.Sprintf("127.0.0.1:%d", upPort))
	writeFile(t, filepath.Join(dir, "site.conf"), site)
	writeFile(t, filepath.Join(dir, "nginx.conf"), fmt.Sprintf(`pid %[1]s/nginx.pid;
worker_processes 1;
events { worker_connections 64; }
http {
    access_log %[1]s/access.log;
    client_body_temp_path %[1]s/body;
    proxy_temp_path %[1]s/proxy;
    fastcgi_temp_path %[1]s/fastcgi;
    uwsgi_temp_path %[1]s/uwsgi;
    scgi_temp_path %[1]s/scgi;
    include %[1]s/site.conf;
}
`, dir))
	return exec.Command(nginx, "-p", dir, "-c", filepath.Join(dir, "nginx.conf"), "-e", filepath.Join(dir, "error.log"), "-g", "daemon off;"),
		filepath.Join(dir, "error.log")
}

// TestCaddyForwardAuth runs deploy/examples/Caddyfile (the README's snippet) in a real Caddy.
func TestCaddyForwardAuth(t *testing.T) {
	caddy := testenv.Tool(t, "caddy", "caddy")
	proxyPort, upPort := freePort(t), upstream(t)
	_, _, ghPort := protectedSite(t, proxyPort)

	dir := t.TempDir()
	site := fromExample(t, "Caddyfile",
		"auth.example.com {", fmt.Sprintf("http://auth.example.com:%d {", proxyPort),
		"app.example.com {", fmt.Sprintf("http://app.example.com:%d {", proxyPort),
		"127.0.0.1:9000", fmt.Sprintf("127.0.0.1:%d", ghPort),
		"127.0.0.1:8080", fmt.Sprintf("127.0.0.1:%d", upPort))
	writeFile(t, filepath.Join(dir, "Caddyfile"), "{\n\tadmin off\n\tauto_https off\n}\n\n"+site)
	cmd := exec.Command(caddy, "run", "--config", filepath.Join(dir, "Caddyfile"), "--adapter", "caddyfile")
	cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir)
	runProxy(t, proxyPort, cmd, "")
}

// runProxy starts a proxy, walks visitAsPeople through it, and shows its output (and
// the log file, if any) when the test fails.
func runProxy(t *testing.T, port int, cmd *exec.Cmd, logFile string) {
	t.Helper()
	startProxy(t, port, cmd, logFile)
	visitAsPeople(t, port)
}

// startProxy starts a proxy and waits for it to listen on port; its logs are shown if
// the test fails.
func startProxy(t *testing.T, port int, cmd *exec.Cmd, logFile string) {
	t.Helper()
	out := &strings.Builder{}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.WaitDelay = 2 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stopProcess(t, cmd)
	logs := func() string {
		e, _ := os.ReadFile(logFile)
		return out.String() + string(e)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(logs())
		}
	})
	waitPort(t, port, logs)
}

// stopProcess ends a started proxy and its workers when the test ends: SIGTERM to the
// whole process group, and no waiting on pipes a stray child may still hold.
func stopProcess(t *testing.T, cmd *exec.Cmd) {
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		}
	})
}
