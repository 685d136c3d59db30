// Package outbox owns what Gatehouse's outboxes share — webhook deliveries and mail:
// the loop one replica at a time runs under a lease, and the retry schedule that
// decides, after each attempt, whether an item is done, waits for its next try, or is
// given up. The tables and what an attempt does are the outboxes' own.
package outbox

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"github.com/gatehouse-id/gatehouse/internal/ratelog"
	"github.com/gatehouse-id/gatehouse/internal/store"
)

// Loop runs one outbox's work every Poll until its context ends, logging a failing
// round once (and its recovery), and hands the lease on when it stops.
type Loop struct {
	Leases store.Leases
	Lease  string        // the lease's name
	Holder string        // this replica
	TTL    time.Duration // how long a dead holder keeps the lease from the others
	Poll   time.Duration
	Log    *slog.Logger
	What   string // "delivering webhooks", for the log

	failures ratelog.Failures
}

// Run calls work every Poll until ctx ends.
func (l *Loop) Run(ctx context.Context, work func(context.Context) error) {
	t := time.NewTicker(l.Poll)
	defer t.Stop()
	defer func() {
		last, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		l.Leases.ReleaseLease(last, l.Lease, l.Holder)
	}()
	for {
		if err := work(ctx); err != nil && ctx.Err() == nil {
			l.failures.Fail(l.Log, l.What+" failed; trying again shortly", err)
		} else if err == nil {
			l.failures.OK(l.Log, l.What+" works again")
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Hold takes (or renews) the lease, and reports whether this replica has it.
func (l *Loop) Hold(ctx context.Context) (bool, error) {
	return l.Leases.TakeLease(ctx, l.Lease, l.Holder, l.TTL)
}

// Retry is an outbox's retry schedule: the pause after each failed attempt (the
// last repeats), for at most For after the item was made.
type Retry struct {
	Pauses []time.Duration
	For    time.Duration
}

// Pause is the pause after the attempt-th failed attempt (from 1).
func (r Retry) Pause(attempt int) time.Duration {
	return r.Pauses[min(max(attempt, 1), len(r.Pauses))-1]
}

// Outcome is what an attempt at now leaves of an item made at made, tried attempts
// times: with err nil, delivered; otherwise pending until next, or failed when the
// next try would fall after For (or giveUp says so). pause overrides the schedule's
// pauses when not nil (tests). lastError is err, clipped for the outbox's table.
func (r Retry) Outcome(made, now time.Time, attempts int, err error, giveUp bool, pause func(int) time.Duration) (state string, next, finished time.Time, lastError string) {
	if err == nil {
		return store.WebhookDelivered, time.Time{}, now, ""
	}
	if pause == nil {
		pause = r.Pause
	}
	next = now.Add(pause(attempts))
	if giveUp || next.After(made.Add(r.For)) {
		return store.WebhookFailed, time.Time{}, now, clip(err.Error())
	}
	return store.WebhookPending, next, time.Time{}, clip(err.Error())
}

// clip bounds an error kept in an outbox, on a character boundary.
func clip(s string) string {
	if len(s) > 300 {
		return strings.ToValidUTF8(s[:300], "") + "…"
	}
	return s
}
