package session

import (
	"fmt"
	"testing"
	"time"
)

func TestCacheIsBoundedAndDropsByUser(t *testing.T) {
	c := newCache(100)
	now := time.Now()
	for i := range 1000 {
		c.put(fmt.Sprint("h", i), &Principal{UserID: fmt.Sprint("u", i%10), ExpiresAt: now.Add(time.Hour)}, now.Add(time.Minute))
	}
	if c.len() != 100 {
		t.Fatalf("cache holds %d entries, bound is 100", c.len())
	}
	total := 0
	for _, hs := range c.byUser {
		total += len(hs)
	}
	if total != 100 {
		t.Fatalf("user index holds %d entries, cache %d: they drifted apart", total, c.len())
	}
	c.dropUser("u3")
	for _, e := range c.byHash {
		if e.p.UserID == "u3" {
			t.Fatal("dropUser left an entry of the user")
		}
	}
}

func TestCacheHonoursBothExpiries(t *testing.T) {
	c := newCache(10)
	now := time.Now()
	c.put("trust-ended", &Principal{UserID: "u", ExpiresAt: now.Add(time.Hour)}, now.Add(-time.Second))
	c.put("session-ended", &Principal{UserID: "u", ExpiresAt: now.Add(-time.Second)}, now.Add(time.Hour))
	c.put("fine", &Principal{UserID: "u", ExpiresAt: now.Add(time.Hour)}, now.Add(time.Hour))
	for hash, want := range map[string]bool{"trust-ended": false, "session-ended": false, "fine": true} {
		if _, ok := c.get(hash, now); ok != want {
			t.Errorf("get(%s) = %v, want %v", hash, ok, want)
		}
	}
}

func TestTokenShape(t *testing.T) {
	tok := NewToken()
	if !wellFormed(tok) || len(HashToken(tok)) != 64 {
		t.Fatalf("token %q / hash %q", tok, HashToken(tok))
	}
	for _, bad := range []string{"", tok[:42], tok + "A", tok[:42] + "=", tok[:42] + "\x00"} {
		if wellFormed(bad) {
			t.Errorf("wellFormed(%q) = true", bad)
		}
	}
	if NewToken() == tok {
		t.Fatal("tokens repeat")
	}
}

// BenchmarkCacheGet is a session-cache hit, in parallel as the server does it.
func BenchmarkCacheGet(b *testing.B) {
	c := newCache(100_000)
	now := time.Now()
	for i := range 100_000 {
		c.put(fmt.Sprint("h", i), &Principal{UserID: "u", ExpiresAt: now.Add(time.Hour)}, now.Add(time.Hour))
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, ok := c.get("h4242", now); !ok {
				b.Fatal("miss")
			}
		}
	})
}

// BenchmarkHashToken is the SHA-256 of a cookie value, paid on every check.
func BenchmarkHashToken(b *testing.B) {
	tok := NewToken()
	b.ReportAllocs()
	for b.Loop() {
		HashToken(tok)
	}
}

// An answer read from the database before an invalidation must not be cached after it.
func TestInvalidationWinsOverAConcurrentLoad(t *testing.T) {
	c := newCache(10)
	now := time.Now()
	p := &Principal{UserID: "u", ExpiresAt: now.Add(time.Hour)}
	gen := c.generation() // a lookup starts reading the database…
	c.dropUser("u")       // …a revocation lands meanwhile…
	c.putUnlessChanged("h", p, now.Add(time.Hour), gen)
	if _, ok := c.get("h", now); ok {
		t.Fatal("a principal loaded before a revocation was cached after it")
	}
	c.putUnlessChanged("h", p, now.Add(time.Hour), c.generation())
	if _, ok := c.get("h", now); !ok {
		t.Fatal("an undisturbed load was not cached")
	}
}

func TestForgettingUnknownTokensDoesNotBlockCaching(t *testing.T) {
	c := newCache(10)
	gen := c.generation()
	for i := range 100 {
		c.forget(fmt.Sprint("unknown", i))
	}
	now := time.Now()
	c.putUnlessChanged("h", &Principal{UserID: "u", ExpiresAt: now.Add(time.Hour)}, now.Add(time.Hour), gen)
	if _, ok := c.get("h", now); !ok {
		t.Fatal("lookups of unknown tokens stopped a valid session from being cached")
	}
}
