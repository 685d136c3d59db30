package sqlstore

import (
	"context"
	"time"

	"github.com/gatehouse-id/gatehouse/internal/store"
)

// AppendEvent records an audit event; a zero At means now.
func (s *Store) AppendEvent(ctx context.Context, e store.Event) error {
	if e.At.IsZero() {
		e.At = time.Now()
	}
	_, err := s.conn().exec(ctx, "INSERT INTO events (at, kind, actor, target, detail) VALUES ($1, $2, $3, $4, $5)",
		toDB(e.At), e.Kind, e.Actor, e.Target, e.Detail)
	return s.mapErr(err, "audit event")
}

// ListEvents returns the newest events first.
func (s *Store) ListEvents(ctx context.Context, limit int) ([]store.Event, error) {
	rows, err := s.conn().query(ctx, "SELECT id, at, kind, actor, target, detail FROM events ORDER BY id DESC LIMIT $1", limit)
	if err != nil {
		return nil, s.mapErr(err, "listing events")
	}
	return collect(rows, func(r scanner) (store.Event, error) {
		var e store.Event
		var at int64
		err := r.Scan(&e.ID, &at, &e.Kind, &e.Actor, &e.Target, &e.Detail)
		e.At = fromDB(at)
		return e, err
	})
}

// PruneEvents keeps the newest keep events and deletes the rest: the audit log is
// bounded, never a table that grows forever.
func (s *Store) PruneEvents(ctx context.Context, keep int) (int, error) {
	n, err := s.conn().execAffected(ctx,
		"DELETE FROM events WHERE id <= (SELECT COALESCE(MAX(id), 0) FROM events) - CAST($1 AS BIGINT)", keep)
	return n, s.mapErr(err, "pruning events")
}

// AppendChange adds a row to the change feed that other replicas poll.
func (s *Store) AppendChange(ctx context.Context, kind store.ChangeKind, subject string) error {
	_, err := s.conn().exec(ctx, "INSERT INTO changes (kind, subject, at) VALUES ($1, $2, $3)", string(kind), subject, toDB(time.Now()))
	return s.mapErr(err, "change feed")
}

// ChangesSince returns changes with an id above after, oldest first, at most 1000.
func (s *Store) ChangesSince(ctx context.Context, after int64) ([]store.Change, error) {
	rows, err := s.conn().query(ctx, "SELECT id, kind, subject, at FROM changes WHERE id > $1 ORDER BY id LIMIT 1000", after)
	if err != nil {
		return nil, s.mapErr(err, "reading change feed")
	}
	return collect(rows, func(r scanner) (store.Change, error) {
		var c store.Change
		var kind string
		var at int64
		err := r.Scan(&c.ID, &kind, &c.Subject, &at)
		c.Kind, c.At = store.ChangeKind(kind), fromDB(at)
		return c, err
	})
}

// LatestChangeID returns the newest change id, 0 when the feed is empty.
func (s *Store) LatestChangeID(ctx context.Context) (int64, error) {
	var id int64
	err := s.conn().queryRow(ctx, "SELECT COALESCE(MAX(id), 0) FROM changes").Scan(&id)
	return id, s.mapErr(err, "reading change feed")
}

// PruneChanges deletes changes older than before: every replica has read them by then.
func (s *Store) PruneChanges(ctx context.Context, before time.Time) (int, error) {
	n, err := s.conn().execAffected(ctx, "DELETE FROM changes WHERE at < $1", toDB(before))
	return n, s.mapErr(err, "pruning change feed")
}

// TakeLease grants or renews a lease in one statement, so two replicas racing for it
// cannot both win: the upsert only overwrites an expired row or the holder's own.
func (s *Store) TakeLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error) {
	now := time.Now()
	n, err := s.conn().execAffected(ctx, `INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, $3)
		ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
		WHERE leases.expires_at <= $4 OR leases.holder = excluded.holder`, name, holder, toDB(now.Add(ttl)), toDB(now))
	return n == 1, s.mapErr(err, "lease "+quote(name))
}

// ReleaseLease gives a lease up if holder has it, so another replica need not wait.
func (s *Store) ReleaseLease(ctx context.Context, name, holder string) error {
	_, err := s.conn().exec(ctx, "DELETE FROM leases WHERE name = $1 AND holder = $2", name, holder)
	return s.mapErr(err, "lease "+quote(name))
}
