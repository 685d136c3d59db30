package web

import (
	"strings"
	"sync"
	"time"
)

// Throttle slows password guessing without letting anyone lock the owner out. Failures
// are counted per (client address, username) and per client address, never per
// username alone: an attacker elsewhere can block only themselves, not the owner. The
// table is bounded; when full, new keys are not tracked (failing open on throttling,
// never on the password check).
type Throttle struct {
	mu       sync.Mutex
	window   time.Duration
	perPair  int
	perIP    int
	maxKeys  int
	failures map[string]*counter
	now      func() time.Time
}

type counter struct {
	n     int
	start time.Time
}

// NewThrottle allows perPair failures for one username from one address and perIP
// failures from one address within window.
func NewThrottle(window time.Duration, perPair, perIP int) *Throttle {
	return &Throttle{window: window, perPair: perPair, perIP: perIP, maxKeys: 100_000, failures: map[string]*counter{}, now: time.Now}
}

func pairKey(ip, username string) string { return ip + "\x00" + strings.ToLower(username) }

// Blocked reports whether a login from ip for username must wait, and for how long.
func (t *Throttle) Blocked(ip, username string) (bool, time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	for key, limit := range map[string]int{pairKey(ip, username): t.perPair, ip: t.perIP} {
		if c := t.failures[key]; c != nil && now.Sub(c.start) < t.window && c.n >= limit {
			return true, c.start.Add(t.window).Sub(now)
		}
	}
	return false, 0
}

// Failed counts a failed login.
func (t *Throttle) Failed(ip, username string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	for _, key := range []string{pairKey(ip, username), ip} {
		c := t.failures[key]
		if c == nil || now.Sub(c.start) >= t.window {
			if c == nil && len(t.failures) >= t.maxKeys {
				t.sweep(now)
				if len(t.failures) >= t.maxKeys {
					continue
				}
			}
			c = &counter{start: now}
			t.failures[key] = c
		}
		c.n++
	}
}

// Succeeded forgets the failures of this username from this address.
func (t *Throttle) Succeeded(ip, username string) {
	t.mu.Lock()
	delete(t.failures, pairKey(ip, username))
	t.mu.Unlock()
}

func (t *Throttle) sweep(now time.Time) {
	for k, c := range t.failures {
		if now.Sub(c.start) >= t.window {
			delete(t.failures, k)
		}
	}
}
