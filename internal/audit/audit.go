// Package audit records who did what: denied access decisions, logins and admin
// changes, as events in the database and as log lines. The events table is the one
// stream: changes write their event in their own transaction (identity.Directory),
// sign-in events are queued here and written off the request path through a bounded
// queue (so a denied forward-auth check never waits on a write, and a flood of
// denials cannot grow memory), and the Logger turns committed events into log lines.
package audit

import (
	"context"
	"log/slog"
	"maps"
	"slices"
	"time"

	"github.com/gatehouse-id/gatehouse/internal/ratelog"
	"github.com/gatehouse-id/gatehouse/internal/session"
	"github.com/gatehouse-id/gatehouse/internal/store"
)

// Recorder queues events for the database.
type Recorder struct {
	store   store.Events
	log     *slog.Logger
	queue   chan store.Event
	dropped func()
}

// NewRecorder makes a Recorder holding at most queueSize unwritten events; dropped is
// called for each event that did not fit.
func NewRecorder(s store.Events, log *slog.Logger, queueSize int, dropped func()) *Recorder {
	return &Recorder{store: s, log: log, queue: make(chan store.Event, queueSize), dropped: dropped}
}

// Record queues e for the database, from where the outbox logs it (see Logger). An
// event that cannot be stored (the queue is full, the database fails) is logged here
// instead, so it is never lost without a line.
func (r *Recorder) Record(e store.Event) {
	select {
	case r.queue <- e:
	default:
		r.dropped()
		r.log.Warn("audit event not stored: the queue is full", eventAttrs(e)...)
	}
}

// eventAttrs are an event's log attributes: the same for a logged and an unstored one.
func eventAttrs(e store.Event) []any {
	attrs := []any{"kind", e.Kind, "actor", e.Actor, "target", e.Target}
	if e.TargetID != "" {
		attrs = append(attrs, "target_id", e.TargetID)
	}
	if e.Detail != "" {
		attrs = append(attrs, "detail", e.Detail)
	}
	if len(e.Fields) > 0 {
		fields := make([]any, 0, 2*len(e.Fields))
		for _, k := range slices.Sorted(maps.Keys(e.Fields)) {
			fields = append(fields, k, e.Fields[k])
		}
		attrs = append(attrs, slog.Group("fields", fields...))
	}
	if e.ID != 0 {
		attrs = append(attrs, "event_id", e.ID, "at", e.At.UTC().Format(time.RFC3339Nano))
	}
	return attrs
}

// LogInterval is how often a replica looks for committed events to log.
const LogInterval = time.Second

// Logger writes committed audit events to the JSON log: the events table is the
// outbox, and every replica claims what is not logged yet, so each event is logged
// once, by whichever replica claims it, after (and only after) the change it records
// has committed — a CLI command's too, which has no log of its own.
type Logger struct {
	Store store.Events
	Log   *slog.Logger

	failures ratelog.Failures
}

// Run logs committed events every LogInterval until ctx ends.
func (l *Logger) Run(ctx context.Context) {
	t := time.NewTicker(LogInterval)
	defer t.Stop()
	for {
		l.Drain(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Drain logs every event not yet logged, in batches.
func (l *Logger) Drain(ctx context.Context) {
	for {
		events, err := l.Store.ClaimUnloggedEvents(ctx, time.Now(), 500)
		if err != nil {
			if ctx.Err() == nil {
				l.failures.Fail(l.Log, "reading audit events to log failed; they are logged once it works again", err)
			}
			return
		}
		l.failures.OK(l.Log, "reading audit events to log works again")
		for _, e := range events {
			l.Log.Info("audit", eventAttrs(e)...)
		}
		if len(events) < 500 {
			return
		}
	}
}

// Run writes queued events until ctx ends, then writes what is left.
func (r *Recorder) Run(ctx context.Context) {
	for {
		select {
		case e := <-r.queue:
			r.write(ctx, e)
		case <-ctx.Done():
			// What is queued is written within one deadline, so shutting down never
			// hangs on a database that stopped answering; what misses it is logged.
			last, cancel := context.WithTimeout(context.WithoutCancel(ctx), session.ShutdownWriteTimeout)
			defer cancel()
			for {
				select {
				case e := <-r.queue:
					r.write(last, e)
				default:
					return
				}
			}
		}
	}
}

func (r *Recorder) write(ctx context.Context, e store.Event) {
	if err := r.store.AppendEvent(ctx, e); err != nil {
		r.log.Warn("audit event not stored", append(eventAttrs(e), "error", err.Error())...)
	}
}
