// Package sqlite opens Gatehouse's embedded database: a single SQLite file through the
// pure-Go modernc.org/sqlite driver, so the gatehouse binary needs no cgo and stays static.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"

	"github.com/gatehouse-id/gatehouse/internal/store/sqlstore"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// Open opens (creating when missing) the SQLite file at path, with its folder.
//
// WAL lets readers proceed while one writer writes; busy_timeout makes the CLI and a
// running server wait for each other instead of failing; _txlock=immediate takes the
// write lock at BEGIN, so two transactions never deadlock upgrading a read lock;
// secure_delete zeroes what a deletion frees, so a secret moved out of the database
// (or a sealed value's clear-text predecessor) does not linger in a free page of a copy;
// mmap_size lets reads use the file's pages in place, shared by every connection,
// instead of each connection copying them into a page cache of its own (a third faster
// for a burst of first sights after a restart).
func Open(path string) (*sqlstore.Store, error) {
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("creating the database folder %s: %w", dir, err)
		}
	}
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Add("_pragma", "secure_delete(1)")
	q.Add("_pragma", "mmap_size(268435456)")
	q.Set("_txlock", "immediate")
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("opening sqlite database %s: %w", path, err)
	}
	// Opening a connection applies the pragmas and parses the schema (milliseconds),
	// and a closed one loses its prepared statements. database/sql kept two idle and
	// opened as many as were asked for, so a burst of first sights after a restart
	// spent most of its time opening and closing connections, one request waiting on
	// the others' openings. A fixed pool, opened ahead of need by Warm, does neither;
	// SQLite runs on this process's cores, so more connections would not read faster.
	db.SetMaxOpenConns(poolSize)
	db.SetMaxIdleConns(poolSize)
	if err := db.PingContext(context.Background()); err != nil {
		db.Close()
		return nil, fmt.Errorf("opening sqlite database %s: %w (check the path and its permissions)", path, err)
	}
	migrations, err := sqlstore.LoadMigrations("INTEGER PRIMARY KEY AUTOINCREMENT")
	if err != nil {
		db.Close()
		return nil, err
	}
	return sqlstore.New(db, sqlstore.Dialect{
		Name:              "sqlite",
		Migrations:        migrations,
		TableExistsSQL:    "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = $1",
		LockForMigration:  func(context.Context, *sql.Tx) error { return nil }, // BEGIN IMMEDIATE already holds the write lock
		IsUniqueViolation: isUniqueViolation,
		CacheStatements:   true,
		WarmConns:         poolSize,
	}), nil
}

// poolSize is how many connections the pool holds.
const poolSize = 16

func isUniqueViolation(err error) bool {
	var se *sqlite.Error
	if errors.As(err, &se) {
		return se.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || se.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
	}
	return false
}
