package e2e

import (
	"bufio"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gatehouse-id/gatehouse/internal/bench"
	"github.com/gatehouse-id/gatehouse/internal/testenv"
)

// protectedSite starts Gatehouse (its config pointing the login pages at the proxy's
// port) with two users, and returns its port.
func protectedSite(t *testing.T, proxyPort int, extraConfig ...string) (dir string, env []string, ghPort int) {
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
    - hosts: [app.example.com]      # Express: /api/ is public, the rest for Family
      paths: [/api/]
      public: true
    - hosts: [app.example.com]
      groups: [Family]
    - hosts: [www.example.com]      # Express: /admin for admins, the rest public
      paths: [/admin]
      groups: [admins]
    - hosts: [www.example.com]
      public: true
    - hosts: [files.example.com]    # http.FileServer: /public/ is public, the rest for Family
      paths: [/public/]
      public: true
    - hosts: [files.example.com]
      groups: [Family]
    - hosts: [ws.example.com]       # an app with a websocket
      groups: [Family]
    - hosts: [dav.example.com]      # Express, standing in for a CalDAV server: app passwords too
      groups: [Family]
      allow_app_passwords: true
groups:
  - name: Family
  - name: admins
oidc:
  clients:
    - id: photos
      type: public
      redirect_uris: ["http://app.example.com:%[2]d/oauth/callback"]
      groups: [Family]
`, ghPort, proxyPort)+strings.Join(extraConfig, ""))
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

// refusedAsPerson opens app as bob, who is signed in but not in its group: the
// browser gets the refusal page — the 403 itself (Caddy, Traefik), or nginx's redirect
// to the same page on Gatehouse — saying who is signed in and why, whose "sign in as
// someone else" link signs bob out and brings the browser back to the app's sign-in.
// A script gets a plain 403.
func refusedAsPerson(t *testing.T, bob *browser, app, auth string) {
	t.Helper()
	resp, body := bob.get(app)
	if resp.StatusCode == http.StatusFound {
		if want := auth + "/refused?rd=" + url.QueryEscape(app); resp.Header.Get("Location") != want {
			t.Fatalf("bob refused: sent to %q, want the refusal page %q", resp.Header.Get("Location"), want)
		}
		resp, body = bob.get(resp.Header.Get("Location"))
	}
	u, _ := url.Parse(app)
	host := u.Hostname()
	if resp.StatusCode != http.StatusForbidden || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") ||
		!strings.Contains(body, "signed in as <strong>bob</strong>") || !strings.Contains(body, "may not open <strong>"+host+"</strong>") ||
		!strings.Contains(body, "members of Family") {
		t.Fatalf("bob is not in Family: %d %q, want the 403 refusal page\n%s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	m := regexp.MustCompile(`href="([^"]+)">Sign in as someone else`).FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("the refusal page has no link to sign in as someone else:\n%s", body)
	}
	switchURL := html.UnescapeString(m[1])
	if strings.HasPrefix(switchURL, "/") { // the page on Gatehouse's own address links within it
		switchURL = auth + switchURL
	}
	if !strings.HasPrefix(switchURL, auth+"/logout?rd=") {
		t.Fatalf("the switch-account link %q is not Gatehouse's sign-out with the app to come back to", switchURL)
	}
	resp, page := bob.get(switchURL)
	form := url.Values{"csrf_token": {csrfOf(t, page)}, "rd": {regexpRD.FindStringSubmatch(page)[1]}}
	if resp, _ := bob.do(http.MethodPost, auth+"/logout", strings.NewReader(form.Encode()), nil); resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != app {
		t.Fatalf("signing out to switch account: %d to %q, want 303 back to %q", resp.StatusCode, resp.Header.Get("Location"), app)
	}
	if resp, _ := bob.get(app); resp.StatusCode != http.StatusFound || !strings.Contains(resp.Header.Get("Location"), "/login?rd=") {
		t.Fatalf("after switching account the app answers %d to %q, want the sign-in page", resp.StatusCode, resp.Header.Get("Location"))
	}
	bob.signIn(auth, "bob", "bob-password")
	if resp, body := bob.do(http.MethodGet, app, nil, http.Header{"Accept": {"application/json"}}); resp.StatusCode != http.StatusForbidden || strings.Contains(body, "Sign in as someone else") {
		t.Fatalf("a script of bob's: %d, want a 403 without the page for people\n%s", resp.StatusCode, body)
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
	spoofed := http.Header{"Remote_User": {"root"}, "X-Authentik_username": {"root"}}
	for k, v := range spoofedIdentity {
		spoofed[k] = v
	}
	resp, body := b.do(http.MethodGet, app, nil, spoofed)
	got := appAnswerOf(t, resp, body)
	for _, k := range []string{"remote_user", "x-authentik_username"} {
		if v := got.Identity[k]; v != "" {
			t.Errorf("after login: the app received the client's own %s %q", k, v)
		}
	}
	want := map[string]string{"remote-user": "alice", "remote-groups": "Family", "remote-email": "alice@example.com", "remote-name": "Alice",
		"x-authentik-username": "alice", "x-authentik-groups": "Family", "x-authentik-email": "alice@example.com", "x-authentik-name": "Alice"}
	if got.Route != "photos" || got.URL != "/photos/42?size=large" {
		t.Fatalf("after login: the app answered %+v, want its photos route at /photos/42?size=large", got)
	}
	for k, v := range want {
		if got.Identity[k] != v {
			t.Errorf("after login (with spoofed identity headers from the client): the app got %s %q, want %q (all: %v)", k, got.Identity[k], v, got.Identity)
		}
	}
	if uid := got.Identity["x-authentik-uid"]; uid == "" || uid == spoofedIdentity.Get("X-authentik-uid") {
		t.Errorf("after login: X-authentik-uid %q, want alice's id", uid)
	}

	websocketThrough(t, b, fmt.Sprintf("http://ws.example.com:%d/socket", proxyPort))

	bob := newBrowser(t, proxyPort)
	_, page = bob.get(wantLogin)
	login(bob, "bob", "bob-password", page)
	refusedAsPerson(t, bob, app, auth)

	_, home := b.get(auth + "/")
	form := url.Values{"csrf_token": {csrfOf(t, home)}}
	if resp, _ := b.do(http.MethodPost, auth+"/logout", strings.NewReader(form.Encode()), nil); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("logout: %d", resp.StatusCode)
	}
	if resp, _ := b.get(app); resp.StatusCode != http.StatusFound {
		t.Fatalf("after logout: %d, want 302 to the login page", resp.StatusCode)
	}
}

