package session

import (
	"context"
	"time"

	"github.com/gatehouse-id/gatehouse/internal/store"
)

// feedOverlap is how far back each poll re-reads the change feed. PostgreSQL hands out
// sequence ids at insert but rows become visible at commit, so a change with a lower id
// can appear after a higher one; re-reading a window (and skipping ids already applied)
// catches it without session-level features such as LISTEN.
const feedOverlap = 200

// ShutdownWriteTimeout bounds the writes background work makes on its way out (the last
// last-seen times, the audit events still queued).
const ShutdownWriteTimeout = 3 * time.Second

// Run does the Manager's background work until ctx ends: it follows the change feed,
// writes coalesced last-seen times, and counts active sessions.
func (m *Manager) Run(ctx context.Context) {
	if id, err := m.store.LatestChangeID(ctx); err == nil {
		m.lastChange = id
		m.fed.Store(id)
	}
	poll := time.NewTicker(m.opts.PollInterval)
	flush := time.NewTicker(m.opts.FlushEvery)
	defer poll.Stop()
	defer flush.Stop()
	m.countActive(ctx)
	for {
		select {
		case <-ctx.Done():
			// The last write gets a deadline of its own: shutting down must not hang on
			// a database that stopped answering (last-seen times are only a courtesy).
			last, cancel := context.WithTimeout(context.WithoutCancel(ctx), ShutdownWriteTimeout)
			m.flushSeen(last)
			cancel()
			return
		case <-poll.C:
			m.PollChanges(ctx)
		case <-flush.C:
			m.flushSeen(ctx)
			m.countActive(ctx)
		}
	}
}

// PollChanges applies new change-feed rows to the cache once.
func (m *Manager) PollChanges(ctx context.Context) {
	changes, err := m.store.ChangesSince(ctx, max(0, m.lastChange-feedOverlap))
	if err != nil {
		m.feedFailures.Fail(m.log, "reading the change feed failed; cached sessions stay until it answers", err)
		return
	}
	m.feedFailures.OK(m.log, "the change feed answers again")
	for _, c := range changes {
		if m.applied[c.ID] {
			continue
		}
		m.applied[c.ID] = true
		m.lastChange = max(m.lastChange, c.ID)
		m.Apply(c)
	}
	for id := range m.applied {
		if id <= m.lastChange-feedOverlap {
			delete(m.applied, id)
		}
	}
	m.fed.Store(m.lastChange)
}

// FeedPosition is the id of the newest change this replica has applied (or skipped as
// older than its start): a change with an id up to it is in this replica's cache.
func (m *Manager) FeedPosition() int64 { return m.fed.Load() }

// Apply drops what a change invalidates from this replica's cache.
func (m *Manager) Apply(c store.Change) {
	switch c.Kind {
	case store.ChangeSession:
		m.cache.drop(c.Subject)
	case store.ChangeUser:
		m.cache.dropUser(c.Subject)
	default:
		m.groups.Store(nil)
		m.cache.clear()
	}
}

func (m *Manager) flushSeen(ctx context.Context) {
	m.seenMu.Lock()
	batch, used := m.seen, m.used
	m.seen, m.used = map[string]time.Time{}, map[string]time.Time{}
	m.seenMu.Unlock()
	if err := m.store.TouchSessions(ctx, batch); err != nil {
		m.log.Warn("writing last-seen times failed", "sessions", len(batch), "error", err.Error())
	}
	if err := m.store.TouchAppPasswords(ctx, used); err != nil {
		m.log.Warn("writing app passwords' last-use times failed", "app_passwords", len(used), "error", err.Error())
	}
}

func (m *Manager) countActive(ctx context.Context) {
	if n, err := m.store.CountActiveSessions(ctx, time.Now()); err == nil {
		m.active.Store(int64(n))
	}
}
