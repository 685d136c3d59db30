package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/gatehouse-id/gatehouse/internal/store"
)

const schemaTable = "gatehouse_schema"

func (s *Store) binaryVersion() int {
	if len(s.dialect.Migrations) == 0 {
		return 0
	}
	return s.dialect.Migrations[len(s.dialect.Migrations)-1].Version
}

// dbVersion reads the newest applied migration without writing anything; a database
// that has never been migrated is at version 0.
func (s *Store) dbVersion(ctx context.Context, c counted) (int, error) {
	var n int
	if err := c.queryRow(ctx, s.dialect.TableExistsSQL, schemaTable).Scan(&n); err != nil {
		return 0, fmt.Errorf("reading schema version: %s: %w", s.dialect.Name, err)
	}
	if n == 0 {
		return 0, nil
	}
	var v sql.NullInt64
	if err := c.queryRow(ctx, "SELECT MAX(version) FROM "+schemaTable).Scan(&v); err != nil {
		return 0, fmt.Errorf("reading schema version: %s: %w", s.dialect.Name, err)
	}
	return int(v.Int64), nil
}

// SchemaVersion returns the database's version and this binary's newest one.
func (s *Store) SchemaVersion(ctx context.Context) (database, binary int, err error) {
	v, err := s.dbVersion(ctx, s.conn())
	return v, s.binaryVersion(), err
}

// PendingMigrations lists the versions Migrate would apply. It refuses a newer schema
// exactly as Migrate does, and writes nothing.
func (s *Store) PendingMigrations(ctx context.Context) ([]int, error) {
	v, err := s.dbVersion(ctx, s.conn())
	if err != nil {
		return nil, err
	}
	if v > s.binaryVersion() {
		return nil, &store.SchemaTooNewError{Database: v, Binary: s.binaryVersion()}
	}
	var out []int
	for _, m := range s.dialect.Migrations {
		if m.Version > v {
			out = append(out, m.Version)
		}
	}
	return out, nil
}

// Migrate applies pending migrations in one transaction under the dialect's lock, so
// replicas starting together migrate once and the rest wait. A database newer than
// this binary is refused before anything is written.
func (s *Store) Migrate(ctx context.Context) ([]int, error) {
	if _, err := s.PendingMigrations(ctx); err != nil {
		return nil, err
	}
	// The version table is created on its own first. Two replicas creating it at once
	// in PostgreSQL can make one fail (a unique violation in the catalogue, or "type
	// already exists") although the table then exists, which is all that is needed.
	if _, err := s.conn().exec(ctx, "CREATE TABLE IF NOT EXISTS "+schemaTable+
		" (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)"); err != nil {
		var n int
		if qerr := s.conn().queryRow(ctx, s.dialect.TableExistsSQL, schemaTable).Scan(&n); qerr != nil || n == 0 {
			return nil, fmt.Errorf("creating %s: %w", schemaTable, err)
		}
	}
	var applied []int
	err := s.inTx(ctx, func(c counted, tx *sql.Tx) error {
		if err := s.dialect.LockForMigration(ctx, tx); err != nil {
			return fmt.Errorf("waiting for another gatehouse to finish migrating: %w", err)
		}
		v, err := s.dbVersion(ctx, c)
		if err != nil {
			return err
		}
		if v > s.binaryVersion() {
			return &store.SchemaTooNewError{Database: v, Binary: s.binaryVersion()}
		}
		for _, m := range s.dialect.Migrations {
			if m.Version <= v {
				continue
			}
			for _, stmt := range statements(m.SQL) {
				if _, err := c.exec(ctx, stmt); err != nil {
					return fmt.Errorf("migration %d (%s) failed on %s: %w", m.Version, m.Name, s.dialect.Name, err)
				}
			}
			if _, err := c.exec(ctx, "INSERT INTO "+schemaTable+" (version, name, applied_at) VALUES ($1, $2, $3)",
				m.Version, m.Name, toDB(time.Now())); err != nil {
				return fmt.Errorf("recording migration %d: %w", m.Version, err)
			}
			applied = append(applied, m.Version)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return applied, nil
}

// CheckSchema returns an error unless the database is migrated exactly to this binary's
// version: readiness depends on it.
func (s *Store) CheckSchema(ctx context.Context) error {
	db, bin, err := s.SchemaVersion(ctx)
	switch {
	case err != nil:
		return err
	case db > bin:
		return &store.SchemaTooNewError{Database: db, Binary: bin}
	case db < bin:
		return fmt.Errorf("database schema is at version %d, this binary needs %d: run `gatehouse migrate`", db, bin)
	}
	return nil
}
