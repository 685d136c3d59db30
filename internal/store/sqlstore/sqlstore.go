// Package sqlstore is the one SQL implementation of store.Store that the SQLite and
// PostgreSQL backends share. Every query is written once, in the dialect both databases
// accept ($1 placeholders, ON CONFLICT, integer booleans and unix-microsecond times);
// what differs — migrations, locking and error codes — is a Dialect.
//
// It keeps no session-level state on a connection (no SET, no advisory locks, no named
// prepared statements), so it works through PgBouncer in transaction mode.
package sqlstore

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gatehouse-id/gatehouse/internal/store"
)

// Migration is one forward-only schema step.
type Migration struct {
	Version int
	Name    string
	SQL     string
}

// Dialect is what a backend tells the shared SQL core about its database.
type Dialect struct {
	// Name is shown in errors ("sqlite", "postgres").
	Name string
	// Migrations in ascending version order.
	Migrations []Migration
	// TableExistsSQL counts tables named $1 visible to this connection.
	TableExistsSQL string
	// LockForMigration runs first inside the migration transaction and must make
	// concurrent migrators wait (or fail after a timeout) instead of racing.
	LockForMigration func(ctx context.Context, tx *sql.Tx) error
	// IsUniqueViolation reports whether err is a unique-constraint violation.
	IsUniqueViolation func(err error) bool
	// CacheStatements keeps each statement prepared (once per pooled connection) instead
	// of parsing its SQL on every call: SQLite spends a quarter of a cold session lookup
	// parsing. Not for PostgreSQL behind PgBouncer in transaction mode, where a
	// statement prepared on one server connection is unknown on the next.
	CacheStatements bool
	// WarmConns is how many connections Warm opens ahead of need (0: none).
	WarmConns int
}

// Store implements store.Store over database/sql.
type Store struct {
	db      *sql.DB
	dialect Dialect
	queries *atomic.Uint64 // shared with the Stores InTx hands out
	tx      *sql.Tx        // set on a Store InTx hands out: every statement joins it
	stmts   *stmtCache     // nil unless the dialect caches statements
}

var _ store.Store = (*Store)(nil)

// New wraps an open database. It does not migrate: call Migrate or CheckSchema.
func New(db *sql.DB, d Dialect) *Store {
	s := &Store{db: db, dialect: d, queries: new(atomic.Uint64)}
	if d.CacheStatements {
		s.stmts = &stmtCache{db: db, m: map[string]*sql.Stmt{}}
	}
	return s
}

// Warm opens the dialect's WarmConns connections at once and hands them back to the
// pool, so that the first burst after a start (a replica restarted under load, where
// every session is a first sight) finds them open: opening a SQLite connection applies
// its pragmas and parses the schema, milliseconds each, which requests would
// otherwise wait for in turn.
func (s *Store) Warm(ctx context.Context) error {
	conns := make([]*sql.Conn, 0, s.dialect.WarmConns)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range s.dialect.WarmConns {
		c, err := s.db.Conn(ctx)
		if err != nil {
			return fmt.Errorf("opening %s connections ahead of need: %w", s.dialect.Name, err)
		}
		conns = append(conns, c)
	}
	return nil
}

// DB exposes the pool for backend-specific settings and tests.
func (s *Store) DB() *sql.DB { return s.db }

// Close closes the pool.
func (s *Store) Close() error {
	if s.stmts != nil {
		s.stmts.close()
	}
	return s.db.Close()
}

// QueryCount returns how many statements this Store has sent since it was opened.
func (s *Store) QueryCount() uint64 { return s.queries.Load() }

// Ping checks the database answers.
func (s *Store) Ping(ctx context.Context) error {
	s.queries.Add(1)
	return s.db.PingContext(ctx)
}

// querier is what both *sql.DB and *sql.Tx offer; Store counts every statement sent
// through it so that tests and metrics can prove the hot path sends none.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

type counted struct {
	q     querier
	n     *atomic.Uint64
	stmts *stmtCache // outside transactions, when the dialect caches statements
}

// on returns what runs query: its cached statement, or the connection or transaction.
func (c counted) on(ctx context.Context, query string) querier {
	if c.stmts != nil {
		return c.stmts.querier(ctx, query)
	}
	return c.q
}

// stmtCache holds prepared statements by their SQL text. database/sql prepares a
// statement on each pooled connection the first time it runs there, and again on a
// new connection, so a cached statement survives the pool's churn. Statements whose
// text varies with their arguments (IN lists) would fill it, so it stops growing at
// maxCachedStatements and the rest are parsed each time, as without it.
type stmtCache struct {
	db *sql.DB
	mu sync.Mutex
	m  map[string]*sql.Stmt
}

const maxCachedStatements = 256

// querier returns a querier that runs query from a cached statement, or db itself
// when the cache is full or the statement cannot be prepared (the call then fails,
// or succeeds, exactly as it would have).
func (c *stmtCache) querier(ctx context.Context, query string) querier {
	c.mu.Lock()
	defer c.mu.Unlock()
	if st, ok := c.m[query]; ok {
		return stmtQuerier{st}
	}
	if len(c.m) >= maxCachedStatements {
		return c.db
	}
	st, err := c.db.PrepareContext(ctx, query)
	if err != nil {
		return c.db
	}
	c.m[query] = st
	return stmtQuerier{st}
}

