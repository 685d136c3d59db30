package postgres_test

import (
	"strings"
	"testing"

	"github.com/gatehouse-id/gatehouse/internal/store"
	"github.com/gatehouse-id/gatehouse/internal/store/postgres"
	"github.com/gatehouse-id/gatehouse/internal/store/storetest"
	"github.com/gatehouse-id/gatehouse/internal/testenv"
)

func TestConformance(t *testing.T) { conformance(t, testenv.PostgresURL) }

// Through PgBouncer in transaction mode (Debian's 1.18: no prepared statements across
// transactions), every store operation must behave exactly as it does directly.
func TestConformanceThroughPgBouncer(t *testing.T) { conformance(t, testenv.PgBouncerURL) }

func conformance(t *testing.T, newDatabase func(testing.TB) string) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := postgres.Open(newDatabase(t), postgres.PoolOptions{MaxOpen: 8})
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestOpenNamesTheProblem(t *testing.T) {
	_, err := postgres.Open("postgres://nobody@127.0.0.1:1/none?connect_timeout=1", postgres.PoolOptions{})
	if err == nil || !strings.Contains(err.Error(), "127.0.0.1:1") || !strings.Contains(err.Error(), "database.url") {
		t.Fatalf("unreachable database: got %v, want an error naming the address and database.url", err)
	}
	_, err = postgres.Open("postgres://%zz", postgres.PoolOptions{})
	if err == nil || !strings.Contains(err.Error(), "database.url") {
		t.Fatalf("bad URL: got %v", err)
	}
}
