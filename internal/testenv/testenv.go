// Package testenv gives tests the real services they run against: a fresh SQLite file,
// a fresh PostgreSQL database on the throwaway cluster that scripts/test.sh starts, and
// the paths of tools such as nginx. Nothing here is mocked.
//
// Outside scripts/test.sh a test whose service is missing is skipped, so `go test ./...`
// works on a laptop; under scripts/test.sh (TEST_GATEHOUSE_REQUIRE_ALL=1) it fails, so CI
// can never pass by skipping.
package testenv

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

// PostgresURLEnv names the variable holding an admin URL of the throwaway cluster.
const PostgresURLEnv = "TEST_GATEHOUSE_POSTGRES_URL"

// PgBouncerURLEnv names the variable holding a URL of PgBouncer, in transaction
// pooling mode, in front of that cluster.
const PgBouncerURLEnv = "TEST_GATEHOUSE_PGBOUNCER_URL"

// RequireAllEnv, when "1", turns a missing service into a failure instead of a skip.
const RequireAllEnv = "TEST_GATEHOUSE_REQUIRE_ALL"

// Missing skips the test, or fails it under scripts/test.sh, naming what is missing.
func Missing(t testing.TB, what string) {
	t.Helper()
	if os.Getenv(RequireAllEnv) == "1" {
		t.Fatalf("%s is required by this test run but missing: run the tests with scripts/test.sh", what)
	}
	t.Skipf("%s missing (scripts/test.sh provides it)", what)
}

// SQLitePath returns a path for a new SQLite file in the test's temporary folder.
func SQLitePath(t testing.TB) string {
	return filepath.Join(t.TempDir(), "gatehouse.db")
}

// PostgresURL creates an empty database for this test and returns its URL; the database
// is dropped when the test ends.
func PostgresURL(t testing.TB) string {
	t.Helper()
	return databaseURL(t, os.Getenv(PostgresURLEnv))
}

// PgBouncerURL creates an empty database like PostgresURL and returns a URL that
// reaches it through PgBouncer in transaction mode.
func PgBouncerURL(t testing.TB) string {
	t.Helper()
	via := os.Getenv(PgBouncerURLEnv)
	if via == "" {
		Missing(t, "PgBouncer ("+PgBouncerURLEnv+")")
	}
	return databaseURL(t, via)
}

// databaseURL creates the database on the cluster and returns base with its path.
func databaseURL(t testing.TB, base string) string {
	t.Helper()
	admin := os.Getenv(PostgresURLEnv)
	if admin == "" {
		Missing(t, "PostgreSQL ("+PostgresURLEnv+")")
	}
	cfg, err := pgx.ParseConfig(admin)
	if err != nil {
		t.Fatalf("%s: %v", PostgresURLEnv, err)
	}
	db := stdlib.OpenDB(*cfg)
	defer db.Close()
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "gatehouse_test_" + hex.EncodeToString(b[:])
	if _, err := db.ExecContext(context.Background(), "CREATE DATABASE "+name); err != nil {
		t.Fatalf("creating test database: %v", err)
	}
	t.Cleanup(func() {
		db := stdlib.OpenDB(*cfg)
		defer db.Close()
		_, _ = db.ExecContext(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("test database URL %q: %v", base, err)
	}
	u.Path = "/" + name
	return u.String()
}

// Tool returns the path of an executable, or skips/fails naming the package to install.
func Tool(t testing.TB, name, debianPackage string) string {
	t.Helper()
	for _, p := range []string{name, "/usr/sbin/" + name, "/usr/bin/" + name} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	Missing(t, name+" (Debian package "+debianPackage+")")
	return ""
}

// OpenSQL opens a database/sql handle on a PostgreSQL URL, for assertions on raw rows.
func OpenSQL(t testing.TB, pgURL string) *sql.DB {
	cfg, err := pgx.ParseConfig(pgURL)
	if err != nil {
		t.Fatal(err)
	}
	db := stdlib.OpenDB(*cfg)
	t.Cleanup(func() { db.Close() })
	return db
}

// WaitFor polls cond until it holds and fails the test after limit. The limit bounds a
// hang; it is not a measure of speed, so give it generously.
func WaitFor(t testing.TB, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up after %s waiting for %s", limit, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// LogBuffer collects what a logger writes from several goroutines, for a test to read
// while background work goes on logging.
type LogBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (l *LogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String is everything written so far.
func (l *LogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
