// Package session owns logins after they happen: issuing opaque session tokens,
// resolving a token to a user and their groups, caching that answer so a forward-auth
// check reads no database, and keeping every replica's cache true through the
// database's change feed.
//
// A token is 256 random bits; only its SHA-256 hash is stored, so a database leak
// yields no usable cookie. Anonymous requests never reach this package's storage: a
// request without a well-formed cookie is answered without a lookup, and misses are not
// cached, so nothing grows with the number of anonymous requests.
package session

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gatehouse-id/gatehouse/internal/identity"
	"github.com/gatehouse-id/gatehouse/internal/ratelog"
	"github.com/gatehouse-id/gatehouse/internal/store"
	"github.com/gatehouse-id/gatehouse/internal/store/sqlstore"
)

// tokenLen is the length of a base64url-encoded 32-byte token.
const tokenLen = 43

// Principal is the logged-in user behind a session, as forward auth needs it.
type Principal struct {
	SessionID   string
	SID         string // the sign-in as apps know it (ID tokens' sid; see store.Session.SID)
	TokenHash   string
	UserID      string
	Username    string
	Email       string
	DisplayName string
	Groups      []string // effective groups, sorted
	ExpiresAt   time.Time
	TwoFactor   bool // signed in with a second factor (see TwoFactorMethod)
	// AuthenticatedAt is when the user last proved who they are in this session: its
	// creation, since a step-up replaces the session.
	AuthenticatedAt time.Time
	// Method is how they proved it: "password", "password+totp", "passkey+verified",
	// or AppPasswordMethod.
	Method string
	// AppPasswordHosts is set (never empty) for a principal that presented an app
	// password: the host patterns it is good for. A session has none.
	AppPasswordHosts []string
	// Prepared holds what Options.Prepare computed from the other fields once, when the
	// principal was loaded, so that the hot path reuses it (forward auth keeps its
	// identity headers here). Treat it as read-only.
	Prepared any
}

// Options tune a Manager; zero values take the defaults.
type Options struct {
	Lifetime     time.Duration // how long a login lasts
	CacheTTL     time.Duration // how long a cached answer is trusted without the feed (default 5m)
	CacheSize    int           // most sessions cached (default 100,000)
	PollInterval time.Duration // change-feed poll period (default 1s)
	FlushEvery   time.Duration // last-seen write period (default 30s)
	// OutageGrace is how long after its cache entry's trust ran out a session this
	// replica already checked keeps passing while the database cannot be reached.
	OutageGrace time.Duration
	// QueryTimeout bounds the database work of one lookup that misses the cache, so a
	// database that stopped answering costs a proxy's check this long, not forever
	// (0: only the caller's context bounds it).
	QueryTimeout time.Duration
	// Prepare, if set, fills Principal.Prepared when a principal is loaded.
	Prepare func(*Principal) any
}

// Store is what a Manager reads and writes: sign-ins and their last-seen times, the
// change feed, app passwords' lookups and last use, and the people and groups behind
// them (read only: they change through identity.Directory).
type Store interface {
	store.UserReader
	store.GroupReader
	store.Sessions
	store.Events
	AppPasswordByHash(ctx context.Context, hash string) (store.AppPassword, error)
	TouchAppPasswords(ctx context.Context, used map[string]time.Time) error
	InTx(ctx context.Context, fn func(store.Store) error) error
}

// Manager issues and resolves sessions. It is safe for concurrent use.
type Manager struct {
	store  Store
	opts   Options
	log    *slog.Logger
	cache  *cache
	groups atomic.Pointer[groupTree]
	loads  flight // concurrent first sights of one credential share one load

	seenMu sync.Mutex
	seen   map[string]time.Time // token hash → last seen, written out in batches
	used   map[string]time.Time // app password hash → last used, likewise

	lastChange   int64
	feedFailures ratelog.Failures // polls failed in a row (the feed goroutine's alone)
	applied      map[int64]bool
	fed          atomic.Int64 // lastChange, for readers outside the feed goroutine
	active       atomic.Int64
}

type groupTree struct {
	all     []store.Group
	fetched time.Time
}

// NewManager makes a Manager; call Run to start its background work.
func NewManager(s Store, opts Options, log *slog.Logger) *Manager {
	if opts.Lifetime <= 0 {
		opts.Lifetime = 28 * 24 * time.Hour
	}
	if opts.CacheTTL <= 0 {
		opts.CacheTTL = 5 * time.Minute
	}
	if opts.CacheSize <= 0 {
		opts.CacheSize = 100_000
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = time.Second
	}
	if opts.FlushEvery <= 0 {
		opts.FlushEvery = 30 * time.Second
	}
	return &Manager{store: s, opts: opts, log: log, cache: newCache(opts.CacheSize), seen: map[string]time.Time{}, used: map[string]time.Time{}, applied: map[int64]bool{}}
}

// SetLifetime changes the lifetime of sessions created from now on.
func (m *Manager) SetLifetime(d time.Duration) { m.opts.Lifetime = d }

// Lifetime is how long a new session lasts.
func (m *Manager) Lifetime() time.Duration { return m.opts.Lifetime }

