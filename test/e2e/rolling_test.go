package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-id/gatehouse/internal/testenv"
)

// A rolling restart of three replicas behind the README's nginx upstream
// (deploy/examples/nginx-replicas.conf in nginx.conf) fails no request.
func TestRollingRestartBehindNginx(t *testing.T) {
	rollingRestart(t, func(t *testing.T, proxyPort, appPort int, replicas []string) {
		upstream := fromExample(t, "nginx-replicas.conf",
			"10.0.0.11:9000", replicas[0], "10.0.0.12:9000", replicas[1], "10.0.0.13:9000", replicas[2])
		cmd, logFile := nginxCommand(t, proxyPort, 9000, appPort)
		site := filepath.Join(cmd.Args[2], "site.conf") // nginx -p DIR
		b, _ := os.ReadFile(site)
		start := strings.Index(string(b), "upstream gatehouse {")
		end := start + strings.Index(string(b)[start:], "}\n") + 2
		if start < 0 || !strings.Contains(string(b)[start:end], "keepalive") {
			t.Fatal("nginx.conf no longer starts with the gatehouse upstream block: update this test")
		}
		writeFile(t, site, string(b)[:start]+upstream+string(b)[end:])
		startProxy(t, proxyPort, cmd, logFile)
	})
}

// The same through deploy/examples/Caddyfile-replicas in a current Caddy.
func TestRollingRestartBehindCaddy(t *testing.T) {
	caddy := os.Getenv(currentCaddyEnv)
	if caddy == "" {
		testenv.Missing(t, "a current Caddy built with go install ("+currentCaddyEnv+")")
	}
	rollingRestart(t, func(t *testing.T, proxyPort, appPort int, replicas []string) {
		dir := t.TempDir()
		site := fromExample(t, "Caddyfile-replicas",
			"10.0.0.11:9000", replicas[0], "10.0.0.12:9000", replicas[1], "10.0.0.13:9000", replicas[2],
			"auth.example.com {", fmt.Sprintf("http://auth.example.com:%d {", proxyPort),
			"app.example.com {", fmt.Sprintf("http://app.example.com:%d {", proxyPort),
			"127.0.0.1:8080", fmt.Sprintf("127.0.0.1:%d", appPort))
		writeFile(t, filepath.Join(dir, "Caddyfile"), "{\n\tadmin off\n\tauto_https off\n}\n\n"+site)
		cmd := exec.Command(caddy, "run", "--config", filepath.Join(dir, "Caddyfile"), "--adapter", "caddyfile")
		cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir)
		startProxy(t, proxyPort, cmd, "")
	})
}

// rollingRestart runs three replicas on PostgreSQL through PgBouncer behind the proxy
// that startProxy starts, sends steady forward-auth traffic with valid sessions through
// it, and restarts the replicas one after another (SIGTERM, then start again), as a
// Deployment's rolling update does: not one request may fail.
func rollingRestart(t *testing.T, startProxy func(t *testing.T, proxyPort, appPort int, replicas []string)) {
	proxyPort, appPort := freePort(t), upstream(t)
	dir, env, cfgPath := staffSite(t, testenv.PgBouncerURL(t), fmt.Sprintf(`server:
  public_url: "http://auth.example.com:%d"
  shutdown_delay: 300ms
session:
  cookie_domain: example.com
`, proxyPort))
	addrs := []string{fmt.Sprintf("127.0.0.1:%d", freePort(t)), fmt.Sprintf("127.0.0.1:%d", freePort(t)), fmt.Sprintf("127.0.0.1:%d", freePort(t))}
	replicas := make([]*server, 3)
	startReplica := func(i int) {
		replicas[i] = serve(t, dir, append(env, "GATEHOUSE_SERVER_ADDRESS="+addrs[i]), addrs[i], "--config", cfgPath)
	}
	for i := range replicas {
		startReplica(i)
	}
	cookies := staffLogins(t, dir, env, cfgPath, "http://"+addrs[0], 4)
	startProxy(t, proxyPort, appPort, addrs)

	b := newBrowser(t, proxyPort)
	check := func(cookie string) (int, error) {
		req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("http://app.example.com:%d/page", proxyPort), nil)
		req.Header.Set("Accept", "text/html")
		req.Header.Set("Cookie", cookie)
		resp, err := b.client.Do(req)
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	if code, err := check(cookies[0]); code != http.StatusOK {
		t.Fatalf("through the proxy before the restart: %d %v", code, err)
	}
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var sent, failed atomic.Int64
	var failures sync.Map
	for w := range 6 {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				code, err := check(cookies[(w+i)%len(cookies)])
				sent.Add(1)
				if err != nil || code != http.StatusOK {
					failed.Add(1)
					failures.Store(fmt.Sprint(code, " ", err), true)
				}
			}
		})
	}
	// Traffic must run through each step however fast the machine is: the test waits
	// for requests to pass while a replica is down and again once it is back.
	trafficFlows := func(what string) {
		before := sent.Load()
		waitFor(t, 30*time.Second, "requests to be answered "+what, func() bool { return sent.Load() >= before+30 })
	}
	restarted := time.Now()
	for i := range replicas {
		if code := replicas[i].stop(t); code != 0 {
			t.Errorf("replica %d exited %d on SIGTERM", i+1, code)
		}
		trafficFlows(fmt.Sprintf("while replica %d is down", i+1))
		startReplica(i)
		trafficFlows(fmt.Sprintf("after replica %d is back", i+1))
	}
	took := time.Since(restarted)
	stop()
	wg.Wait()
	t.Logf("rolling restart of 3 replicas in %s: %d requests, %d failed", took.Round(time.Millisecond), sent.Load(), failed.Load())
	if failed.Load() != 0 {
		var kinds []string
		failures.Range(func(k, _ any) bool { kinds = append(kinds, k.(string)); return true })
		t.Errorf("%d of %d requests failed during the rolling restart: %v", failed.Load(), sent.Load(), kinds)
	}
}
