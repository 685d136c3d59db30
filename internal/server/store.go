package server

import (
	"fmt"

	"github.com/gatehouse-id/gatehouse/internal/config"
	"github.com/gatehouse-id/gatehouse/internal/store"
	"github.com/gatehouse-id/gatehouse/internal/store/postgres"
	"github.com/gatehouse-id/gatehouse/internal/store/sqlite"
)

// OpenStore opens the database that database.url names. It does not migrate.
func OpenStore(cfg *config.Config) (store.Store, error) {
	if path, ok := cfg.SQLitePath(); ok {
		return sqlite.Open(path)
	}
	s, err := postgres.Open(cfg.Database.URL, postgres.PoolOptions{
		MaxOpen:     cfg.Database.MaxOpenConns,
		MaxIdleTime: cfg.Database.ConnMaxIdleTime.D(),
		MaxLifetime: cfg.Database.ConnMaxLifetime.D(),
	})
	if err != nil {
		return nil, fmt.Errorf("database: %w", err)
	}
	return s, nil
}
