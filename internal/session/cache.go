package session

import (
	"sync"
	"time"
)

// cache maps token hashes to principals, bounded in size, with an index by user so
// that disabling a user drops all their sessions at once.
type cache struct {
	mu     sync.RWMutex
	max    int
	byHash map[string]cacheEntry
	byUser map[string]map[string]struct{}
}

type cacheEntry struct {
	p     *Principal
	until time.Time // trusted until then, or until the session expires
}

func newCache(max int) *cache {
	return &cache{max: max, byHash: map[string]cacheEntry{}, byUser: map[string]map[string]struct{}{}}
}

func (c *cache) get(hash string, now time.Time) (*Principal, bool) {
	p, trustedUntil, ok := c.peek(hash, now)
	if !ok || !now.Before(trustedUntil) {
		return nil, false
	}
	return p, true
}

// peek returns an entry even when its trust has run out (but never past the session's
// own expiry), with the time it was trusted until: during a database outage a recently
// checked session may still be honoured.
func (c *cache) peek(hash string, now time.Time) (*Principal, time.Time, bool) {
	c.mu.RLock()
	e, ok := c.byHash[hash]
	c.mu.RUnlock()
	if !ok || !now.Before(e.p.ExpiresAt) {
		return nil, time.Time{}, false
	}
	return e.p, e.until, true
}

func (c *cache) put(hash string, p *Principal, until time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, exists := c.byHash[hash]; !exists && len(c.byHash) >= c.max {
		// Full: drop an arbitrary entry (Go's map order is random). A miss only costs a
		// database read, and the bound is what keeps memory flat under load.
		for h := range c.byHash {
			c.dropLocked(h)
			break
		}
	}
	c.byHash[hash] = cacheEntry{p: p, until: until}
	if c.byUser[p.UserID] == nil {
		c.byUser[p.UserID] = map[string]struct{}{}
	}
	c.byUser[p.UserID][hash] = struct{}{}
}

func (c *cache) drop(hash string) {
	c.mu.Lock()
	c.dropLocked(hash)
	c.mu.Unlock()
}

func (c *cache) dropLocked(hash string) {
	e, ok := c.byHash[hash]
	if !ok {
		return
	}
	delete(c.byHash, hash)
	if hs := c.byUser[e.p.UserID]; hs != nil {
		delete(hs, hash)
		if len(hs) == 0 {
			delete(c.byUser, e.p.UserID)
		}
	}
}

func (c *cache) dropUser(userID string) {
	c.mu.Lock()
	for h := range c.byUser[userID] {
		delete(c.byHash, h)
	}
	delete(c.byUser, userID)
	c.mu.Unlock()
}

func (c *cache) clear() {
	c.mu.Lock()
	c.byHash = map[string]cacheEntry{}
	c.byUser = map[string]map[string]struct{}{}
	c.mu.Unlock()
}

func (c *cache) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.byHash)
}

func (c *cache) expireTrust() {
	c.mu.Lock()
	now := time.Now()
	for h, e := range c.byHash {
		e.until = now
		c.byHash[h] = e
	}
	c.mu.Unlock()
}
