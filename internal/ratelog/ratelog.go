// Package ratelog owns the log lines of work that retries on its own (the change-feed
// poll, the audit log's outbox reader): through a database outage they would fail every
// second and bury everything else, so the first failure is logged, then one line a
// minute with how many there were, and one line when it works again.
package ratelog

import (
	"log/slog"
	"time"
)

// Every is how often a failure that keeps happening is logged again.
const Every = time.Minute

// Failures counts the failures of one piece of retrying work. It is not safe for
// concurrent use: each belongs to the one goroutine that does the work.
type Failures struct {
	n      int
	logged time.Time
}

// Fail records a failure and logs it as msg when it is the first, or Every has passed.
func (f *Failures) Fail(log *slog.Logger, msg string, err error) {
	f.n++
	if now := time.Now(); f.n == 1 || now.Sub(f.logged) >= Every {
		log.Warn(msg, "error", err.Error(), "failures", f.n)
		f.logged = now
	}
}

// OK records a success, logging msg with the count if failures came before it.
func (f *Failures) OK(log *slog.Logger, msg string) {
	if f.n > 0 {
		log.Info(msg, "failures", f.n)
		f.n = 0
	}
}
