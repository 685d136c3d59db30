package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func TestMain(m *testing.M) {
	if addr := os.Getenv(baselineEnv); addr != "" { // the suite's baseline child
		if err := serveBaseline(context.Background(), addr); err != nil {
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
	bin := filepath.Join(t.TempDir(), "gatehouse")
	build := exec.Command("go", "build", "-o", bin, "./cmd/gatehouse")
	build.Dir = "../.."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building gatehouse: %v\n%s", err, out)
	}
	out := filepath.Join(t.TempDir(), "bench.md")
	var stdout bytes.Buffer
	err := run(context.Background(), []string{"suite", "-gatehouse", bin, "-d", "300ms", "-anon", "3000", "-sessions", "400",
		"-users", "40", "-c", "8", "-login-c", "2", "-out", out}, &stdout)
	if err != nil {
		t.Fatal(err)
	}
	table, _ := os.ReadFile(out)
	for _, want := range []string{"baseline: Go net/http", "1. forward auth, valid session, 100 rules", "2. forward auth, anonymous",
		"3a. forward auth", "3b. forward auth", "4. password login", "5. OIDC token endpoint", "6. start-up and memory", "idle RSS"} {
		if !strings.Contains(string(table), want) {
			t.Errorf("table lacks %q:\n%s", want, table)
		}
	}
	for _, line := range strings.Split(string(table), "\n") {
		if strings.HasPrefix(line, "| SQLite | 1.") && !strings.Contains(line, "| 0 | ") {
			t.Errorf("scenario 1 saw failures: %s", line)
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