// TestNginxAuthRequest runs deploy/examples/nginx.conf (the README's snippet) in a real
// nginx in front of Express and http.FileServer: people's flow, then the attacks.
func TestNginxAuthRequest(t *testing.T) {
	proxyPort, apps := freePort(t), startApps(t)
	ghDir, env, ghPort := protectedSite(t, proxyPort)
	cmd, logFile := nginxCommand(t, proxyPort, ghPort, apps.express, apps.moreHosts()...)
	runProxy(t, proxyPort, cmd, logFile)
	appPasswordsThroughProxy(t, proxyPort, ghDir, env)
	explainAgreesWithProxy(t, proxyPort, ghDir, env)
}

// protectedApps are the real apps behind the proxy: Express serves app.example.com
// and www.example.com, Go's http.FileServer files.example.com.
type protectedApps struct{ express, files, websocket int }

func startApps(t *testing.T) protectedApps {
	return protectedApps{express: expressApp(t), files: fileServerApp(t), websocket: websocketApp(t)}
}

// moreHosts are the hosts served by copies of the example's app block.
func (a protectedApps) moreHosts() []site {
	return []site{{"www.example.com", a.express}, {"files.example.com", a.files}, {"dav.example.com", a.express}, {"ws.example.com", a.websocket}}
}

// site is one more protected host: a copy of the example's app block with this host
// name and upstream port.
type site struct {
	host string
	port int
}

// withMoreSites appends, for each site, a copy of the example's app block (from
// blockStart to the end of the file) naming that host and upstream port instead.
func withMoreSites(t *testing.T, config, blockStart, appHost, appUpstream string, sites []site) string {
	t.Helper()
	i := strings.Index(config, blockStart)
	if i < 0 {
		t.Fatalf("the example no longer contains %q: update this test with the example", blockStart)
	}
	block := config[i:]
	for _, s := range sites {
		config += "\n" + strings.ReplaceAll(strings.ReplaceAll(block, appHost, s.host), appUpstream, fmt.Sprintf("127.0.0.1:%d", s.port))
	}
	return config
}

// nginxCommand prepares a real nginx running deploy/examples/nginx.conf with its
// addresses pointed at the test's ports (and its app block copied for more sites), and
// the file its errors go to.
func nginxCommand(t *testing.T, proxyPort, ghPort, upPort int, more ...site) (*exec.Cmd, string) {
	t.Helper()
	site := fromExample(t, "nginx.conf",
		"listen 80;", fmt.Sprintf("listen 127.0.0.1:%d;", proxyPort),
		"127.0.0.1:9000", fmt.Sprintf("127.0.0.1:%d", ghPort))
	site = withMoreSites(t, site, "# An app behind Gatehouse.", "app.example.com", "127.0.0.1:8080", more)
	site = strings.ReplaceAll(site, "127.0.0.1:8080", fmt.Sprintf("127.0.0.1:%d", upPort))
	return nginxWith(t, site)
}

