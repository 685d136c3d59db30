package e2e

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

// On SIGTERM Gatehouse reports unready at once, keeps answering for
// server.shutdown_delay so a load balancer can stop sending it traffic, lets in-flight
// requests finish, and exits 0.
func TestGracefulShutdown(t *testing.T) {
	dir := t.TempDir()
	port := freePort(t)
	env := cleanEnv(fmt.Sprintf("GATEHOUSE_SERVER_ADDRESS=127.0.0.1:%d", port), "GATEHOUSE_SERVER_SHUTDOWN_DELAY=1500ms",
		"GATEHOUSE_SERVER_DRAIN_TIME=5s")
	srv := serve(t, dir, env, fmt.Sprintf("127.0.0.1:%d", port))
	base := fmt.Sprintf("http://127.0.0.1:%d", port)

	start := time.Now()
	srv.cmd.Process.Signal(os.Interrupt)
	sawUnready := false
	// Until readiness says so, however long the machine takes to get there; the server
	// must keep answering all the while (shutdown_delay), so an error here fails.
	for !sawUnready && time.Since(start) < 10*time.Second {
		resp, err := http.Get(base + "/-/health/ready/")
		if err != nil {
			t.Fatalf("gatehouse stopped answering during shutdown_delay: %v", err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusServiceUnavailable && strings.Contains(string(body), "shutting down") {
			sawUnready = true
			if live, err := http.Get(base + "/-/health/live/"); err != nil || live.StatusCode != http.StatusOK {
				t.Fatal("liveness failed while draining")
			}
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !sawUnready {
		t.Fatal("readiness did not report shutting down after SIGTERM")
	}
	done := make(chan error, 1)
	go func() { done <- srv.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("gatehouse did not exit after shutdown_delay and drain")
	}
	if waited := time.Since(start); waited < 1400*time.Millisecond {
		t.Fatalf("exited after %s, before shutdown_delay (1.5s) was over", waited)
	}
}
