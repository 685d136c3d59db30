// Package audit records who did what: denied access decisions, logins and admin
// changes, as events in the database and as log lines. Writes happen off the request
// path through a bounded queue, so a denied forward-auth check never waits on a write,
// and a flood of denials cannot grow memory.
package audit

import (
	"context"
	"log/slog"

	"github.com/gatehouse-id/gatehouse/internal/session"
	"github.com/gatehouse-id/gatehouse/internal/store"
)

// Recorder queues events for the database.
type Recorder struct {
	store   store.Store
	log     *slog.Logger
	queue   chan store.Event
	dropped func()
}

// NewRecorder makes a Recorder holding at most queueSize unwritten events; dropped is
// called for each event that did not fit.
func NewRecorder(s store.Store, log *slog.Logger, queueSize int, dropped func()) *Recorder {
	return &Recorder{store: s, log: log, queue: make(chan store.Event, queueSize), dropped: dropped}
}

// Record logs e at once and queues it for the database.
func (r *Recorder) Record(e store.Event) {
	r.log.Info("audit", "kind", e.Kind, "actor", e.Actor, "target", e.Target, "detail", e.Detail)
	select {
	case r.queue <- e:
	default:
		r.dropped()
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
		r.log.Warn("writing an audit event failed", "kind", e.Kind, "error", err.Error())
	}
}
