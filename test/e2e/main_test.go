// Package e2e runs the real gatehouse binary the way a user does — the README's run
// command, the CLI, and a real nginx and Caddy in front of a real upstream app — and
// checks what a person would see.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-id/gatehouse/internal/testenv"
)

// binary is the gatehouse binary built once for all tests.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "gatehouse-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "gatehouse")
	build := exec.Command("go", "build", "-o", binary, "./cmd/gatehouse")
	build.Dir = "../.."
	build.Env = append(os.Environ(), "CGO_ENABLED=0") // the release build: static, no cgo
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building gatehouse: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// cleanEnv is the environment without GATEHOUSE_* variables, plus extra. On
// PostgreSQL it also gives the server key, as every replica of a real deployment is
// given one (from a Secret): with SQLite the key file beside the database serves. The
// metrics listener is off unless extra names its address.
func cleanEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GATEHOUSE_") {
			env = append(env, kv)
		}
	}
	metrics := false
	for _, kv := range extra {
		if strings.HasPrefix(kv, "GATEHOUSE_DATABASE_URL=postgres") {
			env = append(env, "GATEHOUSE_SERVER_SECRET="+testServerSecret)
		}
		metrics = metrics || strings.HasPrefix(kv, "GATEHOUSE_SERVER_METRICS_ADDRESS=")
	}
	if !metrics { // many servers run at once here: only tests that read metrics listen for them
		env = append(env, "GATEHOUSE_SERVER_METRICS_ADDRESS=")
	}
	return append(env, extra...)
}

// testServerSecret is the server key of the PostgreSQL tests' replicas.
const testServerSecret = "test-server-key-0123456789abcdef0123456789abcdef"

// result is what a finished command printed and how it exited.
type result struct {
	stdout, stderr string
	code           int
}

// gh runs one gatehouse command to completion.
func gh(t *testing.T, dir string, env []string, stdin string, args ...string) result {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Dir = dir
	cmd.Env = env
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("running gatehouse %v: %v", args, err)
	}
	return result{out.String(), errb.String(), code}
}

// ok runs a command that must succeed.
func ok(t *testing.T, dir string, env []string, stdin string, args ...string) string {
	t.Helper()
	r := gh(t, dir, env, stdin, args...)
	if r.code != 0 {
		t.Fatalf("gatehouse %s: exit %d\n%s%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

// server is a running `gatehouse serve`.
type server struct {
	cmd    *exec.Cmd
	mu     sync.Mutex
	stderr bytes.Buffer
	lines  chan string
}

// serve starts `gatehouse serve` and waits until it is ready at addr.
func serve(t *testing.T, dir string, env []string, addr string, args ...string) *server {
	t.Helper()
	s := startServe(t, dir, env, args...)
	s.waitReady(t, addr)
	return s
}

// startServe starts `gatehouse serve` without waiting for it.
func startServe(t *testing.T, dir string, env []string, args ...string) *server {
	t.Helper()
	s := &server{cmd: exec.Command(binary, append([]string{"serve"}, args...)...), lines: make(chan string, 1000)}
	s.cmd.Dir, s.cmd.Env = dir, env
	pipe, err := s.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(pipe)
		for sc.Scan() {
			s.mu.Lock()
			s.stderr.WriteString(sc.Text() + "\n")
			s.mu.Unlock()
			select {
			case s.lines <- sc.Text():
			default:
			}
		}
	}()
	t.Cleanup(func() {
		if s.cmd.ProcessState == nil {
			s.cmd.Process.Kill()
			s.cmd.Wait()
		}
		if t.Failed() {
			t.Logf("gatehouse serve output:\n%s", s.output())
		}
	})
	return s
}

// waitReady waits until the server's readiness endpoint at addr answers 200.
func (s *server) waitReady(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/-/health/ready/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("gatehouse did not become ready at %s:\n%s", addr, s.output())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *server) output() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stderr.String()
}

// waitLine returns the first line of output matching re.
func (s *server) waitLine(t *testing.T, re *regexp.Regexp) []string {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		select {
		case l := <-s.lines:
			if m := re.FindStringSubmatch(l); m != nil {
				return m
			}
		case <-deadline:
			t.Fatalf("gatehouse never printed %s:\n%s", re, s.output())
		}
	}
}

// stop sends SIGTERM and returns the exit code.
func (s *server) stop(t *testing.T) int {
	t.Helper()
	s.cmd.Process.Signal(os.Interrupt)
	done := make(chan error, 1)
	go func() { done <- s.cmd.Wait() }()
	select {
	case err := <-done:
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode()
		}
		return 0
	case <-time.After(20 * time.Second):
		t.Fatal("gatehouse did not exit after SIGTERM")
		return -1
	}
}

// freePort returns a loopback port nobody listens on.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// upstream is the protected app: it echoes the identity headers it received.
func upstream(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "app says hello to %q in %q <%s> (%s) at %s\n", r.Header.Get("Remote-User"), r.Header.Get("Remote-Groups"),
			r.Header.Get("Remote-Email"), r.Header.Get("Remote-Name"), r.URL.RequestURI())
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return l.Addr().(*net.TCPAddr).Port
}

// browser is an HTTP client that sends every host name to one loopback port (as DNS
// would send them to the proxy), keeps cookies, and does not follow redirects.
type browser struct {
	t         *testing.T
	client    *http.Client
	jar       *jar
	proxyPort int
}

// port is the proxy port b connects to.
func (b *browser) port() int { return b.proxyPort }

func newBrowser(t *testing.T, proxyPort int) *browser {
	dialer := &net.Dialer{}
	j := newJar()
	return &browser{t: t, jar: j, proxyPort: proxyPort, client: &http.Client{
		Jar: j,
		Transport: &http.Transport{DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return dialer.DialContext(ctx, network, fmt.Sprintf("127.0.0.1:%d", proxyPort))
		}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       10 * time.Second,
	}}
}

func (b *browser) do(method, url string, body io.Reader, header http.Header) (*http.Response, string) {
	b.t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Accept", "text/html,application/xhtml+xml")
	for k, v := range header {
		req.Header[k] = v
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := b.client.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp, string(data)
}

func (b *browser) get(url string) (*http.Response, string) {
	return b.do(http.MethodGet, url, nil, nil)
}

// signIn signs the browser in with a password on Gatehouse's login page at auth.
func (b *browser) signIn(auth, user, password string) {
	b.t.Helper()
	_, page := b.get(auth + "/login")
	form := url.Values{"username": {user}, "password": {password}, "csrf_token": {csrfOf(b.t, page)}}
	if resp, body := b.do(http.MethodPost, auth+"/login", strings.NewReader(form.Encode()), nil); resp.StatusCode != http.StatusSeeOther {
		b.t.Fatalf("signing %s in: %d\n%s", user, resp.StatusCode, body)
	}
}

var csrfField = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)

func csrfOf(t *testing.T, page string) string {
	t.Helper()
	m := csrfField.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no csrf_token in page:\n%s", page)
	}
	return m[1]
}

func writeFile(t *testing.T, path, body string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
}

var regexpRD = regexp.MustCompile(`name="rd" value="([^"]*)"`)

// waitFor polls cond until it holds (testenv.WaitFor).
func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	testenv.WaitFor(t, limit, what, cond)
}

// fromEnv returns the tool scripts/test.sh installed and named in the environment
// variable env, skipping (or, in CI, failing) the test when it is not set.
func fromEnv(t *testing.T, env, what string) string {
	t.Helper()
	v := os.Getenv(env)
	if v == "" {
		testenv.Missing(t, what+" ("+env+")")
	}
	return v
}
