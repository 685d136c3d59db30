package forwardauth

import (
	"fmt"
	"sync"
	"time"
)

// denialWindow is how often one person's refusals for one host are recorded: a
// signed-in user (or a script holding a session) can send thousands of denied checks a
// second, and each would otherwise be an audit row.
const denialWindow = time.Minute

// maxDenialKeys bounds the limiter's memory; when it is full of live windows, further
// denials for new (user, host) pairs are counted only by the metric.
const maxDenialKeys = 10_000

// denialLimiter lets the first denial of each (user, host) in a window through to the
// audit log, and counts the rest, which the next recorded denial reports.
type denialLimiter struct {
	mu      sync.Mutex
	windows map[string]*denials
	now     func() time.Time
}

type denials struct {
	start      time.Time
	suppressed int
}

// record reports whether this denial should be an audit event, and how many denials of
// the same pair went unrecorded in the window before it.
func (l *denialLimiter) record(user, host string) (bool, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	if l.now != nil {
		now = l.now()
	}
	if l.windows == nil {
		l.windows = map[string]*denials{}
	}
	key := user + "\x00" + host
	w := l.windows[key]
	if w != nil && now.Sub(w.start) < denialWindow {
		w.suppressed++
		return false, 0
	}
	if w == nil && len(l.windows) >= maxDenialKeys {
		for k, old := range l.windows {
			if now.Sub(old.start) >= denialWindow {
				delete(l.windows, k)
			}
		}
		if len(l.windows) >= maxDenialKeys {
			return false, 0
		}
	}
	before := 0
	if w != nil {
		before = w.suppressed
	}
	l.windows[key] = &denials{start: now}
	return true, before
}

// suppressedNote says how many denials an event stands for.
func suppressedNote(n int) string {
	if n == 0 {
		return ""
	}
	return fmt.Sprintf(" (and %d more denials of this user for this host in the minute before, not recorded one by one)", n)
}
