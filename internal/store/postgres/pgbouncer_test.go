package postgres_test

import (
	"testing"

	"github.com/gatehouse-id/gatehouse/internal/store"
	"github.com/gatehouse-id/gatehouse/internal/store/postgres"
	"github.com/gatehouse-id/gatehouse/internal/store/storetest"
	"github.com/gatehouse-id/gatehouse/internal/testenv"
)

// Through PgBouncer in transaction mode (Debian's 1.18: no prepared statements across
// transactions), every store operation must behave exactly as it does directly.
func TestConformanceThroughPgBouncer(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := postgres.Open(testenv.PgBouncerURL(t), postgres.PoolOptions{MaxOpen: 8})
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}
