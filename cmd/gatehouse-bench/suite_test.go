package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-id/gatehouse/internal/bench"
	"github.com/gatehouse-id/gatehouse/internal/testenv"
)

func TestMain(m *testing.M) {
	if addr := os.Getenv(baselineEnv); addr != "" { // the suite's baseline child
		if err := serveBaseline(context.Background(), addr, os.Getenv(baselineModeEnv)); err != nil {
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestSuiteRunsEveryScenario runs the whole suite at a tiny size on SQLite, so the
// README's bench command cannot rot; the figures themselves are not judged here.
func TestSuiteRunsEveryScenario(t *testing.T) {
	if testing.Short() {
		t.Skip("builds gatehouse and runs every scenario")
	}
	// wrk and nginx are required where the test command runs (it installs both), so the
	// suite's saturating generator and its end-to-end scenario are run here too.
	testenv.Tool(t, "wrk", "wrk")
	testenv.Tool(t, "nginx", "nginx")
	bin := filepath.Join(t.TempDir(), "gatehouse")
	build := exec.Command("go", "build", "-o", bin, "./cmd/gatehouse")
	build.Dir = "../.."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building gatehouse: %v\n%s", err, out)
	}
	out := filepath.Join(t.TempDir(), "bench.md")
	var stdout bytes.Buffer
	err := run(context.Background(), []string{"suite", "-gatehouse", bin, "-d", "300ms", "-rounds", "1", "-anon", "3000", "-sessions", "400",
		"-users", "40", "-c", "8", "-login-c", "2", "-nginx-conf", "../../deploy/examples/nginx.conf", "-out", out}, &stdout)
	if err != nil {
		t.Fatal(err)
	}
	table, _ := os.ReadFile(out)
	for _, want := range []string{"baseline: Go net/http", "Gatehouse's whole answer", "1. forward auth, valid session, 100 rules",
		"nginx proxying to the app, no auth", "E. nginx with the README's auth_request snippet", "2. forward auth, anonymous",
		"3a. forward auth", "3b. forward auth", "4. password login", "5. OIDC token endpoint", "6. start-up and memory", "idle RSS",
		"| wrk |", "CPU steal during the run", "load average"} {
		if !strings.Contains(string(table), want) {
			t.Errorf("table lacks %q:\n%s", want, table)
		}
	}
	for _, line := range strings.Split(string(table), "\n") {
		if (strings.HasPrefix(line, "| SQLite | 1.") || strings.HasPrefix(line, "| SQLite | E.")) && !strings.Contains(line, "| 0 | ") {
			t.Errorf("a hot-path scenario saw failures: %s", line)
		}
		if strings.HasPrefix(line, "| SQLite | 2.") {
			m := regexp.MustCompile(`rows before (\d+), after (\d+)`).FindStringSubmatch(line)
			if m == nil || m[1] != m[2] {
				t.Errorf("anonymous requests wrote rows: %s", line)
			}
		}
	}
	if stdout.String() != string(table) {
		t.Error("the table printed differs from the file written")
	}
}

// TestParseWrk reads wrk 4.1's --latency report, with and without failures.
func TestParseWrk(t *testing.T) {
	r, err := parseWrk(`Running 2s test @ http://127.0.0.1:8099/x
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     3.05ms    1.97ms  17.34ms   69.07%
    Req/Sec    21.74k     3.32k   28.96k    70.00%
  Latency Distribution
     50%  812.00us
     75%    4.23ms
     90%    5.41ms
     99%    1.20s
  43268 requests in 2.01s, 3.92MB read
  Socket errors: connect 0, read 2, write 1, timeout 4
  Non-2xx or 3xx responses: 12
Requests/sec:  21572.75
Transfer/sec:      1.95MB
`)
	if err != nil {
		t.Fatal(err)
	}
	want := bench.Result{Requests: 43268, Elapsed: 2010 * time.Millisecond, RPS: 21572.75, P50: 812 * time.Microsecond,
		P90: 5410 * time.Microsecond, P99: 1200 * time.Millisecond, Max: 17340 * time.Microsecond, Errors: 7}
	got := r
	got.ByStatus = nil
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("parsed\n%+v, want\n%+v", got, want)
	}
	if r.ByStatus[200] != 43256 || r.ByStatus[wrkNonSuccess] != 12 {
		t.Errorf("statuses %v: want 43256 successes and 12 failures", r.ByStatus)
	}
	if _, err := parseWrk("wrk: unknown option -- x\n"); err == nil || !strings.Contains(err.Error(), "no request count") {
		t.Errorf("a report without figures gave %v, want an error naming what is missing", err)
	}
}

// TestRatioRefusedWhenTheReferenceIsNotSaturated: a ratio is reported only when the
// reference used nearly all of its core, since otherwise the generator held it back.
func TestRatioRefusedWhenTheReferenceIsNotSaturated(t *testing.T) {
	ref := &target{samples: []sample{{bench.Result{RPS: 20000}, 0.62}}}
	gh := &target{samples: []sample{{bench.Result{RPS: 15000}, 0.99}}}
	if got := ratioTo(gh, ref, placement{pinned: true}); !strings.Contains(got, "not reported") || !strings.Contains(got, "62%") {
		t.Errorf("ratio to an unsaturated reference: %q", got)
	}
	if got := ratioTo(gh, ref, placement{}); !strings.Contains(got, "not reported") {
		t.Errorf("ratio unpinned: %q", got)
	}
	ref.samples[0].share = 0.97
	if got := ratioTo(gh, ref, placement{pinned: true}); got != "0.75×" {
		t.Errorf("ratio to a saturated reference: %q, want 0.75×", got)
	}
}
