package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-id/gatehouse/internal/testenv"
	"github.com/jackc/pgx/v5"
)

// TestPostgresOutage stops PostgreSQL (a cluster of the test's own) for 60 s
// (TEST_GATEHOUSE_OUTAGE shortens it) while people use their sessions: every checked session keeps passing,
// logins get a clear 503 page, readiness drops only after database.unready_after,
// liveness never does; afterwards everything recovers without a restart and nothing
// written before is lost.
func TestPostgresOutage(t *testing.T) {
	outage := 60 * time.Second
	if v := os.Getenv("TEST_GATEHOUSE_OUTAGE"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("TEST_GATEHOUSE_OUTAGE: %v", err)
		}
		outage = d
	}
	cluster := testenv.NewCluster(t)
	dbURL := cluster.URL
	addr, metrics := fmt.Sprintf("127.0.0.1:%d", freePort(t)), fmt.Sprintf("127.0.0.1:%d", freePort(t))
	base := "http://" + addr
	dir, env, cfgPath := staffSite(t, dbURL, fmt.Sprintf("server:\n  address: %q\n  public_url: %q\ndatabase:\n  unready_after: 5s\n", addr, base))
	env = append(env, "GATEHOUSE_SERVER_METRICS_ADDRESS="+metrics) // the last value wins over cleanEnv's ""
	serve(t, dir, env, addr, "--config", cfgPath)
	cookies := staffLogins(t, dir, env, cfgPath, base, 5)
	// Adding a user is a change other replicas drop cached sessions for; one this
	// replica applies after the checks below would leave a session uncached into the
	// outage. Real traffic makes that rare; the test makes it certain, so it waits.
	waitFeedApplied(t, dbURL, metrics)
	get := func(path, cookie string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, base+path, nil)
		for k, v := range traefikHeaders("https://app.example.com/") {
			req.Header[k] = v
		}
		if cookie != "" {
			req.Header.Set("Cookie", cookie)
		}
		resp, err := noRedirects.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, c := range cookies {
		if code, _ := get("/api/authz/forward-auth", c); code != http.StatusOK {
			t.Fatalf("before the outage: %d", code)
		}
	}

	ctx, stop := context.WithCancel(context.Background())
	var sent, failed atomic.Int64
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				code, _ := get("/api/authz/forward-auth", cookies[(w+i)%len(cookies)])
				sent.Add(1)
				if code != http.StatusOK {
					failed.Add(1)
				}
				time.Sleep(5 * time.Millisecond)
			}
		})
	}

	cutAt := time.Now()
	cluster.Stop()
	code, body := loginPage(t, noRedirects, base, "user0", "password-user0")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "cannot reach its database") {
		t.Errorf("login during the outage: %d, want 503 with a clear page", code)
	}
	readyDropped := time.Duration(0)
	for time.Since(cutAt) < outage {
		if code, _ := get("/-/health/live/", ""); code != http.StatusOK {
			t.Errorf("liveness failed %s into the outage", time.Since(cutAt).Round(time.Second))
		}
		if code, _ := get("/-/health/ready/", ""); code != http.StatusOK && readyDropped == 0 {
			readyDropped = time.Since(cutAt)
		}
		time.Sleep(200 * time.Millisecond)
	}
	cluster.Start()
	restoredAt := time.Now()
	for {
		if code, _ := get("/-/health/ready/", ""); code == http.StatusOK {
			break
		}
		if time.Since(restoredAt) > 30*time.Second {
			t.Fatal("not ready 30 s after the database came back")
		}
		time.Sleep(100 * time.Millisecond)
	}
	recovered := time.Since(restoredAt)
	stop()
	wg.Wait()

	t.Logf("outage %s: %d forward-auth requests, %d failed; ready dropped after %s; ready again %s after the database returned",
		outage, sent.Load(), failed.Load(), readyDropped.Round(100*time.Millisecond), recovered.Round(100*time.Millisecond))
	if failed.Load() != 0 {
		t.Errorf("%d of %d checks of already-checked sessions failed during the outage", failed.Load(), sent.Load())
	}
	if outage > 6*time.Second && (readyDropped < 4*time.Second || readyDropped > 8*time.Second) {
		t.Errorf("readiness dropped %s into the outage, want about database.unready_after (5 s)", readyDropped)
	}
	// Nothing written before is lost, and logins work again.
	for _, c := range cookies {
		if code, _ := get("/api/authz/forward-auth", c); code != http.StatusOK {
			t.Fatalf("a session from before the outage was lost: %d", code)
		}
	}
	if code, _ := loginPage(t, noRedirects, base, "user1", "password-user1"); code != http.StatusSeeOther {
		t.Fatalf("login after the outage: %d", code)
	}
	if out := ok(t, dir, env, "", "user", "list", "--config", cfgPath); strings.Count(out, "user") < 5 {
		t.Fatalf("users lost:\n%s", out)
	}
}

// loginPage posts the login form and returns the status and page.
func loginPage(t *testing.T, c *http.Client, base, user, password string) (int, string) {
	t.Helper()
	resp, err := c.Get(base + "/login")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	form := url.Values{"username": {user}, "password": {password}, "csrf_token": {csrfOf(t, string(page))}}
	req, _ := http.NewRequest(http.MethodPost, base+"/login", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for _, ck := range resp.Cookies() {
		req.AddCookie(ck)
	}
	resp, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// waitFeedApplied waits until the replica whose metrics listen on metrics has applied
// every change-feed row in the database at dbURL, read from its
// gatehouse_change_feed_position gauge.
func waitFeedApplied(t *testing.T, dbURL, metrics string) {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	var newest int64
	err = conn.QueryRow(context.Background(), "SELECT coalesce(max(id), 0) FROM changes").Scan(&newest)
	conn.Close(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, fmt.Sprintf("the replica to apply change %d", newest), func() bool {
		pos, ok := metricValue(metrics, "gatehouse_change_feed_position")
		return ok && int64(pos) >= newest
	})
}
