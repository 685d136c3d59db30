package postgres_test

import (
	"context"
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

// A pooled connection the server side dropped (PgBouncer or PostgreSQL restarted) costs
// an idempotent read nothing: it is retried once on a fresh connection.
func TestReadsSurviveADroppedPooledConnection(t *testing.T) {
	url, link := testenv.CuttableURL(t, testenv.PostgresURL(t))
	s, err := postgres.Open(url, postgres.PoolOptions{MaxOpen: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	if _, err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	u, err := s.CreateUser(ctx, store.User{Username: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		link.Cut() // every open connection dies under the pool's feet
		link.Restore()
		if got, err := s.UserByID(ctx, u.ID); err != nil || got.Username != "alice" {
			t.Fatalf("a read after the pooled connections died: %v %v", got, err)
		}
		if users, err := s.ListUsers(ctx); err != nil || len(users) != 1 {
			t.Fatalf("a list after the pooled connections died: %v %v", users, err)
		}
	}
}
