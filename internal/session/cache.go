package session

import (
	"hash/maphash"
	"sync"
	"time"
)

// cache maps token hashes to principals, bounded in size, with an index by user so
// that disabling a user drops all their sessions at once, and an index by a fast keyed
// hash of the token itself, so that a cached check costs no SHA-256.
type cache struct {
	mu     sync.RWMutex
	gen    uint64 // bumped by every invalidation
	max    int
	byHash map[string]cacheEntry
	byUser map[string]map[string]struct{}
	byKey  map[tokenKey]string // tokenKey → hash, for entries put with a key

	seeds [2]maphash.Seed // this process's, random: nobody can aim for a collision
}

// tokenKey is a token's 128-bit keyed hash (two 64-bit maphashes with secret seeds):
// cheap to compute, and too wide for two tokens to share by chance. Only the cache in
// this process uses it; the database keeps the SHA-256 hash.
type tokenKey [2]uint64

type cacheEntry struct {
	p     *Principal
	until time.Time // trusted until then, or until the session expires
	key   tokenKey  // zero when put without one
}

func newCache(max int) *cache {
	return &cache{max: max, byHash: map[string]cacheEntry{}, byUser: map[string]map[string]struct{}{},
		byKey: map[tokenKey]string{}, seeds: [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()}}
}

// keyOf is token's key in this cache.
func (c *cache) keyOf(token string) tokenKey {
	return tokenKey{maphash.String(c.seeds[0], token), maphash.String(c.seeds[1], token)}
}

// keyOfBytes is keyOf for a secret decoded into a buffer (an app password).
func (c *cache) keyOfBytes(secret []byte) tokenKey {
	return tokenKey{maphash.Bytes(c.seeds[0], secret), maphash.Bytes(c.seeds[1], secret)}
}

// getByKey is get through the token's key: no SHA-256 when it is cached.
func (c *cache) getByKey(key tokenKey, now time.Time) (*Principal, bool) {
	c.mu.RLock()
	hash, ok := c.byKey[key]
	e := c.byHash[hash]
	c.mu.RUnlock()
	if !ok || e.p == nil || !now.Before(e.p.ExpiresAt) || !now.Before(e.until) {
		return nil, false
	}
	return e.p, true
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

// generation identifies the cache's state of invalidations.
func (c *cache) generation() uint64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.gen
}

// putUnlessChanged caches p only if nothing was invalidated since generation gen was
// read: an answer loaded from the database before a revocation landed must not be
// cached after it. Skipping costs one more database read later, nothing else.
func (c *cache) putUnlessChanged(hash string, key tokenKey, p *Principal, until time.Time, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != gen {
		return
	}
	c.putLocked(hash, key, p, until)
}

func (c *cache) put(hash string, p *Principal, until time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.putLocked(hash, tokenKey{}, p, until)
}

func (c *cache) putLocked(hash string, key tokenKey, p *Principal, until time.Time) {
	if _, exists := c.byHash[hash]; !exists && len(c.byHash) >= c.max {
		// Full: drop an arbitrary entry (Go's map order is random). A miss only costs a
		// database read, and the bound is what keeps memory flat under load.
		for h := range c.byHash {
			c.dropLocked(h)
			break
		}
	}
	if old, exists := c.byHash[hash]; exists && old.key != (tokenKey{}) {
		delete(c.byKey, old.key)
	}
	c.byHash[hash] = cacheEntry{p: p, until: until, key: key}
	if key != (tokenKey{}) {
		c.byKey[key] = hash
	}
	if c.byUser[p.UserID] == nil {
		c.byUser[p.UserID] = map[string]struct{}{}
	}
	c.byUser[p.UserID][hash] = struct{}{}
}

// drop invalidates hash, cached or not: a load of it in progress must not cache it.
func (c *cache) drop(hash string) {
	c.mu.Lock()
	c.gen++
	c.dropLocked(hash)
	c.mu.Unlock()
}

// forget removes a cached entry that a lookup found to be gone. Unlike drop it leaves
// the generation alone when there was nothing to remove, so a flood of unknown tokens
// cannot keep every other lookup from caching its answer.
func (c *cache) forget(hash string) {
	c.mu.Lock()
	if _, ok := c.byHash[hash]; ok {
		c.gen++
		c.dropLocked(hash)
	}
	c.mu.Unlock()
}

func (c *cache) dropLocked(hash string) {
	e, ok := c.byHash[hash]
	if !ok {
		return
	}
	delete(c.byHash, hash)
	delete(c.byKey, e.key)
	if hs := c.byUser[e.p.UserID]; hs != nil {
		delete(hs, hash)
		if len(hs) == 0 {
			delete(c.byUser, e.p.UserID)
		}
	}
}

func (c *cache) dropUser(userID string) {
	c.mu.Lock()
	c.gen++
	for h := range c.byUser[userID] {
		delete(c.byKey, c.byHash[h].key)
		delete(c.byHash, h)
	}
	delete(c.byUser, userID)
	c.mu.Unlock()
}

func (c *cache) clear() {
	c.mu.Lock()
	c.gen++
	c.byHash = map[string]cacheEntry{}
	c.byUser = map[string]map[string]struct{}{}
	c.byKey = map[tokenKey]string{}
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
