package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-id/gatehouse/internal/testenv"
	"github.com/jackc/pgx/v5"
)

// A replica that starts while PostgreSQL is unreachable, or while another replica holds
// the migration lock, stays live and unready on its metrics listener (where the Helm
// chart's liveness probe looks) and keeps waiting — it never exits into a crash loop —
// while its serving port refuses connections, which proxies retry elsewhere; it
// becomes ready by itself once the database is back.
func TestStartupWaitsForTheDatabase(t *testing.T) {
	direct := testenv.PostgresURL(t)
	dbURL, link := testenv.CuttableURL(t, direct)
	dir := t.TempDir()
	port := freePort(t)
	addr, metrics := fmt.Sprintf("127.0.0.1:%d", port), fmt.Sprintf("127.0.0.1:%d", freePort(t))
	env := cleanEnv("GATEHOUSE_DATABASE_URL="+dbURL, "GATEHOUSE_SERVER_ADDRESS="+addr, "GATEHOUSE_SERVER_METRICS_ADDRESS="+metrics)
	refused := func() bool {
		_, err := http.Get("http://" + addr + "/-/health/live/")
		return err != nil
	}
	health := func(path string) (int, string) {
		resp, err := http.Get("http://" + metrics + path)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	waitLiveUnready := func(reason string) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for {
			live, _ := health("/-/health/live/")
			ready, body := health("/-/health/ready/")
			if live == http.StatusOK && ready == http.StatusServiceUnavailable && strings.Contains(body, reason) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("want live and unready (%s); live %d, ready %d %q", reason, live, ready, body)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	// 1. PostgreSQL unreachable at start.
	link.Cut()
	srv := startServe(t, dir, env)
	waitLiveUnready("waiting for the database")
	time.Sleep(1500 * time.Millisecond)
	if srv.cmd.ProcessState != nil {
		t.Fatal("gatehouse exited while waiting for the database")
	}
	if !refused() {
		t.Fatal("the serving port answers while the replica cannot: proxies would send it traffic")
	}
	link.Restore()
	srv.waitReady(t, addr)
	srv.stop(t)

	// 2. Another replica holds the migration lock.
	conn, err := pgx.Connect(context.Background(), direct)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	tx, err := conn.Begin(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(context.Background(), "LOCK TABLE gatehouse_schema IN EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	srv = startServe(t, dir, env)
	waitLiveUnready("starting")
	time.Sleep(1500 * time.Millisecond)
	if code, body := health("/-/health/ready/"); code != http.StatusServiceUnavailable {
		t.Fatalf("ready while another replica migrates: %d %q", code, body)
	}
	tx.Rollback(context.Background())
	srv.waitReady(t, addr)
	if !strings.Contains(srv.output(), "gatehouse is serving") {
		t.Fatalf("no start-up log:\n%s", srv.output())
	}
}

// Metrics are served on server.metrics_address only, never on the listener a proxy
// publishes.
func TestMetricsHaveTheirOwnListener(t *testing.T) {
	dir := t.TempDir()
	addr, metrics := fmt.Sprintf("127.0.0.1:%d", freePort(t)), fmt.Sprintf("127.0.0.1:%d", freePort(t))
	env := cleanEnv("GATEHOUSE_DATABASE_URL=sqlite:"+filepath.Join(dir, "gh.db"), "GATEHOUSE_SERVER_ADDRESS="+addr,
		"GATEHOUSE_SERVER_METRICS_ADDRESS="+metrics)
	serve(t, dir, env, addr)
	get := func(url string) (int, string) {
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("http://" + metrics + "/metrics"); code != http.StatusOK || !strings.Contains(body, "gatehouse_forward_auth_decisions_total") {
		t.Fatalf("metrics listener: %d", code)
	}
	if code, _ := get("http://" + addr + "/metrics"); code != http.StatusNotFound {
		t.Fatalf("/metrics on server.address: %d, want 404", code)
	}
}

// SIGTERM with the database frozen (as with SIGSTOP of PgBouncer) still ends the
// process promptly and cleanly: every write on the way out has its own deadline.
func TestShutdownDoesNotHangOnAFrozenDatabase(t *testing.T) {
	dbURL, link := testenv.CuttableURL(t, testenv.PostgresURL(t))
	dir := t.TempDir()
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	env := cleanEnv("GATEHOUSE_DATABASE_URL="+dbURL, "GATEHOUSE_SERVER_ADDRESS="+addr, "GATEHOUSE_SERVER_DRAIN_TIME=2s")
	s := serve(t, dir, env, addr)
	ok(t, dir, cleanEnv("GATEHOUSE_DATABASE_URL="+dbURL), "pw-alice-123\n", "user", "add", "alice", "--password-stdin")
	loginThrough(t, "http://"+addr, "alice", "pw-alice-123") // queues a last-seen time and an audit event
	link.Freeze()
	defer link.Thaw()
	if code := s.stop(t); code != 0 { // stop fails the test if the process is still there after 20 s
		t.Fatalf("exit %d on SIGTERM with the database frozen", code)
	}
}