// nginxWith prepares Debian's nginx serving the server blocks of site from a folder of
// its own, and names the file its errors go to.
func nginxWith(t *testing.T, site string) (*exec.Cmd, string) {
	t.Helper()
	nginx := testenv.Tool(t, "nginx", "nginx")
	dir := t.TempDir()
	os.Chmod(dir, 0o777) // nginx workers run as nobody when started by root
	writeFile(t, filepath.Join(dir, "site.conf"), site)
	writeFile(t, filepath.Join(dir, "nginx.conf"), bench.NginxMain(dir, 64, true))
	return exec.Command(nginx, "-p", dir, "-c", filepath.Join(dir, "nginx.conf"), "-e", filepath.Join(dir, "error.log"), "-g", "daemon off;"),
		filepath.Join(dir, "error.log")
}

// TestCaddyForwardAuth runs deploy/examples/Caddyfile (the README's snippet) in
// Debian's Caddy (2.6) in front of Express and http.FileServer.
func TestCaddyForwardAuth(t *testing.T) {
	runCaddy(t, testenv.Tool(t, "caddy", "caddy"))
}

// currentCaddyEnv names a current Caddy that scripts/test.sh builds with go install
// into a cache folder outside the repository: its forward_auth copies headers
// differently from Debian's 2.6, so the snippet is run in both.
const currentCaddyEnv = "TEST_GATEHOUSE_CADDY_CURRENT"

// TestCurrentCaddyForwardAuth runs the same Caddyfile in a current Caddy release.
func TestCurrentCaddyForwardAuth(t *testing.T) {
	caddy := os.Getenv(currentCaddyEnv)
	if caddy == "" {
		testenv.Missing(t, "a current Caddy built with go install ("+currentCaddyEnv+")")
	}
	runCaddy(t, caddy)
}

func runCaddy(t *testing.T, caddy string) {
	proxyPort, apps := freePort(t), startApps(t)
	ghDir, env, ghPort := protectedSite(t, proxyPort)

	dir := t.TempDir()
	site := fromExample(t, "Caddyfile",
		"auth.example.com {", fmt.Sprintf("http://auth.example.com:%d {", proxyPort),
		"127.0.0.1:9000", fmt.Sprintf("127.0.0.1:%d", ghPort))
	site = withMoreSites(t, site, "app.example.com {", "app.example.com", "127.0.0.1:8080", apps.moreHosts())
	site = strings.ReplaceAll(site, "127.0.0.1:8080", fmt.Sprintf("127.0.0.1:%d", apps.express))
	site = regexp.MustCompile(`(?m)^([a-z]+\.example\.com) \{`).ReplaceAllString(site, fmt.Sprintf("http://$1:%d {", proxyPort))
	writeFile(t, filepath.Join(dir, "Caddyfile"), "{\n\tadmin off\n\tauto_https off\n}\n\n"+site)
	cmd := exec.Command(caddy, "run", "--config", filepath.Join(dir, "Caddyfile"), "--adapter", "caddyfile")
	cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir)
	runProxy(t, proxyPort, cmd, "")
	appPasswordsThroughProxy(t, proxyPort, ghDir, env)
	explainAgreesWithProxy(t, proxyPort, ghDir, env)
}

// runProxy starts a proxy, walks visitAsPeople through it, attacks it, and shows its
// output (and the log file, if any) when the test fails.
func runProxy(t *testing.T, port int, cmd *exec.Cmd, logFile string) {
	t.Helper()
	startProxy(t, port, cmd, logFile)
	visitAsPeople(t, port)
	attackProxy(t, port)
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

// websocketThrough opens a websocket to url as b: the proxy must ask Gatehouse, pass the
// upgrade to the app with the signed-in person's identity, and then carry the
// connection both ways. A browser nobody signed in to never gets the upgrade.
func websocketThrough(t *testing.T, b *browser, url string) {
	t.Helper()
	upgrade := func(b *browser) *http.Response {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		req.Header = http.Header{"Connection": {"Upgrade"}, "Upgrade": {"websocket"}, "Sec-Websocket-Version": {"13"},
			"Sec-Websocket-Key": {"dGhlIHNhbXBsZSBub25jZQ=="}, "Remote-User": {"root"}}
		// Without the client's timeout: it would wrap the upgraded connection in a
		// body that can only be read.
		c := *b.client
		c.Timeout = 0
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("websocket to %s: %v", url, err)
		}
		return resp
	}
	if resp := upgrade(newBrowser(t, b.port())); resp.StatusCode == http.StatusSwitchingProtocols {
		resp.Body.Close()
		t.Fatal("a websocket without signing in was upgraded")
	} else {
		resp.Body.Close()
	}
	resp := upgrade(b)
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("App-Saw-User") != "alice" {
		t.Fatalf("websocket through the proxy: %d, the app saw %q", resp.StatusCode, resp.Header.Get("App-Saw-User"))
	}
	conn, ok := resp.Body.(io.ReadWriteCloser)
	if !ok {
		t.Fatal("the upgraded connection cannot be written")
	}
	if _, err := conn.Write([]byte("ping\n")); err != nil {
		t.Fatal(err)
	}
	got, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil || got != "ping\n" {
		t.Fatalf("websocket echo: %q %v", got, err)
	}
}
