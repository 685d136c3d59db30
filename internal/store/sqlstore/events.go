package sqlstore

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/gatehouse-id/gatehouse/internal/store"
)

// AppendEvent records an audit event; a zero At means now.
func (s *Store) AppendEvent(ctx context.Context, e store.Event) error {
	if e.At.IsZero() {
		e.At = time.Now()
	}
	fields := ""
	if len(e.Fields) > 0 {
		b, err := json.Marshal(e.Fields)
		if err != nil {
			return err
		}
		fields = string(b)
	}
	_, err := s.conn().exec(ctx, "INSERT INTO events (at, kind, actor, target, detail, target_id, fields, logged_at, hooked_at) VALUES ($1, $2, $3, $4, $5, $6, $7, 0, 0)",
		toDB(e.At), e.Kind, e.Actor, e.Target, e.Detail, e.TargetID, fields)
	return s.mapErr(err, "audit event")
}

const eventColumns = "id, at, kind, actor, target, detail, target_id, fields"

func scanEvent(r scanner) (store.Event, error) {
	var e store.Event
	var at int64
	var fields string
	err := r.Scan(&e.ID, &at, &e.Kind, &e.Actor, &e.Target, &e.Detail, &e.TargetID, &fields)
	e.At = fromDB(at)
	if err == nil && fields != "" {
		err = json.Unmarshal([]byte(fields), &e.Fields)
	}
	return e, err
}

// ClaimUnloggedEvents marks up to limit events not yet logged as logged at now, and
// returns them, oldest first. One statement: two replicas never both claim an event,
// and an event another transaction has not committed yet is not there to claim, so
// none is skipped (ids are handed out before commit, which rules out a cursor).
func (s *Store) ClaimUnloggedEvents(ctx context.Context, now time.Time, limit int) ([]store.Event, error) {
	// A read first: most polls find nothing, and on SQLite an UPDATE takes the write
	// lock even when it changes no row.
	var pending int64
	switch err := s.conn().queryRow(ctx, "SELECT id FROM events WHERE logged_at = 0 LIMIT 1").Scan(&pending); {
	case errors.Is(err, sql.ErrNoRows):
		return nil, nil
	case err != nil:
		return nil, s.mapErr(err, "reading audit events to log")
	}
	rows, err := s.conn().query(ctx, "UPDATE events SET logged_at = $1 WHERE id IN (SELECT id FROM events WHERE logged_at = 0 ORDER BY id LIMIT $2) AND logged_at = 0 RETURNING "+eventColumns,
		toDB(now), limit)
	if err != nil {
		return nil, s.mapErr(err, "claiming audit events to log")
	}
	out, err := collect(rows, scanEvent)
	slices.SortFunc(out, func(a, b store.Event) int { return cmp.Compare(a.ID, b.ID) })
	return out, err
}

// ListEvents returns the newest events first.
func (s *Store) ListEvents(ctx context.Context, limit int) ([]store.Event, error) {
	return s.FindEvents(ctx, store.EventQuery{Limit: limit})
}

// FindEvents returns the events that match q, newest first: every field given must
// match exactly, times bound at (since inclusive, until exclusive), and BeforeID pages.
func (s *Store) FindEvents(ctx context.Context, q store.EventQuery) ([]store.Event, error) {
	where, args := []string{"1 = 1"}, []any{}
	add := func(cond string, v any) {
		args = append(args, v)
		where = append(where, fmt.Sprintf(cond, len(args)))
	}
	if q.Kind != "" {
		add("kind = $%d", q.Kind)
	}
	if q.Actor != "" {
		add("actor = $%d", q.Actor)
	}
	if q.Target != "" {
		add("target = $%d", q.Target)
	}
	if q.Host != "" {
		// substr, not LIKE: a host may hold "_", which LIKE reads as a wildcard.
		args = append(args, q.Host, q.Host+"/", len(q.Host)+1)
		where = append(where, fmt.Sprintf("(target = $%d OR substr(target, 1, $%d) = $%d)", len(args)-2, len(args), len(args)-1))
	}
	if !q.Since.IsZero() {
		add("at >= $%d", toDB(q.Since))
	}
	if !q.Until.IsZero() {
		add("at < $%d", toDB(q.Until))
	}
	if q.BeforeID > 0 {
		add("id < $%d", q.BeforeID)
	}
	args = append(args, q.Limit)
	rows, err := s.conn().query(ctx, fmt.Sprintf("SELECT "+eventColumns+" FROM events WHERE %s ORDER BY id DESC LIMIT $%d",
		strings.Join(where, " AND "), len(args)), args...)
	if err != nil {
		return nil, s.mapErr(err, "listing events")
	}
	return collect(rows, scanEvent)
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
