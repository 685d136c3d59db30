package e2e

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-id/gatehouse/internal/testenv"
)

// balancer is a small load balancer like the ones in front of replicas: round robin
// over the replicas whose readiness probe passes, and one retry elsewhere for an
// idempotent request whose connection failed.
type balancer struct {
	mu       sync.Mutex
	backends []string
	ready    map[string]bool
	next     int
	client   *http.Client
	retried  atomic.Int64
}

func newBalancer(t *testing.T, backends []string) *httptest.Server {
	b := &balancer{backends: backends, ready: map[string]bool{}, client: &http.Client{
		Timeout:       5 * time.Second,
		Transport:     &http.Transport{MaxIdleConnsPerHost: 64},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
	ctx, cancel := context.WithCancel(context.Background())
	go b.probe(ctx)
	srv := httptest.NewServer(b)
	t.Cleanup(func() { cancel(); srv.Close() })
	return srv
}

func (b *balancer) probe(ctx context.Context) {
	c := &http.Client{Timeout: 300 * time.Millisecond}
	for ctx.Err() == nil {
		for _, be := range b.backends {
			resp, err := c.Get(be + "/-/health/ready/")
			ok := err == nil && resp.StatusCode == http.StatusOK
			if err == nil {
				resp.Body.Close()
			}
			b.mu.Lock()
			b.ready[be] = ok
			b.mu.Unlock()
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (b *balancer) pick(skip string) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	for range b.backends {
		be := b.backends[b.next%len(b.backends)]
		b.next++
		if b.ready[be] && be != skip {
			return be
		}
	}
	return ""
}

func (b *balancer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	tried := ""
	for attempt := 0; attempt < 3; attempt++ {
		be := b.pick(tried)
		if be == "" {
			http.Error(w, "no ready backend", http.StatusBadGateway)
			return
		}
		req, _ := http.NewRequest(r.Method, be+r.URL.RequestURI(), strings.NewReader(string(body)))
		req.Header = r.Header.Clone()
		resp, err := b.client.Do(req)
		if err != nil {
			if r.Method != http.MethodGet { // only idempotent requests are retried
				http.Error(w, "backend failed", http.StatusBadGateway)
				return
			}
			b.retried.Add(1)
			tried = be
			continue
		}
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		io.Copy(w, resp.Body)
		resp.Body.Close()
		return
	}
	http.Error(w, "every backend failed", http.StatusBadGateway)
}

// TestThreeReplicas runs three replicas on PostgreSQL through PgBouncer in transaction
// mode behind a load balancer, with steady forward-auth traffic on valid sessions, and
// during it kills one replica with SIGKILL, restarts another with SIGTERM, and revokes
// a session. No session may be lost, no request may fail, and the revocation must
// reach every replica within 2 seconds.
func TestThreeReplicas(t *testing.T) {
	dir, env, cfgPath := staffSite(t, testenv.PgBouncerURL(t), `server:
  public_url: "http://auth.example.com"
  shutdown_delay: 300ms
`)
	ports := []int{freePort(t), freePort(t), freePort(t)}
	addr := func(i int) string { return fmt.Sprintf("127.0.0.1:%d", ports[i]) }
	replicas := make([]*server, 3)
	startReplica := func(i int) {
		replicas[i] = serve(t, dir, append(env, "GATEHOUSE_SERVER_ADDRESS="+addr(i)), addr(i), "--config", cfgPath)
	}
	for i := range replicas { // concurrent first migrations are in the store conformance suite
		startReplica(i)
	}
	var wg sync.WaitGroup
	var backends []string
	for i := range replicas {
		backends = append(backends, "http://"+addr(i))
	}
	lb := newBalancer(t, backends)

	// Ten people log in through the balancer.
	cookies := staffLogins(t, dir, env, cfgPath, lb.URL, 10)
	revoked := cookies[0]

	check := func(base, cookie string) (int, error) {
		req, _ := http.NewRequest(http.MethodGet, base+"/api/authz/forward-auth", nil)
		for k, v := range traefikHeaders("https://app.example.com/page") {
			req.Header[k] = v
		}
		req.Header.Set("Cookie", cookie)
		resp, err := noRedirects.Do(req)
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}

	// Steady traffic on the sessions that stay valid.
	ctx, stop := context.WithCancel(context.Background())
	var sent, failed atomic.Int64
	var failures sync.Map
	for w := range 8 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for ctx.Err() == nil {
				code, err := check(lb.URL, cookies[1+rng.IntN(len(cookies)-1)])
				sent.Add(1)
				if err != nil || code != http.StatusOK {
					failed.Add(1)
					failures.Store(fmt.Sprint(code, err), true)
				}
			}
		})
	}

	time.Sleep(time.Second)
	replicas[0].cmd.Process.Kill() // SIGKILL: in-flight requests on it fail and are retried
	replicas[0].cmd.Wait()
	time.Sleep(500 * time.Millisecond)
	startReplica(0)
	if code := replicas[1].stop(t); code != 0 { // SIGTERM: drain, exit 0
		t.Errorf("replica 2 exited %d on SIGTERM", code)
	}
	startReplica(1)
	time.Sleep(500 * time.Millisecond)

	// Revoke one session with the CLI and time how long until every replica refuses it.
	out := ok(t, dir, env, "", "session", "list", "--user", "user0", "--config", cfgPath)
	id := regexp.MustCompile(`(?m)^([0-9a-f]{32})\s`).FindStringSubmatch(out)
	if id == nil {
		t.Fatalf("no session of user0 listed:\n%s", out)
	}
	for i := range replicas {
		if code, _ := check(backends[i], revoked); code != http.StatusOK {
			t.Fatalf("before revocation replica %d answers %d for user0", i+1, code)
		}
	}
	revokedAt := time.Now()
	ok(t, dir, env, "", "session", "revoke", id[1], "--config", cfgPath)
	var slowest time.Duration
	for i := range replicas {
		for {
			code, err := check(backends[i], revoked)
			if err == nil && code != http.StatusOK {
				break
			}
			if time.Since(revokedAt) > 10*time.Second {
				t.Fatalf("replica %d still honours a revoked session after 10 s", i+1)
			}
			time.Sleep(10 * time.Millisecond)
		}
		slowest = max(slowest, time.Since(revokedAt))
	}
	time.Sleep(500 * time.Millisecond)
	stop()
	wg.Wait()

	t.Logf("requests %d, failed %d, retried by the balancer %d; revocation reached all 3 replicas in %s",
		sent.Load(), failed.Load(), lb.Config.Handler.(*balancer).retried.Load(), slowest.Round(time.Millisecond))
	if slowest > 2*time.Second {
		t.Errorf("revocation took %s to reach every replica, want ≤ 2 s", slowest)
	}
	if failed.Load() != 0 {
		var kinds []string
		failures.Range(func(k, _ any) bool { kinds = append(kinds, k.(string)); return true })
		t.Errorf("%d of %d requests failed: %v", failed.Load(), sent.Load(), kinds)
	}
	if sent.Load() < 100 {
		t.Errorf("only %d requests were sent: the traffic did not run", sent.Load())
	}
	// No session was lost: every other session passes on every replica, old and new.
	for i := range replicas {
		for _, c := range cookies[1:] {
			if code, err := check(backends[i], c); err != nil || code != http.StatusOK {
				t.Fatalf("after the chaos replica %d answers %d %v for a valid session", i+1, code, err)
			}
		}
	}
}

func traefikHeaders(raw string) http.Header {
	u, _ := url.Parse(raw)
	return http.Header{"X-Forwarded-Proto": {u.Scheme}, "X-Forwarded-Host": {u.Host}, "X-Forwarded-Uri": {u.RequestURI()},
		"X-Forwarded-Method": {"GET"}, "Accept": {"text/html"}}
}

// loginThrough signs a user in through base and returns the session's Cookie header.
func loginThrough(t *testing.T, base, user, password string) string {
	t.Helper()
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(base + "/login")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var csrf *http.Cookie
	for _, ck := range resp.Cookies() {
		if ck.Name == "gatehouse_csrf" {
			csrf = ck
		}
	}
	form := url.Values{"username": {user}, "password": {password}, "csrf_token": {csrfOf(t, string(page))}}
	req, _ := http.NewRequest(http.MethodPost, base+"/login", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.AddCookie(csrf)
	resp, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	for _, ck := range resp.Cookies() {
		if ck.Name == "gatehouse_session" {
			return ck.Name + "=" + ck.Value
		}
	}
	t.Fatalf("login of %s: %d, no session cookie", user, resp.StatusCode)
	return ""
}

// noRedirects is a client that shows each redirect instead of following it.
var noRedirects = &http.Client{Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// staffSite writes a config (serverYAML, then a rule letting group "staff" into
// app.example.com) for a Gatehouse on dbURL, and returns its folder, environment and
// config path.
func staffSite(t *testing.T, dbURL, serverYAML string) (dir string, env []string, cfgPath string) {
	t.Helper()
	dir = t.TempDir()
	cfgPath = dir + "/gatehouse.yaml"
	writeFile(t, cfgPath, serverYAML+`access:
  admin_groups: [admins]
  rules:
    - hosts: [app.example.com]
      groups: [staff]
groups:
  - name: staff
  - name: admins
`)
	return dir, cleanEnv("GATEHOUSE_DATABASE_URL=" + dbURL), cfgPath
}

// staffLogins adds n members of "staff" with the CLI, signs each in through base, and
// returns their session cookies.
func staffLogins(t *testing.T, dir string, env []string, cfgPath, base string, n int) []string {
	t.Helper()
	var cookies []string
	for i := range n {
		name := fmt.Sprint("user", i)
		ok(t, dir, env, "password-"+name+"\n", "user", "add", name, "--group", "staff", "--password-stdin", "--config", cfgPath)
		cookies = append(cookies, loginThrough(t, base, name, "password-"+name))
	}
	return cookies
}
