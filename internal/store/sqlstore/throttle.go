package sqlstore

import (
	"context"
	"database/sql"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse-id/gatehouse/internal/store"
)

// ThrottleBuckets returns the failure counts of those keys whose window started after
// since; keys with no row, or an older window, are absent.
func (s *Store) ThrottleBuckets(ctx context.Context, keys []string, since time.Time) (map[string]store.ThrottleBucket, error) {
	out := map[string]store.ThrottleBucket{}
	if len(keys) == 0 {
		return out, nil
	}
	args := []any{toDB(since)}
	marks := make([]string, len(keys))
	for i, k := range keys {
		args = append(args, k)
		marks[i] = "$" + strconv.Itoa(i+2)
	}
	rows, err := s.conn().query(ctx, "SELECT key, failures, window_start FROM throttle WHERE window_start > $1 AND key IN ("+strings.Join(marks, ", ")+")", args...)
	if err != nil {
		return nil, s.mapErr(err, "reading the throttle")
	}
	defer rows.Close()
	for rows.Next() {
		var k string
		var b store.ThrottleBucket
		var start int64
		if err := rows.Scan(&k, &b.Failures, &start); err != nil {
			return nil, s.mapErr(err, "reading the throttle")
		}
		b.WindowStart = fromDB(start)
		out[k] = b
	}
	return out, s.mapErr(rows.Err(), "reading the throttle")
}

// ThrottleFail counts one failure under each key, in one transaction: a key whose
// window started at or before windowFloor starts a new window at now. Keys are written
// in sorted order, so two replicas counting overlapping keys cannot deadlock.
func (s *Store) ThrottleFail(ctx context.Context, keys []string, now, windowFloor time.Time) error {
	sorted := slices.Sorted(slices.Values(keys))
	return s.mapErr(s.inTx(ctx, func(c counted, _ *sql.Tx) error {
		for _, k := range sorted {
			if _, err := c.exec(ctx, `INSERT INTO throttle (key, failures, window_start) VALUES ($1, 1, $2)
				ON CONFLICT (key) DO UPDATE SET
					failures = CASE WHEN throttle.window_start <= $3 THEN 1 ELSE throttle.failures + 1 END,
					window_start = CASE WHEN throttle.window_start <= $3 THEN $2 ELSE throttle.window_start END`,
				k, toDB(now), toDB(windowFloor)); err != nil {
				return err
			}
		}
		return nil
	}), "counting a failed guess")
}

// ThrottleClear forgets the failures under those keys (after a success).
func (s *Store) ThrottleClear(ctx context.Context, keys []string) error {
	for _, k := range keys {
		if _, err := s.conn().exec(ctx, "DELETE FROM throttle WHERE key = $1", k); err != nil {
			return s.mapErr(err, "clearing the throttle")
		}
	}
	return nil
}

// DeleteExpiredThrottle sweeps buckets whose window started at or before windowFloor.
func (s *Store) DeleteExpiredThrottle(ctx context.Context, windowFloor time.Time) (int, error) {
	n, err := s.conn().execAffected(ctx, "DELETE FROM throttle WHERE window_start <= $1", toDB(windowFloor))
	return n, s.mapErr(err, "sweeping the throttle")
}
