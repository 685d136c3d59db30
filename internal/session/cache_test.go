package session

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-id/gatehouse/internal/store"
	"github.com/gatehouse-id/gatehouse/internal/store/sqlite"
	"github.com/gatehouse-id/gatehouse/internal/testenv"
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
	c.putUnlessChanged("h", tokenKey{}, p, now.Add(time.Hour), gen)
	if _, ok := c.get("h", now); ok {
		t.Fatal("a principal loaded before a revocation was cached after it")
	}
	c.putUnlessChanged("h", tokenKey{}, p, now.Add(time.Hour), c.generation())
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
	c.putUnlessChanged("h", tokenKey{}, &Principal{UserID: "u", ExpiresAt: now.Add(time.Hour)}, now.Add(time.Hour), gen)
	if _, ok := c.get("h", now); !ok {
		t.Fatal("lookups of unknown tokens stopped a valid session from being cached")
	}
}

// gatedStore holds every session read until release is closed.
type gatedStore struct {
	Store
	release chan struct{}
	reads   atomic.Int32
}

func (g *gatedStore) SignedIn(ctx context.Context, hash string) (store.Session, store.User, []string, error) {
	g.reads.Add(1)
	<-g.release
	return g.Store.SignedIn(ctx, hash)
}

// Many requests with one session nobody has seen yet (a page's thirty assets after a
// restart) cost one read of it, not one each: the others wait for the first one's.
func TestConcurrentFirstSightsShareOneRead(t *testing.T) {
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "gh.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	u, err := st.CreateUser(ctx, store.User{Username: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	gated := &gatedStore{Store: st, release: make(chan struct{})}
	m := NewManager(gated, Options{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	token, _, err := m.Create(ctx, u, "password", "", "", "") // cached by Create, not read
	if err != nil {
		t.Fatal(err)
	}
	m.Apply(store.Change{Kind: store.ChangeAll}) // as after a restart
	var wg sync.WaitGroup
	for range 30 {
		wg.Go(func() {
			if p, err := m.Lookup(ctx, token); err != nil || p == nil || p.Username != "alice" {
				t.Errorf("lookup: %v %v", p, err)
			}
		})
	}
	testenv.WaitFor(t, 10*time.Second, "29 lookups to wait for the first one's read", func() bool {
		m.loads.mu.Lock()
		defer m.loads.mu.Unlock()
		for _, c := range m.loads.calls {
			return c.waiters == 29
		}
		return false
	})
	close(gated.release)
	wg.Wait()
	if n := gated.reads.Load(); n != 1 {
		t.Fatalf("30 concurrent first sights read the session %d times, want once", n)
	}
}

// A token found by its fast key is dropped with its hash: revoking a session by the
// hash the change feed carries, or all of a user's, leaves nothing reachable by key,
// and two tokens never share a key.
func TestCacheKeysFollowTheirHashes(t *testing.T) {
	c := newCache(10)
	now := time.Now()
	ka, kb := c.keyOf("token-a"), c.keyOf("token-b")
	if ka == kb || ka == (tokenKey{}) {
		t.Fatal("two tokens share a key, or a key is zero")
	}
	c.putUnlessChanged("ha", ka, &Principal{UserID: "u1", TokenHash: "ha", ExpiresAt: now.Add(time.Hour)}, now.Add(time.Hour), c.generation())
	c.putUnlessChanged("hb", kb, &Principal{UserID: "u2", TokenHash: "hb", ExpiresAt: now.Add(time.Hour)}, now.Add(time.Hour), c.generation())
	if p, ok := c.getByKey(ka, now); !ok || p.TokenHash != "ha" {
		t.Fatal("a cached token is not found by its key")
	}
	c.drop("ha")
	if _, ok := c.getByKey(ka, now); ok {
		t.Fatal("a session dropped by hash is still found by key")
	}
	c.dropUser("u2")
	if _, ok := c.getByKey(kb, now); ok {
		t.Fatal("a session dropped with its user is still found by key")
	}
	c.putUnlessChanged("hb", kb, &Principal{UserID: "u2", TokenHash: "hb", ExpiresAt: now.Add(time.Hour)}, now.Add(time.Minute), c.generation())
	if _, ok := c.getByKey(kb, now.Add(2*time.Minute)); ok {
		t.Fatal("an entry past its trust is found by key")
	}
	c.clear()
	if len(c.byKey) != 0 {
		t.Fatal("clear left keys behind")
	}
}