// HashToken returns the stored form of a token.
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// NewToken returns 256 random bits, base64url-encoded.
func NewToken() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// wellFormed rejects anything that cannot be a token before any lookup: an oversized or
// garbage cookie costs a length check, not a database query.
func wellFormed(token string) bool {
	if len(token) != tokenLen {
		return false
	}
	for i := 0; i < len(token); i++ {
		c := token[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// Create starts a session for u and returns the cookie value. A session that carries
// on a sign-in of the same person in the same browser (a step-up) passes that
// sign-in's sid, so that what apps hold for it lives on; "" starts a new sign-in.
func (m *Manager) Create(ctx context.Context, u store.User, method, ip, userAgent, sid string) (string, store.Session, error) {
	token := NewToken()
	now := time.Now().UTC().Truncate(time.Microsecond)
	if len(userAgent) > 256 {
		userAgent = userAgent[:256]
	}
	s := store.Session{
		ID: sqlstore.NewID(), TokenHash: HashToken(token), UserID: u.ID, AuthMethod: method,
		CreatedAt: now, ExpiresAt: now.Add(m.opts.Lifetime), LastSeenAt: now, IP: ip, UserAgent: userAgent,
	}
	s.SID = cmp.Or(sid, s.ID)
	gen := m.cache.generation()
	if err := m.store.CreateSession(ctx, s); err != nil {
		return "", s, err
	}
	// Cached where it was made: if the database goes away before the browser's next
	// request, this replica can still honour the sign-in through the outage grace.
	if p, err := m.principal(ctx, s, nil); err == nil && p != nil {
		m.cache.putUnlessChanged(s.TokenHash, m.cache.keyOf(token), p, now.Add(m.opts.CacheTTL), gen)
	}
	return token, s, nil
}

// Lookup resolves a cookie value to its principal; (nil, nil) means no valid session.
// A cached answer costs no database access; its last-seen time is written later.
func (m *Manager) Lookup(ctx context.Context, token string) (*Principal, error) {
	if !wellFormed(token) {
		return nil, nil
	}
	key, now := m.cache.keyOf(token), time.Now()
	if p, ok := m.cache.getByKey(key, now); ok {
		m.markSeen(p.TokenHash, now)
		return p, nil
	}
	return m.resolve(ctx, HashToken(token), key, m.markSeen, func(ctx context.Context, hash string, now time.Time) (*Principal, error) {
		s, u, direct, err := m.store.SignedIn(ctx, hash)
		switch {
		case errors.Is(err, store.ErrNotFound):
			return nil, nil
		case err != nil:
			return nil, err
		case !now.Before(s.ExpiresAt):
			return nil, nil
		}
		return m.principalOf(ctx, s, u, direct, nil)
	})
}

// resolve is the cached lookup every credential shares. A cached answer costs no
// query; otherwise load reads it (nil: no such credential, which is not cached, and
// never served from a stale copy). When the database is out of reach, a copy this
// replica checked recently is honoured through the outage grace rather than sending
// every signed-in person to a login page that cannot work. mark records the use.
func (m *Manager) resolve(ctx context.Context, hash string, key tokenKey, mark func(string, time.Time),
	load func(ctx context.Context, hash string, now time.Time) (*Principal, error)) (*Principal, error) {
	now := time.Now()
	if p, ok := m.cache.get(hash, now); ok {
		mark(hash, now)
		return p, nil
	}
	if m.opts.QueryTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, m.opts.QueryTimeout)
		defer cancel()
	}
	p, err := m.loads.do(ctx, hash, func() (*Principal, error) {
		// The answer is cached before the waiters are let go, so a request after it
		// finds it in flight or, here, in the cache: one read per first sight.
		if p, ok := m.cache.get(hash, now); ok {
			return p, nil
		}
		// A change applied while we read (a revocation, say) must win over what we read.
		gen := m.cache.generation()
		p, err := load(ctx, hash, now)
		switch {
		case err != nil:
		case p == nil:
			m.cache.forget(hash)
		default:
			m.cache.putUnlessChanged(hash, key, p, now.Add(m.opts.CacheTTL), gen)
		}
		return p, err
	})
	if err != nil {
		if stale, trustedUntil, ok := m.cache.peek(hash, now); ok && now.Before(trustedUntil.Add(m.opts.OutageGrace)) {
			mark(hash, now)
			return stale, nil
		}
		return nil, err
	}
	if p != nil {
		mark(hash, now)
	}
	return p, nil
}

// flight runs one load per key at a time: when a replica restarts, a browser opens a
// page of thirty assets at once and each asks about the same session; the first of
// them reads the database and the others wait for its answer instead of sending the
// same queries each.
type flight struct {
	mu    sync.Mutex
	calls map[string]*flightCall
}

type flightCall struct {
	done    chan struct{}
	p       *Principal
	err     error
	waiters int // under flight.mu; tests watch it
}

// do runs load for key, or waits for the run already under way. A waiter whose own
// request is still alive when the run it waited for was cancelled (that client went
// away) runs load itself.
func (f *flight) do(ctx context.Context, key string, load func() (*Principal, error)) (*Principal, error) {
	f.mu.Lock()
	if c, ok := f.calls[key]; ok {
		c.waiters++
		f.mu.Unlock()
		select {
		case <-c.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if c.err == nil || !errors.Is(c.err, context.Canceled) || ctx.Err() != nil {
			return c.p, c.err
		}
		return load()
	}
	if f.calls == nil {
		f.calls = map[string]*flightCall{}
	}
	c := &flightCall{done: make(chan struct{})}
	f.calls[key] = c
	f.mu.Unlock()
	c.p, c.err = load()
	f.mu.Lock()
	delete(f.calls, key)
	f.mu.Unlock()
	close(c.done)
	return c.p, c.err
}

// principal loads the user and groups behind a session; nil when the user is disabled.
// amend, when set, completes the principal before Prepare sees it.
func (m *Manager) principal(ctx context.Context, s store.Session, amend func(*Principal)) (*Principal, error) {
	u, err := m.store.UserByID(ctx, s.UserID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil || u.Disabled {
		return nil, err
	}
	direct, err := m.store.UserGroupIDs(ctx, u.ID)
	if err != nil {
		return nil, err
	}
	return m.principalOf(ctx, s, u, direct, amend)
}

// principalOf builds the principal of a session whose user and direct groups are read;
// nil when the user is disabled.
func (m *Manager) principalOf(ctx context.Context, s store.Session, u store.User, direct []string, amend func(*Principal)) (*Principal, error) {
	if u.Disabled {
		return nil, nil
	}
	tree, err := m.groupTree(ctx, direct)
	if err != nil {
		return nil, err
	}
	p := &Principal{
		SessionID: s.ID, SID: cmp.Or(s.SID, s.ID), TokenHash: s.TokenHash, UserID: u.ID, Username: u.Username, Email: u.Email,
		DisplayName: u.DisplayName, Groups: identity.EffectiveGroups(direct, tree), ExpiresAt: s.ExpiresAt,
		TwoFactor: TwoFactorMethod(s.AuthMethod), AuthenticatedAt: s.CreatedAt, Method: s.AuthMethod,
	}
	if amend != nil {
		amend(p)
	}
	if m.opts.Prepare != nil {
		p.Prepared = m.opts.Prepare(p)
	}
	return p, nil
}

// groupTree returns all groups, re-reading them when the copy is old or lacks one of
// the ids asked about (a group created since the last read).
func (m *Manager) groupTree(ctx context.Context, need []string) ([]store.Group, error) {
	if t := m.groups.Load(); t != nil && time.Since(t.fetched) < m.opts.CacheTTL && hasAll(t.all, need) {
		return t.all, nil
	}
	all, err := m.store.ListGroups(ctx)
	if err != nil {
		return nil, err
	}
	m.groups.Store(&groupTree{all: all, fetched: time.Now()})
	return all, nil
}

// Revoke ends the session behind a cookie value (logout) on every replica. It is all
// or nothing: the cached copy goes only once the row is gone, so a database that fails
// the sign-out leaves the session whole everywhere (and the caller says so), never
// refused on this replica and valid on the others.
func (m *Manager) Revoke(ctx context.Context, token string) error {
	if !wellFormed(token) {
		return nil
	}
	hash := HashToken(token)
	s, err := m.store.SessionByTokenHash(ctx, hash)
	if errors.Is(err, store.ErrNotFound) {
		m.cache.drop(hash)
		return nil
	}
	if err != nil {
		return err
	}
	// The row and its change-feed row go together: a feed row that failed after the
	// delete would leave the session valid in other replicas' caches.
	err = m.store.InTx(ctx, func(tx store.Store) error {
		if err := tx.DeleteSession(ctx, s.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		return tx.AppendChange(ctx, store.ChangeSession, hash)
	})
	if err != nil {
		return err
	}
	m.cache.drop(hash) // gone from the database: gone here at once, elsewhere via the feed
	return nil
}

func (m *Manager) markSeen(hash string, at time.Time) {
	m.seenMu.Lock()
	m.seen[hash] = at
	m.seenMu.Unlock()
}

// ActiveSessions is the number of unexpired sessions at the last count.
func (m *Manager) ActiveSessions() int64 { return m.active.Load() }

// CachedSessions is how many sessions this replica holds in memory.
func (m *Manager) CachedSessions() int { return m.cache.len() }

func hasAll(groups []store.Group, ids []string) bool {
	for _, id := range ids {
		if !slices.ContainsFunc(groups, func(g store.Group) bool { return g.ID == id }) {
			return false
		}
	}
	return true
}

// ExpireCacheTrust ends the trust of every cached entry now, as if the cache TTL had
// passed, keeping the entries for the outage grace. Tests use it instead of waiting.
func (m *Manager) ExpireCacheTrust() { m.cache.expireTrust() }

// TwoFactorMethod reports whether a session's auth method included a second factor:
// methods are written "password" or "password+totp", "password+recovery", and a
// passkey with user verification (possession plus PIN or biometrics) "passkey+verified".
func TwoFactorMethod(method string) bool { return strings.Contains(method, "+") }
