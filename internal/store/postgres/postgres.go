// Package postgres opens Gatehouse's shared database for replicas: PostgreSQL through
// pgx, configured to work behind PgBouncer in transaction mode.
package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/gatehouse-id/gatehouse/internal/store/sqlstore"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
)

// PoolOptions bounds the connection pool.
type PoolOptions struct {
	MaxOpen     int           // connections open at once
	MaxIdleTime time.Duration // close a connection idle this long
	MaxLifetime time.Duration // replace connections this old (credential rotation)
}

// MigrationLockTimeout is how long a migrating replica waits for another's migration.
const MigrationLockTimeout = 60 * time.Second

// CheckURL says whether url parses as a PostgreSQL URL, without connecting.
func CheckURL(url string) error {
	if _, err := pgx.ParseConfig(url); err != nil {
		return fmt.Errorf("database.url is not a valid PostgreSQL URL: %w", err)
	}
	return nil
}

// Open connects to the database at url (postgres://…).
//
// Statements use pgx's "exec" mode: unnamed prepared statements described on every
// call, which PgBouncer in transaction mode passes through safely (named, cached
// statements would land on another server connection).
func Open(url string, opts PoolOptions) (*sqlstore.Store, error) {
	if err := CheckURL(url); err != nil {
		return nil, err
	}
	cfg, _ := pgx.ParseConfig(url)
	cfg.DefaultQueryExecMode = pgx.QueryExecModeExec
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = 5 * time.Second
	}
	db := stdlib.OpenDB(*cfg)
	if opts.MaxOpen > 0 {
		db.SetMaxOpenConns(opts.MaxOpen)
		db.SetMaxIdleConns(opts.MaxOpen)
	}
	db.SetConnMaxIdleTime(opts.MaxIdleTime)
	db.SetConnMaxLifetime(opts.MaxLifetime)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("connecting to PostgreSQL at %s:%d: %w (check database.url and that the server is up)", cfg.Host, cfg.Port, err)
	}
	migrations, err := sqlstore.LoadMigrations("BIGSERIAL PRIMARY KEY")
	if err != nil {
		db.Close()
		return nil, err
	}
	return sqlstore.New(db, sqlstore.Dialect{
		Name:       "postgres",
		Migrations: migrations,
		TableExistsSQL: "SELECT COUNT(*) FROM information_schema.tables " +
			"WHERE table_schema = current_schema() AND table_name = $1",
		LockForMigration:  lockForMigration,
		IsUniqueViolation: isUniqueViolation,
	}), nil
}

// lockForMigration takes a table lock that lives only as long as the transaction:
// advisory locks would be session state, which PgBouncer in transaction mode loses.
func lockForMigration(ctx context.Context, tx *sql.Tx) error {
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("SET LOCAL lock_timeout = '%dms'", MigrationLockTimeout.Milliseconds())); err != nil {
		return err
	}
	_, err := tx.ExecContext(ctx, "LOCK TABLE gatehouse_schema IN EXCLUSIVE MODE")
	return err
}

func isUniqueViolation(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}
