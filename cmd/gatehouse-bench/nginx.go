package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse-id/gatehouse/internal/bench"
)

// nginxScenario is what users feel: Debian's nginx running the README's snippet
// (deploy/examples/nginx.conf) in front of an app, with a valid session, against the
// same nginx proxying the same app on the same settings without the auth_request
// lines. nginx, the app and Gatehouse share the servers' core. Without nginx
// installed the table says so instead.
func nginxScenario(ctx context.Context, o suiteOptions, place placement, work string, gh *gatehouseProcess, cookie string, logf func(string, ...any)) ([]row, error) {
	nginx, err := exec.LookPath("nginx")
	if err != nil {
		if _, statErr := os.Stat("/usr/sbin/nginx"); statErr != nil {
			return []row{{backend: "nginx", scenario: "E. end to end through nginx: not run, nginx is not installed (Debian: apt-get install nginx)"}}, nil
		}
		nginx = "/usr/sbin/nginx"
	}
	snippet, err := os.ReadFile(o.nginxConf)
	if err != nil {
		return nil, fmt.Errorf("the nginx snippet: %w (run from the repository root, or pass -nginx-conf)", err)
	}
	app, appAddr, err := startSelf(ctx, place, "app")
	if err != nil {
		return nil, err
	}
	defer func() { app.Process.Kill(); app.Wait() }()
	authPort, plainPort := freePort(), freePort()
	site, err := benchSite(string(snippet), authPort, plainPort, strings.TrimPrefix(gh.base, "http://"), appAddr)
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(work, "nginx")
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return nil, err
	}
	os.Chmod(dir, 0o777) // nginx's workers run as nobody when started by root
	conf := bench.NginxMain(dir, 1024, false)
	if err := os.WriteFile(filepath.Join(dir, "site.conf"), []byte(site), 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "nginx.conf"), []byte(conf), 0o644); err != nil {
		return nil, err
	}
	errLog := filepath.Join(dir, "error.log")
	cmd := place.serverCommand(ctx, nginx, "-p", dir, "-c", filepath.Join(dir, "nginx.conf"), "-e", errLog, "-g", "daemon off;")
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting nginx: %w", err)
	}
	defer func() { cmd.Process.Signal(os.Interrupt); cmd.Wait() }()
	authURL := fmt.Sprintf("http://127.0.0.1:%d/index.html?page=1", authPort)
	plainURL := fmt.Sprintf("http://127.0.0.1:%d/index.html?page=1", plainPort)
	if err := checkNginx(ctx, authURL, plainURL, cookie); err != nil {
		b, _ := os.ReadFile(errLog)
		return nil, fmt.Errorf("%w\nnginx's error log:\n%s", err, b)
	}
	workers := childPIDs(cmd.Process.Pid)
	if len(workers) == 0 {
		return nil, fmt.Errorf("nginx (pid %d) has no worker process", cmd.Process.Pid)
	}
	hdr := http.Header{"Host": {"app.example.com"}, "Accept": {"text/html,application/xhtml+xml"}}
	onCore := append(workers, app.Process.Pid)
	plain := &target{backend: "nginx", scenario: "nginx proxying to the app, no auth", pids: onCore, url: plainURL, hdr: hdr, cookie: cookie}
	auth := &target{backend: "SQLite", scenario: "E. nginx with the README's auth_request snippet, valid session", pids: append(onCore, gh.cmd.Process.Pid),
		url: authURL, hdr: hdr, cookie: cookie}
	logf("nginx: %d rounds of %s each, with and without the snippet", o.rounds, o.duration)
	if err := measureRounds(ctx, o, place, []*target{plain, auth}, logf); err != nil {
		return nil, err
	}
	return []row{plain.row(place, "reference", "nginx and the app"), auth.row(place, ratioTo(auth, plain, place), "nginx, the app and Gatehouse")}, nil
}

// benchSite points the README's snippet at the suite's ports and adds a copy of its
// app server, without the auth_request lines, on plainPort.
func benchSite(snippet string, authPort, plainPort int, ghAddr, appAddr string) (string, error) {
	for _, want := range []string{"listen 80;", "127.0.0.1:9000", "127.0.0.1:8080", "# An app behind Gatehouse.", "auth_request /gatehouse-auth;", "error_page 401 = @gatehouse_401;"} {
		if !strings.Contains(snippet, want) {
			return "", fmt.Errorf("the nginx snippet no longer contains %q: update the bench suite with it", want)
		}
	}
	listen := fmt.Sprintf("listen 127.0.0.1:%d;", authPort)
	site := strings.NewReplacer("listen 80;", listen, "127.0.0.1:9000", ghAddr, "127.0.0.1:8080", appAddr).Replace(snippet)
	_, appBlock, _ := strings.Cut(site, "# An app behind Gatehouse.")
	var plain strings.Builder
	for line := range strings.Lines(appBlock) {
		t := strings.TrimSpace(line)
		if t == "auth_request /gatehouse-auth;" || strings.HasPrefix(t, "error_page ") && strings.Contains(t, "@gatehouse_") {
			continue
		}
		plain.WriteString(strings.ReplaceAll(line, listen, fmt.Sprintf("listen 127.0.0.1:%d;", plainPort)))
	}
	return site + "\n# The same app without auth (the bench suite's reference).\n" + plain.String(), nil
}

// checkNginx makes sure the two sites are what they claim: the snippet lets the
// session through to the app and sends a browser without one to sign in; the plain
// site answers without asking.
func checkNginx(ctx context.Context, authURL, plainURL, cookie string) error {
	c := &http.Client{Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func(url, cookie string) (int, string, error) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		req.Host = "app.example.com"
		req.Header.Set("Accept", "text/html")
		if cookie != "" {
			req.Header.Set("Cookie", cookie)
		}
		resp, err := c.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), nil
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		code, body, err := get(authURL, cookie)
		if err == nil && code == http.StatusOK && strings.Contains(body, "hello from the app") {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nginx with the snippet did not pass a valid session to the app within 15 s: %d %q %v", code, body, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if code, _, err := get(authURL, ""); err != nil || code != http.StatusFound {
		return fmt.Errorf("nginx with the snippet answered %d (%v) to a browser without a session, not 302 to sign in", code, err)
	}
	if code, body, err := get(plainURL, ""); err != nil || code != http.StatusOK || !strings.Contains(body, "hello from the app") {
		return fmt.Errorf("nginx without auth answered %d %q (%v), not the app", code, body, err)
	}
	return nil
}

// childPIDs lists the child processes of pid (nginx's workers).
func childPIDs(pid int) []int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	if err != nil {
		return nil
	}
	var pids []int
	for _, f := range strings.Fields(string(b)) {
		if n, err := strconv.Atoi(f); err == nil {
			pids = append(pids, n)
		}
	}
	return pids
}