func (c *stmtCache) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, st := range c.m {
		st.Close()
	}
	clear(c.m)
}

// stmtQuerier runs its one prepared statement, ignoring the query text it is given
// (the cache chose it by that text).
type stmtQuerier struct{ st *sql.Stmt }

func (q stmtQuerier) ExecContext(ctx context.Context, _ string, args ...any) (sql.Result, error) {
	return q.st.ExecContext(ctx, args...)
}

func (q stmtQuerier) QueryContext(ctx context.Context, _ string, args ...any) (*sql.Rows, error) {
	return q.st.QueryContext(ctx, args...)
}

func (q stmtQuerier) QueryRowContext(ctx context.Context, _ string, args ...any) *sql.Row {
	return q.st.QueryRowContext(ctx, args...)
}

func (c counted) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	c.n.Add(1)
	return c.on(ctx, query).ExecContext(ctx, query, args...)
}

func (c counted) query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	c.n.Add(1)
	q := c.on(ctx, query)
	rows, err := q.QueryContext(ctx, query, args...)
	for try := 1; try < readTries && retryable(ctx, c.q, query, err); try++ {
		c.n.Add(1)
		rows, err = q.QueryContext(ctx, query, args...)
	}
	return rows, err
}

func (c counted) queryRow(ctx context.Context, query string, args ...any) *sql.Row {
	c.n.Add(1)
	q := c.on(ctx, query)
	row := q.QueryRowContext(ctx, query, args...)
	for try := 1; try < readTries && retryable(ctx, c.q, query, row.Err()); try++ {
		c.n.Add(1)
		row = q.QueryRowContext(ctx, query, args...)
	}
	return row
}

// readTries bounds how often a read is sent: several pooled connections can have died
// at once (every idle one, after a PgBouncer restart), and each failure discards one.
const readTries = 4

// retryable reports whether a failed statement may be sent again: a plain read
// (never a write, whose effect may have landed before the answer was lost), outside a
// transaction, that died with its pooled connection — PgBouncer or PostgreSQL
// restarted and the pool did not know yet. The pool has dropped that connection, so
// the retry gets a fresh one.
func retryable(ctx context.Context, q querier, query string, err error) bool {
	if err == nil || ctx.Err() != nil {
		return false
	}
	if _, inTx := q.(*sql.Tx); inTx || !strings.HasPrefix(strings.TrimSpace(query), "SELECT") {
		return false
	}
	return errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || strings.Contains(err.Error(), "conn closed")
}

// execAffected runs a statement and returns how many rows it touched.
func (c counted) execAffected(ctx context.Context, query string, args ...any) (int, error) {
	res, err := c.exec(ctx, query, args...)
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	return int(n), err
}

func (s *Store) conn() counted {
	if s.tx != nil {
		return counted{q: s.tx, n: s.queries}
	}
	return counted{q: s.db, n: s.queries, stmts: s.stmts}
}

// inTx runs fn in a transaction, committing when it returns nil. Inside InTx it joins
// the transaction already open.
func (s *Store) inTx(ctx context.Context, fn func(c counted, tx *sql.Tx) error) error {
	if s.tx != nil {
		return fn(s.conn(), s.tx)
	}
	s.queries.Add(1)
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(counted{q: tx, n: s.queries}, tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	s.queries.Add(1)
	return tx.Commit()
}

// InTx runs fn with a Store whose every statement is part of one transaction: it
// commits when fn returns nil and rolls back otherwise, so a change, its change-feed
// row and its audit event are written together or not at all. InTx within InTx joins
// the outer transaction. fn must not keep the Store it is given.
func (s *Store) InTx(ctx context.Context, fn func(store.Store) error) error {
	return s.inTx(ctx, func(_ counted, tx *sql.Tx) error {
		inner := *s
		inner.tx = tx
		return fn(&inner)
	})
}

// LockDirectory makes concurrent directory changes that could lock every admin out
// (or leave a user without a credential) wait for each other until the transaction
// ends, so each one's guard sees what the others did. On PostgreSQL it takes one row
// lock; SQLite's write transactions are already one at a time (_txlock=immediate).
func (s *Store) LockDirectory(ctx context.Context) error {
	if s.tx == nil {
		return fmt.Errorf("LockDirectory outside InTx: %w", errors.ErrUnsupported)
	}
	_, err := s.conn().exec(ctx, `INSERT INTO settings (key, value) VALUES ('directory_lock', '')
		ON CONFLICT (key) DO UPDATE SET value = settings.value`)
	return s.mapErr(err, "the directory lock")
}

// mapErr turns driver errors into the store's shared errors.
func (s *Store) mapErr(err error, what string) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("%s: %w", what, store.ErrNotFound)
	case s.dialect.IsUniqueViolation(err):
		return fmt.Errorf("%s: %w", what, store.ErrConflict)
	default:
		return fmt.Errorf("%s: %s: %w", what, s.dialect.Name, err)
	}
}

// NewID returns a random 128-bit identifier in hex: unguessable, and never reused.
func NewID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Times are stored as unix microseconds in a BIGINT: the same in both databases, and
// free of time-zone and driver conversions.
func toDB(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}

func fromDB(us int64) time.Time {
	if us == 0 {
		return time.Time{}
	}
	return time.UnixMicro(us).UTC()
}

func boolDB(b bool) int {
	if b {
		return 1
	}
	return 0
}
