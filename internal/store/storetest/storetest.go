// Package storetest is the conformance suite for store.Store: the specification every
// backend must pass. A backend is done exactly when Run passes against it; backends are
// never tested with mocks.
package storetest

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-id/gatehouse/internal/store"
)

// Backend opens a fresh, empty, unmigrated store for one test.
type Backend func(t *testing.T) store.Store

// rawDB is how the suite tampers with a database the way an operator or another
// binary version could (a newer schema row); sqlstore.Store provides it.
type rawDB interface{ DB() *sql.DB }

// Run runs every conformance test against the backend.
func Run(t *testing.T, open Backend) {
	migrated := func(t *testing.T) store.Store {
		s := open(t)
		t.Cleanup(func() { s.Close() })
		if _, err := s.Migrate(context.Background()); err != nil {
			t.Fatalf("migrate: %v", err)
		}
		return s
	}
	tests := map[string]func(*testing.T, store.Store){
		"Users":             testUsers,
		"Groups":            testGroups,
		"SyncConfigGroups":  testSyncConfigGroups,
		"Sessions":          testSessions,
		"Setup":             testSetup,
		"Settings":          testSettings,
		"EventsAndChanges":  testEventsAndChanges,
		"ConcurrentCreates": testConcurrentCreates,
		"Leases":            testLeases,
		"SecondFactors":     testSecondFactors,
		"Passkeys":          testPasskeys,
		"OIDC":              testOIDC,
		"Throttle":          testThrottle,
		"ConcurrentTouches": testConcurrentTouches,
		"OIDCLogouts":       testOIDCLogouts,
		"Transactions":      testTransactions,
		"EventOutbox":       testEventOutbox,
		"AppPasswords":      testAppPasswords,
		"SignInLinks":       testSignInLinks,
		"Invitations":       testInvitations,
		"Upstream":          testUpstream,
		"WebhookOutbox":     testWebhookOutbox,
	}
	names := make([]string, 0, len(tests))
	for name := range tests {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		t.Run(name, func(t *testing.T) { tests[name](t, migrated(t)) })
	}
	t.Run("Migrations", func(t *testing.T) {
		s := open(t)
		defer s.Close()
		testMigrations(t, s)
	})
	t.Run("ConcurrentMigrations", func(t *testing.T) {
		s := open(t)
		defer s.Close()
		testConcurrentMigrations(t, s)
	})
}

// must turns a (value, error) pair into the value, failing the test on an error:
// must(s.UserByID(ctx, id))(t).
func must[T any](v T, err error) func(t *testing.T) T {
	return func(t *testing.T) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func noErr(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func wantErr(t *testing.T, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("got error %v, want %v", err, target)
	}
}

func testMigrations(t *testing.T, s store.Store) {
	ctx := context.Background()
	pending := must(s.PendingMigrations(ctx))(t)
	if len(pending) == 0 || pending[0] != 1 {
		t.Fatalf("fresh database: pending = %v, want to start at 1", pending)
	}
	applied := must(s.Migrate(ctx))(t)
	if !slices.Equal(applied, pending) {
		t.Fatalf("applied %v, pending said %v", applied, pending)
	}
	if again := must(s.Migrate(ctx))(t); len(again) != 0 {
		t.Fatalf("second migrate applied %v, want nothing (migrations are idempotent)", again)
	}
	dbv, binv, err := s.SchemaVersion(ctx)
	noErr(t, err)
	if dbv != binv || dbv != pending[len(pending)-1] {
		t.Fatalf("schema version db=%d binary=%d, want both %d", dbv, binv, pending[len(pending)-1])
	}

	// A newer binary migrated this database: this one must refuse and write nothing.
	raw, ok := s.(rawDB)
	if !ok {
		t.Fatalf("%T does not expose DB(): the suite cannot simulate a newer schema", s)
	}
	_, err = raw.DB().ExecContext(ctx, "INSERT INTO gatehouse_schema (version, name, applied_at) VALUES ($1, 'from_the_future', 0)", binv+1)
	noErr(t, err)
	before := s.QueryCount()
	_, err = s.Migrate(ctx)
	var tooNew *store.SchemaTooNewError
	if !errors.As(err, &tooNew) || tooNew.Database != binv+1 || tooNew.Binary != binv {
		t.Fatalf("migrate on a newer schema: got %v, want SchemaTooNewError{%d, %d}", err, binv+1, binv)
	}
	if s.QueryCount()-before > 3 {
		t.Fatalf("refusing a newer schema sent %d statements; it should only read the version", s.QueryCount()-before)
	}
	if _, err := s.PendingMigrations(ctx); !errors.Is(err, store.ErrSchemaTooNew) {
		t.Fatalf("pending on a newer schema: got %v", err)
	}
	var rows int
	noErr(t, raw.DB().QueryRowContext(ctx, "SELECT COUNT(*) FROM gatehouse_schema").Scan(&rows))
	if rows != len(applied)+1 {
		t.Fatalf("schema table has %d rows after a refused migrate, want %d", rows, len(applied)+1)
	}
}

func testUsers(t *testing.T, s store.Store) {
	ctx := context.Background()
	alice := must(s.CreateUser(ctx, store.User{Username: "Alice", Email: "alice@example.com", DisplayName: "Alice A"}))(t)
	if alice.ID == "" || alice.CreatedAt.IsZero() {
		t.Fatalf("created user lacks id or time: %+v", alice)
	}
	_, err := s.CreateUser(ctx, store.User{Username: "alice"})
	wantErr(t, err, store.ErrConflict)

	got := must(s.UserByUsername(ctx, "ALICE"))(t)
	if got.ID != alice.ID || got.Username != "Alice" || got.Email != "alice@example.com" {
		t.Fatalf("lookup by username: %+v", got)
	}
	_, err = s.UserByUsername(ctx, "alic")
	wantErr(t, err, store.ErrNotFound) // exact: never a prefix or fuzzy match
	_, err = s.UserByUsername(ctx, "alice%")
	wantErr(t, err, store.ErrNotFound)
	_, err = s.UserByID(ctx, "nope")
	wantErr(t, err, store.ErrNotFound)

	must(s.CreateUser(ctx, store.User{Username: "bob"}))(t)
	users := must(s.ListUsers(ctx))(t)
	if len(users) != 2 || users[0].Username != "Alice" || users[1].Username != "bob" || users[1].Email != "" {
		t.Fatalf("list users: %+v", users)
	}

	email, disabled := "a@example.org", true
	upd := must(s.UpdateUser(ctx, alice.ID, store.UserUpdate{Email: &email, Disabled: &disabled}))(t)
	if upd.Email != email || !upd.Disabled || upd.DisplayName != "Alice A" {
		t.Fatalf("update: %+v", upd)
	}
	if got := must(s.UserByID(ctx, alice.ID))(t); !got.Disabled || got.Email != email {
		t.Fatalf("update not stored: %+v", got)
	}
	_, err = s.UpdateUser(ctx, "nope", store.UserUpdate{Email: &email})
	wantErr(t, err, store.ErrNotFound)

	// Email addresses are unique ignoring case; empty ones and pending ones are not.
	_, err = s.CreateUser(ctx, store.User{Username: "mallory", Email: "A@Example.ORG"})
	wantErr(t, err, store.ErrConflict)
	if err == nil || !strings.Contains(err.Error(), "email address") {
		t.Fatalf("a taken email address must be named as such: %v", err)
	}
	carol := must(s.CreateUser(ctx, store.User{Username: "carol"}))(t)
	taken, pending := "a@EXAMPLE.org", "a@example.org"
	_, err = s.UpdateUser(ctx, carol.ID, store.UserUpdate{Email: &taken})
	wantErr(t, err, store.ErrConflict)
	if got := must(s.UpdateUser(ctx, carol.ID, store.UserUpdate{EmailPending: &pending}))(t); got.EmailPending != pending || got.Email != "" {
		t.Fatalf("pending email: %+v", got)
	}
	noErr(t, s.DeleteUser(ctx, carol.ID))

	noErr(t, s.SetPasswordHash(ctx, alice.ID, "$argon2id$x"))
	if got := must(s.UserByID(ctx, alice.ID))(t); got.PasswordHash != "$argon2id$x" {
		t.Fatalf("password hash not stored: %q", got.PasswordHash)
	}
	wantErr(t, s.SetPasswordHash(ctx, "nope", "x"), store.ErrNotFound)

	g := must(s.CreateGroup(ctx, store.Group{Name: "family"}))(t)
	noErr(t, s.AddMember(ctx, g.ID, alice.ID))
	noErr(t, s.CreateSession(ctx, newSession(alice.ID, "h-alice", time.Hour)))
	noErr(t, s.DeleteUser(ctx, alice.ID))
	wantErr(t, s.DeleteUser(ctx, alice.ID), store.ErrNotFound)
	if ids := must(s.GroupMemberIDs(ctx, g.ID))(t); len(ids) != 0 {
		t.Fatalf("memberships survive the user: %v", ids)
	}
	_, err = s.SessionByTokenHash(ctx, "h-alice")
	wantErr(t, err, store.ErrNotFound)
}

func testGroups(t *testing.T, s store.Store) {
	ctx := context.Background()
	parent := must(s.CreateGroup(ctx, store.Group{Name: "Allow Login Users"}))(t)
	child := must(s.CreateGroup(ctx, store.Group{Name: "Home Server Admins", ParentID: parent.ID}))(t)
	_, err := s.CreateGroup(ctx, store.Group{Name: "Allow Login Users"})
	wantErr(t, err, store.ErrConflict)

	got := must(s.GroupByName(ctx, "Home Server Admins"))(t)
	if got.ParentID != parent.ID || got.FromConfig {
		t.Fatalf("group by name: %+v", got)
	}
	_, err = s.GroupByName(ctx, "home server admins")
	wantErr(t, err, store.ErrNotFound) // group names are exact

	u := must(s.CreateUser(ctx, store.User{Username: "carol"}))(t)
	noErr(t, s.AddMember(ctx, child.ID, u.ID))
	noErr(t, s.AddMember(ctx, child.ID, u.ID)) // idempotent
	if ids := must(s.UserGroupIDs(ctx, u.ID))(t); !slices.Equal(ids, []string{child.ID}) {
		t.Fatalf("user groups: %v", ids)
	}
	if ids := must(s.GroupMemberIDs(ctx, child.ID))(t); !slices.Equal(ids, []string{u.ID}) {
		t.Fatalf("group members: %v", ids)
	}
	noErr(t, s.RemoveMember(ctx, child.ID, u.ID))
	wantErr(t, s.RemoveMember(ctx, child.ID, u.ID), store.ErrNotFound)

	noErr(t, s.SetGroupParent(ctx, child.ID, ""))
	if got := must(s.GroupByName(ctx, child.Name))(t); got.ParentID != "" {
		t.Fatalf("parent not cleared: %+v", got)
	}
	noErr(t, s.SetGroupParent(ctx, child.ID, parent.ID))
	noErr(t, s.DeleteGroup(ctx, parent.ID))
	if got := must(s.GroupByName(ctx, child.Name))(t); got.ParentID != "" {
		t.Fatalf("child keeps a deleted parent: %+v", got)
	}
	wantErr(t, s.DeleteGroup(ctx, parent.ID), store.ErrNotFound)
	if gs := must(s.ListGroups(ctx))(t); len(gs) != 1 || gs[0].Name != "Home Server Admins" {
		t.Fatalf("list groups: %+v", gs)
	}
}

func testSyncConfigGroups(t *testing.T, s store.Store) {
	ctx := context.Background()
	must(s.CreateGroup(ctx, store.Group{Name: "data"}))(t)
	noErr(t, s.SyncConfigGroups(ctx, map[string]string{"admins": "users", "users": "", "data": ""}))
	byName := func() map[string]store.Group {
		m := map[string]store.Group{}
		for _, g := range must(s.ListGroups(ctx))(t) {
			m[g.Name] = g
		}
		return m
	}
	gs := byName()
	if len(gs) != 3 || !gs["admins"].FromConfig || !gs["data"].FromConfig || gs["admins"].ParentID != gs["users"].ID {
		t.Fatalf("after sync: %+v", gs)
	}
	noErr(t, s.SyncConfigGroups(ctx, map[string]string{"users": ""}))
	gs = byName()
	if gs["admins"].FromConfig || gs["data"].FromConfig || !gs["users"].FromConfig || len(gs) != 3 {
		t.Fatalf("groups dropped from config must stay, as data: %+v", gs)
	}
}

func newSession(userID, hash string, ttl time.Duration) store.Session {
	now := time.Now().UTC().Truncate(time.Microsecond)
	return store.Session{ID: "id-" + hash, TokenHash: hash, UserID: userID, AuthMethod: "password",
		CreatedAt: now, ExpiresAt: now.Add(ttl), LastSeenAt: now, IP: "192.0.2.1", UserAgent: "test"}
}

func testSessions(t *testing.T, s store.Store) {
	ctx := context.Background()
	u := must(s.CreateUser(ctx, store.User{Username: "dave"}))(t)
	v := must(s.CreateUser(ctx, store.User{Username: "erin"}))(t)
	s1 := newSession(u.ID, "h1", time.Hour)
	noErr(t, s.CreateSession(ctx, s1))
	noErr(t, s.CreateSession(ctx, newSession(u.ID, "h2", time.Hour)))
	noErr(t, s.CreateSession(ctx, newSession(v.ID, "h3", -time.Second))) // already expired

	got := must(s.SessionByTokenHash(ctx, "h1"))(t)
	if want := s1; want.SID == "" { // a new session's sid is its own id unless given
		want.SID = want.ID
		if got != want {
			t.Fatalf("session round trip:\n got %+v\nwant %+v", got, want)
		}
	}
	if got := must(s.SessionByID(ctx, "id-h1"))(t); got.TokenHash != "h1" {
		t.Fatalf("by id: %+v", got)
	}
	_, err := s.SessionByTokenHash(ctx, "h")
	wantErr(t, err, store.ErrNotFound)

	// A first sight reads the session, its user and the user's direct groups at once.
	g1, g2 := must(s.CreateGroup(ctx, store.Group{Name: "signed-in-b"}))(t), must(s.CreateGroup(ctx, store.Group{Name: "signed-in-a"}))(t)
	noErr(t, s.AddMember(ctx, g1.ID, u.ID))
	noErr(t, s.AddMember(ctx, g2.ID, u.ID))
	ss, su, groups, err := s.SignedIn(ctx, "h1")
	noErr(t, err)
	wantUser := must(s.UserByID(ctx, u.ID))(t)
	wantGroups := must(s.UserGroupIDs(ctx, u.ID))(t)
	if ss != got || su != wantUser || !slices.Equal(groups, wantGroups) || len(groups) != 2 {
		t.Fatalf("signed in:\n got %+v\n     %+v\n     %v\nwant %+v\n     %+v\n     %v", ss, su, groups, got, wantUser, wantGroups)
	}
	if _, sv, groups, err := s.SignedIn(ctx, "h3"); err != nil || sv.ID != v.ID || groups == nil || len(groups) != 0 {
		t.Fatalf("signed in without groups: %+v %v %v (want the user, an empty list)", sv, groups, err)
	}
	_, _, _, err = s.SignedIn(ctx, "h")
	wantErr(t, err, store.ErrNotFound)
	noErr(t, s.RemoveMember(ctx, g1.ID, u.ID))
	noErr(t, s.RemoveMember(ctx, g2.ID, u.ID))

	if n := must(s.CountActiveSessions(ctx, time.Now()))(t); n != 2 {
		t.Fatalf("active sessions = %d, want 2", n)
	}
	if l := must(s.ListSessions(ctx, u.ID))(t); len(l) != 2 {
		t.Fatalf("list user sessions: %d", len(l))
	}
	if l := must(s.ListSessions(ctx, ""))(t); len(l) != 3 {
		t.Fatalf("list all sessions: %d", len(l))
	}

	later := s1.LastSeenAt.Add(time.Minute)
	noErr(t, s.TouchSessions(ctx, map[string]time.Time{"h1": later, "missing": later}))
	noErr(t, s.TouchSessions(ctx, map[string]time.Time{"h1": s1.LastSeenAt})) // never moves back
	if got := must(s.SessionByTokenHash(ctx, "h1"))(t); !got.LastSeenAt.Equal(later) {
		t.Fatalf("last seen = %v, want %v", got.LastSeenAt, later)
	}

	if n := must(s.DeleteExpiredSessions(ctx, time.Now()))(t); n != 1 {
		t.Fatalf("expired deleted = %d, want 1", n)
	}
	noErr(t, s.DeleteSession(ctx, "id-h1"))
	wantErr(t, s.DeleteSession(ctx, "id-h1"), store.ErrNotFound)
	if n := must(s.DeleteUserSessions(ctx, u.ID))(t); n != 1 {
		t.Fatalf("user sessions deleted = %d, want 1", n)
	}
	if n := must(s.CountActiveSessions(ctx, time.Now()))(t); n != 0 {
		t.Fatalf("active sessions = %d, want 0", n)
	}
}

func testSetup(t *testing.T, s store.Store) {
	ctx := context.Background()
	now := time.Now()
	noErr(t, s.CreateSetupToken(ctx, "tok", now.Add(time.Hour)))
	noErr(t, s.CreateSetupToken(ctx, "old", now.Add(-time.Second)))
	if ok := must(s.SetupTokenValid(ctx, "tok", now))(t); !ok {
		t.Fatal("fresh token not valid")
	}
	if ok := must(s.SetupTokenValid(ctx, "old", now))(t); ok {
		t.Fatal("expired token valid")
	}
	_, err := s.CompleteSetup(ctx, "old", now, store.User{Username: "root"}, "admins")
	wantErr(t, err, store.ErrNotFound)
	if users := must(s.ListUsers(ctx))(t); len(users) != 0 {
		t.Fatalf("failed setup created users: %+v", users)
	}

	res := must(s.CompleteSetup(ctx, "tok", now, store.User{Username: "root", PasswordHash: "h"}, "admins"))(t)
	if res.User.Username != "root" || res.Group.Name != "admins" {
		t.Fatalf("setup result: %+v", res)
	}
	if ids := must(s.UserGroupIDs(ctx, res.User.ID))(t); !slices.Equal(ids, []string{res.Group.ID}) {
		t.Fatalf("admin not in admin group: %v", ids)
	}
	_, err = s.CompleteSetup(ctx, "tok", now, store.User{Username: "root2"}, "admins")
	wantErr(t, err, store.ErrNotFound) // single use

	// An existing group is reused, and a taken username rolls everything back.
	noErr(t, s.CreateSetupToken(ctx, "tok2", now.Add(time.Hour)))
	_, err = s.CompleteSetup(ctx, "tok2", now, store.User{Username: "ROOT"}, "admins")
	wantErr(t, err, store.ErrConflict)
	if ok := must(s.SetupTokenValid(ctx, "tok2", now))(t); !ok {
		t.Fatal("a failed setup consumed its token")
	}
	res2 := must(s.CompleteSetup(ctx, "tok2", now, store.User{Username: "second"}, "admins"))(t)
	if res2.Group.ID != res.Group.ID {
		t.Fatal("setup created a second admin group instead of reusing it")
	}
}

func testSettings(t *testing.T, s store.Store) {
	ctx := context.Background()
	if v := must(s.EnsureSetting(ctx, "secret", "first"))(t); v != "first" {
		t.Fatalf("ensure = %q", v)
	}
	if v := must(s.EnsureSetting(ctx, "secret", "second"))(t); v != "first" {
		t.Fatalf("ensure overwrote: %q", v)
	}
	if v, err := s.Setting(ctx, "secret"); err != nil || v != "first" {
		t.Fatalf("setting = %q %v", v, err)
	}
	noErr(t, s.DeleteSetting(ctx, "secret"))
	if _, err := s.Setting(ctx, "secret"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a deleted setting: %v, want ErrNotFound", err)
	}
	noErr(t, s.DeleteSetting(ctx, "never there"))
}

func testEventsAndChanges(t *testing.T, s store.Store) {
	ctx := context.Background()
	for i := range 5 {
		noErr(t, s.AppendEvent(ctx, store.Event{Kind: "test", Actor: "cli", Target: fmt.Sprint(i)}))
	}
	evs := must(s.ListEvents(ctx, 3))(t)
	if len(evs) != 3 || evs[0].Target != "4" || evs[0].At.IsZero() {
		t.Fatalf("events: %+v", evs)
	}
	if n := must(s.PruneEvents(ctx, 2))(t); n != 3 {
		t.Fatalf("pruned %d events, want 3", n)
	}
	if evs := must(s.ListEvents(ctx, 10))(t); len(evs) != 2 || evs[1].Target != "3" {
		t.Fatalf("events after prune: %+v", evs)
	}
	// A host's events: the host itself, or host and path; not a longer host, and "_"
	// is no wildcard.
	for _, target := range []string{"a_b.example.com/x", "a_b.example.com", "a_b.example.com.evil/x", "axb.example.com/x", "a_b.example.comx"} {
		noErr(t, s.AppendEvent(ctx, store.Event{Kind: "access.denied", Target: target}))
	}
	var hosts []string
	for _, e := range must(s.FindEvents(ctx, store.EventQuery{Host: "a_b.example.com", Limit: 10}))(t) {
		hosts = append(hosts, e.Target)
	}
	if strings.Join(hosts, " ") != "a_b.example.com a_b.example.com/x" {
		t.Fatalf("events about a_b.example.com: %q", hosts)
	}

	if id := must(s.LatestChangeID(ctx))(t); id != 0 {
		t.Fatalf("empty feed latest = %d", id)
	}
	noErr(t, s.AppendChange(ctx, store.ChangeUser, "u1"))
	noErr(t, s.AppendChange(ctx, store.ChangeSession, "h1"))
	first := must(s.ChangesSince(ctx, 0))(t)
	if len(first) != 2 || first[0].Kind != store.ChangeUser || first[1].Subject != "h1" || first[0].ID >= first[1].ID {
		t.Fatalf("changes: %+v", first)
	}
	if rest := must(s.ChangesSince(ctx, first[0].ID))(t); len(rest) != 1 || rest[0].ID != first[1].ID {
		t.Fatalf("changes since: %+v", rest)
	}
	if id := must(s.LatestChangeID(ctx))(t); id != first[1].ID {
		t.Fatalf("latest = %d, want %d", id, first[1].ID)
	}
	if n := must(s.PruneChanges(ctx, time.Now().Add(time.Second)))(t); n != 2 {
		t.Fatalf("pruned %d changes, want 2", n)
	}
}

func testConcurrentCreates(t *testing.T, s store.Store) {
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Go(func() {
			_, errs[i] = s.CreateUser(ctx, store.User{Username: "racer"})
		})
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, store.ErrConflict):
			t.Errorf("concurrent create: %v", err)
		}
	}
	if ok != 1 {
		t.Fatalf("%d concurrent creates of one username succeeded, want exactly 1", ok)
	}
	before := s.QueryCount()
	_, _ = s.ListUsers(ctx)
	if s.QueryCount() == before {
		t.Fatal("QueryCount did not count a query")
	}
}

func testLeases(t *testing.T, s store.Store) {
	ctx := context.Background()
	take := func(holder string, ttl time.Duration) bool {
		t.Helper()
		return must(s.TakeLease(ctx, "housekeeping", holder, ttl))(t)
	}
	if !take("a", time.Hour) {
		t.Fatal("a free lease was refused")
	}
	if take("b", time.Hour) {
		t.Fatal("a held lease was granted to another holder")
	}
	if !take("a", time.Hour) {
		t.Fatal("the holder could not renew")
	}
	if !must(s.TakeLease(ctx, "other-job", "b", time.Hour))(t) {
		t.Fatal("leases of different names interfere")
	}
	take("a", -time.Second) // renew into the past: expired
	if !take("b", time.Hour) {
		t.Fatal("an expired lease was not taken over")
	}
	noErr(t, s.ReleaseLease(ctx, "housekeeping", "a")) // not a's any more: no effect
	if take("a", time.Hour) {
		t.Fatal("releasing by a non-holder freed the lease")
	}
	noErr(t, s.ReleaseLease(ctx, "housekeeping", "b"))
	if !take("a", time.Hour) {
		t.Fatal("a released lease was not free")
	}

	// Racing replicas: exactly one wins a free lease.
	var wg sync.WaitGroup
	var won atomic.Int32
	for i := range 8 {
		wg.Go(func() {
			if ok, err := s.TakeLease(ctx, "race", fmt.Sprint("r", i), time.Hour); err == nil && ok {
				won.Add(1)
			}
		})
	}
	wg.Wait()
	if won.Load() != 1 {
		t.Fatalf("%d replicas won one lease", won.Load())
	}
}

// Replicas that start together migrate the same database at once: exactly one applies
// each migration and none fails.
func testConcurrentMigrations(t *testing.T, s store.Store) {
	ctx := context.Background()
	var wg sync.WaitGroup
	results := make([][]int, 6)
	errs := make([]error, 6)
	for i := range results {
		wg.Go(func() { results[i], errs[i] = s.Migrate(ctx) })
	}
	wg.Wait()
	total := 0
	for i, err := range errs {
		if err != nil {
			t.Fatalf("concurrent migrate %d: %v", i, err)
		}
		total += len(results[i])
	}
	if _, binary, _ := s.SchemaVersion(ctx); total != binary {
		t.Fatalf("concurrent migrations applied %d steps in all, want %d (each once)", total, binary)
	}
}

func testSecondFactors(t *testing.T, s store.Store) {
	ctx := context.Background()
	u := must(s.CreateUser(ctx, store.User{Username: "mfa"}))(t)
	_, _, err := s.TOTP(ctx, u.ID)
	wantErr(t, err, store.ErrNotFound)
	noErr(t, s.SetTOTP(ctx, u.ID, "SECRET1"))
	if !must(s.UseTOTPStep(ctx, u.ID, 100))(t) {
		t.Fatal("a fresh step was refused")
	}
	if must(s.UseTOTPStep(ctx, u.ID, 100))(t) || must(s.UseTOTPStep(ctx, u.ID, 99))(t) {
		t.Fatal("a used or older step was accepted again")
	}
	if all, err := s.TOTPSecrets(ctx); err != nil || all[u.ID] != "SECRET1" {
		t.Fatalf("TOTP secrets = %v %v", all, err)
	}
	if ok, err := s.ReplaceTOTPSecret(ctx, u.ID, "NOT THE STORED ONE", "X"); err != nil || ok {
		t.Fatalf("a stale replacement was applied: %v %v", ok, err)
	}
	if ok, err := s.ReplaceTOTPSecret(ctx, u.ID, "SECRET1", "SEALED1"); err != nil || !ok {
		t.Fatalf("replacement: %v %v", ok, err)
	}
	if secret, _, _ := s.TOTP(ctx, u.ID); secret != "SEALED1" {
		t.Fatalf("after replacement: %q", secret)
	}
	noErr(t, s.SetTOTP(ctx, u.ID, "SECRET2")) // re-enrolment resets the step
	if secret, last, err := s.TOTP(ctx, u.ID); err != nil || secret != "SECRET2" || last != 0 {
		t.Fatalf("after re-enrolment: %q %d %v", secret, last, err)
	}

	// Racing replicas: one code, one acceptance.
	var wg sync.WaitGroup
	var won atomic.Int32
	for range 6 {
		wg.Go(func() {
			if ok, err := s.UseTOTPStep(ctx, u.ID, 500); err == nil && ok {
				won.Add(1)
			}
		})
	}
	wg.Wait()
	if won.Load() != 1 {
		t.Fatalf("one TOTP step was accepted %d times", won.Load())
	}
	noErr(t, s.DeleteTOTP(ctx, u.ID))
	_, _, err = s.TOTP(ctx, u.ID)
	wantErr(t, err, store.ErrNotFound)

	noErr(t, s.SetRecoveryCodes(ctx, u.ID, []string{"h1", "h2", "h3"}))
	if !must(s.UseRecoveryCode(ctx, u.ID, "h2"))(t) || must(s.UseRecoveryCode(ctx, u.ID, "h2"))(t) {
		t.Fatal("a recovery code was not single-use")
	}
	if must(s.UseRecoveryCode(ctx, u.ID, "nope"))(t) {
		t.Fatal("an unknown recovery code was accepted")
	}
	if n := must(s.UnusedRecoveryCodes(ctx, u.ID))(t); n != 2 {
		t.Fatalf("unused codes = %d, want 2", n)
	}
	noErr(t, s.SetRecoveryCodes(ctx, u.ID, []string{"h4"}))
	if n := must(s.UnusedRecoveryCodes(ctx, u.ID))(t); n != 1 || must(s.UseRecoveryCode(ctx, u.ID, "h1"))(t) {
		t.Fatal("regenerating did not replace the old codes")
	}
	noErr(t, s.DeleteUser(ctx, u.ID)) // cascades
}

func testPasskeys(t *testing.T, s store.Store) {
	ctx := context.Background()
	u := must(s.CreateUser(ctx, store.User{Username: "keys"}))(t)
	other := must(s.CreateUser(ctx, store.User{Username: "other"}))(t)
	a := must(s.AddPasskey(ctx, store.Passkey{UserID: u.ID, CredentialID: "cred-a", Name: "Laptop", Data: `{"n":1}`}))(t)
	b := must(s.AddPasskey(ctx, store.Passkey{UserID: u.ID, CredentialID: "cred-b", Name: "Phone", Data: `{}`}))(t)
	_, err := s.AddPasskey(ctx, store.Passkey{UserID: other.ID, CredentialID: "cred-a", Name: "Stolen", Data: `{}`})
	wantErr(t, err, store.ErrConflict)

	list := must(s.Passkeys(ctx, u.ID))(t)
	if len(list) != 2 || list[0].ID != a.ID || list[1].Name != "Phone" || !list[0].LastUsedAt.IsZero() {
		t.Fatalf("passkeys: %+v", list)
	}
	at := time.Now().UTC().Truncate(time.Second)
	noErr(t, s.UsePasskey(ctx, a.ID, `{"n":2}`, at))
	got := must(s.PasskeyByCredentialID(ctx, "cred-a"))(t)
	if got.UserID != u.ID || got.Data != `{"n":2}` || !got.LastUsedAt.Equal(at) {
		t.Fatalf("after use: %+v", got)
	}
	_, err = s.PasskeyByCredentialID(ctx, "cred-unknown")
	wantErr(t, err, store.ErrNotFound)

	// Only the owner renames or removes.
	wantErr(t, s.RenamePasskey(ctx, other.ID, a.ID, "Mine now"), store.ErrNotFound)
	wantErr(t, s.DeletePasskey(ctx, other.ID, b.ID), store.ErrNotFound)
	noErr(t, s.RenamePasskey(ctx, u.ID, a.ID, "Work laptop"))
	noErr(t, s.DeletePasskey(ctx, u.ID, b.ID))
	if list := must(s.Passkeys(ctx, u.ID))(t); len(list) != 1 || list[0].Name != "Work laptop" {
		t.Fatalf("after rename and delete: %+v", list)
	}
	noErr(t, s.DeleteUser(ctx, u.ID)) // cascades
	_, err = s.PasskeyByCredentialID(ctx, "cred-a")
	wantErr(t, err, store.ErrNotFound)

	// A challenge is answered once, even by racing replicas; expired ones are swept.
	var wg sync.WaitGroup
	var won atomic.Int32
	for range 6 {
		wg.Go(func() {
			if ok, err := s.SpendChallenge(ctx, "challenge-1", time.Now().Add(time.Minute)); err == nil && ok {
				won.Add(1)
			}
		})
	}
	wg.Wait()
	if won.Load() != 1 {
		t.Fatalf("one challenge was spent %d times", won.Load())
	}
	must(s.SpendChallenge(ctx, "challenge-old", time.Now().Add(-time.Second)))(t)
	if n := must(s.DeleteSpentChallenges(ctx, time.Now()))(t); n != 1 {
		t.Fatalf("swept %d spent challenges, want 1", n)
	}
}

func testOIDC(t *testing.T, s store.Store) {
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Millisecond)
	noErr(t, s.AddOIDCKey(ctx, store.OIDCKey{ID: "k1", Algorithm: "RS256", PrivateKey: "sealed-1", CreatedAt: now.Add(-time.Hour)}))
	noErr(t, s.AddOIDCKey(ctx, store.OIDCKey{ID: "k2", Algorithm: "ES256", PrivateKey: "sealed-2", CreatedAt: now}))
	keys := must(s.OIDCKeys(ctx))(t)
	if len(keys) != 2 || keys[0].ID != "k2" || keys[1].PrivateKey != "sealed-1" || !keys[0].CreatedAt.Equal(now) {
		t.Fatalf("keys, newest first: %+v", keys)
	}
	noErr(t, s.DeleteOIDCKey(ctx, "k1"))
	wantErr(t, s.DeleteOIDCKey(ctx, "k1"), store.ErrNotFound)

	u := must(s.CreateUser(ctx, store.User{Username: "oidc"}))(t)
	code := store.OIDCToken{Hash: "code-1", Kind: "code", ClientID: "grafana", UserID: u.ID, Family: "f1", Scope: "openid", Data: `{"nonce":"n"}`, ExpiresAt: now.Add(time.Minute)}
	noErr(t, s.AddOIDCToken(ctx, code))
	noErr(t, s.AddOIDCToken(ctx, store.OIDCToken{Hash: "access-1", Kind: "access", ClientID: "grafana", UserID: u.ID, Family: "f1", ExpiresAt: now.Add(time.Hour)}))
	noErr(t, s.AddOIDCToken(ctx, store.OIDCToken{Hash: "access-2", Kind: "access", ClientID: "grafana", UserID: u.ID, Family: "f2", ExpiresAt: now.Add(time.Hour)}))
	got := must(s.OIDCToken(ctx, "code-1"))(t)
	if got.Data != `{"nonce":"n"}` || got.Family != "f1" || !got.ExpiresAt.Equal(now.Add(time.Minute)) || !got.UsedAt.IsZero() {
		t.Fatalf("code: %+v", got)
	}

	// A code is redeemed once, even by racing replicas; never after it expired.
	var wg sync.WaitGroup
	var won atomic.Int32
	for range 6 {
		wg.Go(func() {
			if ok, err := s.UseOIDCToken(ctx, "code-1", time.Now()); err == nil && ok {
				won.Add(1)
			}
		})
	}
	wg.Wait()
	if won.Load() != 1 {
		t.Fatalf("one code was redeemed %d times", won.Load())
	}
	noErr(t, s.AddOIDCToken(ctx, store.OIDCToken{Hash: "old", Kind: "code", ClientID: "c", Family: "f3", ExpiresAt: now.Add(-time.Second)}))
	if must(s.UseOIDCToken(ctx, "old", time.Now()))(t) {
		t.Fatal("an expired code was redeemed")
	}
	noErr(t, s.AddOIDCToken(ctx, store.OIDCToken{Hash: "device-1", Kind: "device", ClientID: "cli", Family: "f2", ExpiresAt: now.Add(time.Minute)}))
	noErr(t, s.DecideOIDCToken(ctx, "device-1", "someone", `{"decision":"approved"}`))
	if got := must(s.OIDCToken(ctx, "device-1"))(t); got.UserID != "someone" || got.Data != `{"decision":"approved"}` {
		t.Fatalf("after the decision: %+v", got)
	}
	wantErr(t, s.DecideOIDCToken(ctx, "device-1", "other", `{"decision":"denied"}`), store.ErrNotFound)
	wantErr(t, s.DecideOIDCToken(ctx, "missing", "x", "{}"), store.ErrNotFound)

	if n := must(s.RevokeOIDCFamily(ctx, "f1"))(t); n != 2 {
		t.Fatalf("revoking a grant deleted %d tokens, want 2", n)
	}
	_, err := s.OIDCToken(ctx, "access-1")
	wantErr(t, err, store.ErrNotFound)
	if n := must(s.DeleteExpiredOIDCTokens(ctx, time.Now()))(t); n != 1 {
		t.Fatalf("swept %d expired tokens, want 1", n)
	}
	noErr(t, s.DeleteOIDCToken(ctx, "access-2"))
	noErr(t, s.DeleteOIDCToken(ctx, "access-2"))

	// Every token of one user goes at once; other users' and clients' stay.
	noErr(t, s.AddOIDCToken(ctx, store.OIDCToken{Hash: "refresh-u", Kind: "refresh", ClientID: "grafana", UserID: u.ID, Family: "f4", ExpiresAt: now.Add(time.Hour)}))
	noErr(t, s.AddOIDCToken(ctx, store.OIDCToken{Hash: "access-u", Kind: "access", ClientID: "vault", UserID: u.ID, Family: "f5", ExpiresAt: now.Add(time.Hour)}))
	noErr(t, s.AddOIDCToken(ctx, store.OIDCToken{Hash: "access-robot", Kind: "access", ClientID: "robot", Family: "f6", ExpiresAt: now.Add(time.Hour)}))
	if n := must(s.RevokeUserOIDCTokens(ctx, u.ID))(t); n != 2 {
		t.Fatalf("revoking the user's grants deleted %d tokens, want 2", n)
	}
	if n := must(s.RevokeUserOIDCTokens(ctx, ""))(t); n != 0 {
		t.Fatalf("revoking the tokens of no user deleted %d", n)
	}
	must(s.OIDCToken(ctx, "access-robot"))(t)

	_, err = s.OIDCConsent(ctx, u.ID, "grafana")
	wantErr(t, err, store.ErrNotFound)
	noErr(t, s.SetOIDCConsent(ctx, u.ID, "grafana", "openid"))
	noErr(t, s.SetOIDCConsent(ctx, u.ID, "grafana", "openid email"))
	if sc := must(s.OIDCConsent(ctx, u.ID, "grafana"))(t); sc != "openid email" {
		t.Fatalf("consent: %q", sc)
	}
	noErr(t, s.DeleteUser(ctx, u.ID))
	_, err = s.OIDCConsent(ctx, u.ID, "grafana")
	wantErr(t, err, store.ErrNotFound)
}

// The throttle counts every failure exactly once, even from concurrent replicas, keeps
// windows apart, and is bounded by the sweep.
func testThrottle(t *testing.T, s store.Store) {
	ctx := context.Background()
	t0 := time.Now().Truncate(time.Second)
	window := 15 * time.Minute
	fail := func(at time.Time, keys ...string) {
		t.Helper()
		if err := s.ThrottleFail(ctx, keys, at, at.Add(-window)); err != nil {
			t.Fatal(err)
		}
	}
	fail(t0, "password|user:alice", "password|net:192.0.2.1")
	fail(t0.Add(time.Minute), "password|user:alice")
	got, err := s.ThrottleBuckets(ctx, []string{"password|user:alice", "password|net:192.0.2.1", "password|user:nobody"}, t0.Add(time.Minute).Add(-window))
	if err != nil {
		t.Fatal(err)
	}
	if got["password|user:alice"].Failures != 2 || !got["password|user:alice"].WindowStart.Equal(t0) || got["password|net:192.0.2.1"].Failures != 1 || len(got) != 2 {
		t.Fatalf("buckets = %+v, want alice 2 since %v and one for the address", got, t0)
	}
	// A failure after the window starts a new one.
	later := t0.Add(window + time.Second)
	fail(later, "password|user:alice")
	got, _ = s.ThrottleBuckets(ctx, []string{"password|user:alice", "password|net:192.0.2.1"}, later.Add(-window))
	if got["password|user:alice"].Failures != 1 || !got["password|user:alice"].WindowStart.Equal(later) {
		t.Fatalf("after the window: %+v, want a new window with one failure", got)
	}
	if _, ok := got["password|net:192.0.2.1"]; ok {
		t.Fatalf("a bucket from an ended window is still counted: %+v", got)
	}
	if err := s.ThrottleClear(ctx, []string{"password|user:alice"}); err != nil {
		t.Fatal(err)
	}
	if got, _ = s.ThrottleBuckets(ctx, []string{"password|user:alice"}, later.Add(-window)); len(got) != 0 {
		t.Fatalf("cleared bucket still there: %+v", got)
	}
	if n, err := s.DeleteExpiredThrottle(ctx, later.Add(-window)); err != nil || n != 1 {
		t.Fatalf("sweep removed %d (%v), want the one ended bucket", n, err)
	}

	// Twenty replicas' failures at once count twenty, in any key order.
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			keys := []string{"device|net:198.51.100.0/64", "device|user:bob"}
			if i%2 == 1 {
				keys = []string{keys[1], keys[0]}
			}
			errs <- s.ThrottleFail(ctx, keys, later, later.Add(-window))
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("concurrent failure: %v", err)
		}
	}
	got, _ = s.ThrottleBuckets(ctx, []string{"device|net:198.51.100.0/64", "device|user:bob"}, later.Add(-window))
	if got["device|net:198.51.100.0/64"].Failures != 20 || got["device|user:bob"].Failures != 20 {
		t.Fatalf("concurrent failures counted %+v, want 20 each", got)
	}
}

// Replicas write last-seen batches over the same sessions at once without deadlocking
// each other (PostgreSQL's 40P01 when two transactions lock rows in opposite orders).
func testConcurrentTouches(t *testing.T, s store.Store) {
	ctx := context.Background()
	u := must(s.CreateUser(ctx, store.User{Username: "toucher"}))(t)
	seen := map[string]time.Time{}
	for i := range 30 {
		h := fmt.Sprintf("touch-%02d", i)
		noErr(t, s.CreateSession(ctx, newSession(u.ID, h, time.Hour)))
		seen[h] = time.Now()
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8*20)
	for w := range 8 {
		wg.Go(func() {
			for i := range 20 {
				batch := map[string]time.Time{}
				for h := range seen {
					batch[h] = time.Now().Add(time.Duration(w*100+i) * time.Millisecond)
				}
				errs <- s.TouchSessions(ctx, batch)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("concurrent last-seen batches: %v", err)
		}
	}
}

// testOIDCLogouts: a back-channel logout is due only once no unexpired session carries
// its sid (a successor session with the same sid keeps it waiting), is claimed by one
// caller at a time even when many race, and comes back after its backoff.
func testOIDCLogouts(t *testing.T, s store.Store) {
	ctx := context.Background()
	u := must(s.CreateUser(ctx, store.User{Username: "lou"}))(t)
	first := newSession(u.ID, "l1", time.Hour)
	noErr(t, s.CreateSession(ctx, first))
	noErr(t, s.AddOIDCLogout(ctx, store.OIDCLogout{SID: first.ID, ClientID: "grafana", UserID: u.ID}))
	noErr(t, s.AddOIDCLogout(ctx, store.OIDCLogout{SID: first.ID, ClientID: "grafana", UserID: u.ID})) // once
	noErr(t, s.AddOIDCLogout(ctx, store.OIDCLogout{SID: first.ID, ClientID: "forgejo", UserID: u.ID}))
	claim := func(at time.Time) []store.OIDCLogout {
		return must(s.ClaimOIDCLogouts(ctx, at, time.Minute, 10))(t)
	}
	now := time.Now()
	if got := claim(now); len(got) != 0 {
		t.Fatalf("claimed while the sign-in lasts: %+v", got)
	}
	// A step-up: the successor keeps the sid, the first session goes.
	next := newSession(u.ID, "l2", time.Hour)
	next.SID = first.ID
	noErr(t, s.CreateSession(ctx, next))
	noErr(t, s.DeleteSession(ctx, first.ID))
	if got := must(s.SessionsBySID(ctx, first.ID))(t); len(got) != 1 || got[0].TokenHash != "l2" {
		t.Fatalf("sessions by sid: %+v", got)
	}
	if got := claim(now); len(got) != 0 {
		t.Fatalf("claimed while a successor session lasts: %+v", got)
	}
	noErr(t, s.DeleteSession(ctx, next.ID))

	var mu sync.Mutex
	var claimed []store.OIDCLogout
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			got, err := s.ClaimOIDCLogouts(ctx, now, time.Minute, 10)
			if err != nil {
				t.Error(err)
			}
			mu.Lock()
			claimed = append(claimed, got...)
			mu.Unlock()
		})
	}
	wg.Wait()
	if len(claimed) != 2 {
		t.Fatalf("8 racing claims took %d logouts, want the 2 owed, once each: %+v", len(claimed), claimed)
	}
	for _, l := range claimed {
		if l.SID != first.ID || l.UserID != u.ID || l.Attempts != 1 {
			t.Fatalf("claimed %+v", l)
		}
	}
	if got := claim(now.Add(59 * time.Second)); len(got) != 0 {
		t.Fatalf("claimed again within the backoff: %+v", got)
	}
	noErr(t, s.DeleteOIDCLogout(ctx, first.ID, "grafana"))
	again := claim(now.Add(time.Minute))
	if len(again) != 1 || again[0].ClientID != "forgejo" || again[0].Attempts != 2 {
		t.Fatalf("after the backoff: %+v", again)
	}
	if got := claim(now.Add(2*time.Minute + 59*time.Second)); len(got) != 0 {
		t.Fatalf("the second backoff is longer: %+v", got)
	}
}

// testTransactions: InTx commits everything fn wrote or nothing, a nested InTx joins
// the outer transaction, and LockDirectory works only inside one.
func testTransactions(t *testing.T, s store.Store) {
	ctx := context.Background()
	boom := errors.New("boom")
	err := s.InTx(ctx, func(tx store.Store) error {
		if _, err := tx.CreateUser(ctx, store.User{Username: "gone"}); err != nil {
			return err
		}
		if err := tx.LockDirectory(ctx); err != nil {
			return err
		}
		// A nested InTx is the same transaction: its write goes with the outer one.
		if err := tx.InTx(ctx, func(inner store.Store) error { return inner.AppendChange(ctx, store.ChangeAll, "") }); err != nil {
			return err
		}
		if _, err := tx.UserByUsername(ctx, "gone"); err != nil { // reads see the transaction's writes
			return err
		}
		return boom
	})
	wantErr(t, err, boom)
	_, err = s.UserByUsername(ctx, "gone")
	wantErr(t, err, store.ErrNotFound)
	if id := must(s.LatestChangeID(ctx))(t); id != 0 {
		t.Fatalf("a rolled-back change-feed row is visible: %d", id)
	}
	noErr(t, s.InTx(ctx, func(tx store.Store) error {
		_, err := tx.CreateUser(ctx, store.User{Username: "kept"})
		return err
	}))
	must(s.UserByUsername(ctx, "kept"))(t)
	if err := s.LockDirectory(ctx); err == nil {
		t.Fatal("LockDirectory outside InTx must fail")
	}
}

// The events table is the JSON log's outbox: an event is claimed once, with its data,
// by whichever of several concurrent claimers gets it, and never twice.
func testEventOutbox(t *testing.T, s store.Store) {
	ctx := context.Background()
	noErr(t, s.AppendEvent(ctx, store.Event{Kind: "group.member_added", Actor: "cli", Target: "alice", TargetID: "u1",
		Fields: map[string]string{"group": "Family"}}))
	got := must(s.ClaimUnloggedEvents(ctx, time.Now(), 10))(t)
	if len(got) != 1 || got[0].TargetID != "u1" || got[0].Fields["group"] != "Family" || got[0].ID == 0 {
		t.Fatalf("claimed %+v", got)
	}
	if again := must(s.ClaimUnloggedEvents(ctx, time.Now(), 10))(t); len(again) != 0 {
		t.Fatalf("claimed a logged event again: %+v", again)
	}
	const n = 200
	for i := range n {
		noErr(t, s.AppendEvent(ctx, store.Event{Kind: "test", Target: fmt.Sprint(i)}))
	}
	claimedOnce(t, n, func() ([]store.Event, error) {
		batch, err := s.ClaimUnloggedEvents(ctx, time.Now(), 7)
		for i := 1; i < len(batch); i++ {
			if batch[i-1].ID >= batch[i].ID {
				t.Errorf("a batch out of order: %d before %d", batch[i-1].ID, batch[i].ID)
			}
		}
		return batch, err
	}, func(e store.Event) int64 { return e.ID })
	if evs := must(s.ListEvents(ctx, 1))(t); evs[0].Fields != nil || evs[0].Kind != "test" {
		t.Fatalf("an event without fields reads back as %+v", evs[0])
	}
}

// App passwords are found by hash, listed by owner, deleted by exact id and owner only,
// and a name is unique per person, not across people.
func testAppPasswords(t *testing.T, s store.Store) {
	ctx := context.Background()
	alice := must(s.CreateUser(ctx, store.User{Username: "alice"}))(t)
	bob := must(s.CreateUser(ctx, store.User{Username: "bob"}))(t)
	p := must(s.CreateAppPassword(ctx, store.AppPassword{UserID: alice.ID, Name: "phone", Hash: "h1", Hosts: "dav.example.com"}))(t)
	must(s.CreateAppPassword(ctx, store.AppPassword{UserID: bob.ID, Name: "phone", Hash: "h2", Hosts: "dav.example.com"}))(t)
	_, err := s.CreateAppPassword(ctx, store.AppPassword{UserID: alice.ID, Name: "phone", Hash: "h3", Hosts: "x.example.com"})
	wantErr(t, err, store.ErrConflict)
	if got := must(s.AppPasswordByHash(ctx, "h1"))(t); got.ID != p.ID || got.Hosts != "dav.example.com" || got.UserID != alice.ID {
		t.Fatalf("by hash: %+v", got)
	}
	_, err = s.DeleteAppPassword(ctx, bob.ID, p.ID)
	wantErr(t, err, store.ErrNotFound)
	used := time.Now().UTC().Truncate(time.Microsecond)
	noErr(t, s.TouchAppPasswords(ctx, map[string]time.Time{"h1": used}))
	if got := must(s.AppPasswords(ctx, alice.ID))(t); len(got) != 1 || !got[0].LastUsedAt.Equal(used) {
		t.Fatalf("alice's app passwords: %+v", got)
	}
	if gone := must(s.DeleteAppPassword(ctx, alice.ID, p.ID))(t); gone.Hash != "h1" {
		t.Fatalf("deleted %+v", gone)
	}
	_, err = s.AppPasswordByHash(ctx, "h1")
	wantErr(t, err, store.ErrNotFound)
	noErr(t, s.DeleteUser(ctx, bob.ID))
	_, err = s.AppPasswordByHash(ctx, "h2")
	wantErr(t, err, store.ErrNotFound)
}

// A sign-in link is found while unexpired, used once (of two uses at once, one wins),
// and goes with its user.
func testSignInLinks(t *testing.T, s store.Store) {
	ctx := context.Background()
	u := must(s.CreateUser(ctx, store.User{Username: "nopass"}))(t)
	now := time.Now()
	noErr(t, s.CreateSignInLink(ctx, store.SignInLink{TokenHash: "h1", UserID: u.ID, CreatedBy: "admin", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}))
	noErr(t, s.CreateSignInLink(ctx, store.SignInLink{TokenHash: "old", UserID: u.ID, CreatedAt: now, ExpiresAt: now.Add(-time.Second)}))
	if l := must(s.SignInLinkValid(ctx, "h1", now))(t); l.UserID != u.ID || l.CreatedBy != "admin" {
		t.Fatalf("link reads back as %+v", l)
	}
	_, err := s.SignInLinkValid(ctx, "old", now)
	wantErr(t, err, store.ErrNotFound)
	_, err = s.UseSignInLink(ctx, "old", now)
	wantErr(t, err, store.ErrNotFound)
	var wins atomic.Int32
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			if _, err := s.UseSignInLink(ctx, "h1", now); err == nil {
				wins.Add(1)
			} else if !errors.Is(err, store.ErrNotFound) {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("a one-time link was used %d times", wins.Load())
	}
	noErr(t, s.CreateSignInLink(ctx, store.SignInLink{TokenHash: "h2", UserID: u.ID, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}))
	if n := must(s.DeleteSignInLinks(ctx, u.ID, store.LinkSignIn, now))(t); n != 2 {
		t.Fatalf("deleted %d links, want 2 (the expired one and h2)", n)
	}
	noErr(t, s.CreateSignInLink(ctx, store.SignInLink{TokenHash: "h3", UserID: u.ID, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}))
	noErr(t, s.DeleteUser(ctx, u.ID))
	_, err = s.SignInLinkValid(ctx, "h3", now)
	wantErr(t, err, store.ErrNotFound)
}

// Webhooks read the outbox like the log does: each event is routed once, with its
// deliveries in the same transaction; a delivery is claimed by one caller until its
// next attempt is due, and its outcome is kept for the delivery log.
func testWebhookOutbox(t *testing.T, s store.Store) {
	ctx := context.Background()
	const n = 60
	for i := range n {
		noErr(t, s.AppendEvent(ctx, store.Event{Kind: "user.created", Target: fmt.Sprint(i)}))
	}
	route := func(e store.Event) []store.WebhookDelivery {
		if e.Target == "7" {
			return nil // no webhook wants it
		}
		return []store.WebhookDelivery{{Webhook: "a", Body: `{"n":"` + e.Target + `"}`}, {Webhook: "b", Body: "{}"}}
	}
	var routed atomic.Int32
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			for {
				k, err := s.QueueWebhooks(ctx, time.Now(), 7, route)
				if err != nil {
					t.Error(err)
					return
				}
				if k == 0 {
					return
				}
				routed.Add(int32(k))
			}
		})
	}
	wg.Wait()
	if routed.Load() != n {
		t.Fatalf("three routers claimed %d of %d events", routed.Load(), n)
	}
	if k := must(s.QueueWebhooks(ctx, time.Now(), 10, route))(t); k != 0 {
		t.Fatalf("routed %d events twice", k)
	}
	// A route whose rows cannot be stored leaves the event for the next try.
	noErr(t, s.AppendEvent(ctx, store.Event{Kind: "user.deleted", Target: "x"}))
	twice := func(store.Event) []store.WebhookDelivery {
		return []store.WebhookDelivery{{Webhook: "a"}, {Webhook: "a"}}
	}
	if _, err := s.QueueWebhooks(ctx, time.Now(), 10, twice); err == nil {
		t.Fatal("two deliveries of one event to one webhook were stored")
	}
	if k := must(s.QueueWebhooks(ctx, time.Now(), 10, route))(t); k != 1 {
		t.Fatalf("after a failed route the event was not routed again (%d)", k)
	}
	want := 2*(n-1) + 2
	now := time.Now()
	claimedOnce(t, want, func() ([]store.WebhookDelivery, error) {
		batch, err := s.ClaimWebhookDeliveries(ctx, now, now.Add(time.Minute), 9)
		for _, d := range batch {
			if d.Attempts != 1 || d.State != store.WebhookPending || d.EventID == 0 || d.EventKind == "" {
				t.Errorf("claimed %+v", d)
			}
		}
		return batch, err
	}, func(d store.WebhookDelivery) int64 { return d.ID })
	if again := must(s.ClaimWebhookDeliveries(ctx, now.Add(30*time.Second), now.Add(2*time.Minute), 100))(t); len(again) != 0 {
		t.Fatalf("claimed %d deliveries before their next attempt", len(again))
	}
	list := must(s.WebhookDeliveries(ctx, "a", 0, 5))(t)
	if len(list) != 5 || list[0].ID < list[1].ID || list[0].Webhook != "a" {
		t.Fatalf("newest deliveries of a: %+v", list)
	}
	older := must(s.WebhookDeliveries(ctx, "", list[4].ID, 1000))(t)
	if len(older) != want-1-indexOfID(t, s, list[4].ID) {
		t.Fatalf("%d deliveries below %d", len(older), list[4].ID)
	}
	d := list[0]
	d.State, d.FinishedAt, d.LastStatus, d.LastError = store.WebhookDelivered, now, 204, ""
	noErr(t, s.FinishWebhookAttempt(ctx, d))
	f := list[1]
	f.State, f.NextAt, f.LastStatus, f.LastError = store.WebhookPending, now.Add(-time.Second), 503, "HTTP 503"
	noErr(t, s.FinishWebhookAttempt(ctx, f))
	retry := must(s.ClaimWebhookDeliveries(ctx, now, now.Add(time.Minute), 100))(t)
	if len(retry) != 1 || retry[0].ID != f.ID || retry[0].Attempts != 2 || retry[0].LastStatus != 503 {
		t.Fatalf("the retry due is %+v", retry)
	}
	if got := must(s.WebhookDeliveries(ctx, "a", d.ID+1, 1))(t); got[0].ID != d.ID || got[0].State != store.WebhookDelivered || got[0].LastStatus != 204 {
		t.Fatalf("the delivered one reads back as %+v", got[0])
	}
	if k := must(s.PruneWebhookDeliveries(ctx, now.Add(time.Second)))(t); k != 1 {
		t.Fatalf("pruned %d finished deliveries, want 1", k)
	}
}

// indexOfID is the position of the delivery with id in the newest-first list.
func indexOfID(t *testing.T, s store.Store, id int64) int {
	all := must(s.WebhookDeliveries(context.Background(), "", 0, 10000))(t)
	return slices.IndexFunc(all, func(d store.WebhookDelivery) bool { return d.ID == id })
}

// claimedOnce runs claim from four goroutines until it returns nothing, and fails the
// test unless the n items were claimed exactly once each.
func claimedOnce[T any](t *testing.T, n int, claim func() ([]T, error), id func(T) int64) {
	t.Helper()
	var mu sync.Mutex
	seen := map[int64]int{}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				batch, err := claim()
				if err != nil {
					t.Error(err)
					return
				}
				if len(batch) == 0 {
					return
				}
				mu.Lock()
				for _, item := range batch {
					seen[id(item)]++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(seen) != n {
		t.Fatalf("four claimers got %d of %d", len(seen), n)
	}
	for id, times := range seen {
		if times != 1 {
			t.Fatalf("%d claimed %d times", id, times)
		}
	}
}

// An invitation is used up to its uses, never past them even when raced, and not
// once expired; it reads back whole, and is deleted by exact id.
func testInvitations(t *testing.T, s store.Store) {
	ctx := context.Background()
	now := time.Now()
	inv := must(s.CreateInvitation(ctx, store.Invitation{CodeHash: "c1", GroupIDs: []string{"g1", "g2"}, MaxUses: 3, Domain: "example.com", Note: "cousins", CreatedBy: "root", ExpiresAt: now.Add(time.Hour)}))(t)
	if got := must(s.InvitationByCode(ctx, "c1"))(t); got.ID != inv.ID || strings.Join(got.GroupIDs, ",") != "g1,g2" || got.MaxUses != 3 || got.Domain != "example.com" || got.Note != "cousins" {
		t.Fatalf("invitation reads back as %+v", got)
	}
	var wins atomic.Int32
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if _, err := s.UseInvitation(ctx, "c1", now); err == nil {
				wins.Add(1)
			} else if !errors.Is(err, store.ErrNotFound) {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if wins.Load() != 3 {
		t.Fatalf("an invitation for 3 was used %d times", wins.Load())
	}
	if got := must(s.InvitationByCode(ctx, "c1"))(t); got.Uses != 3 {
		t.Fatalf("uses %d, want 3", got.Uses)
	}
	must(s.CreateInvitation(ctx, store.Invitation{CodeHash: "old", MaxUses: 1, ExpiresAt: now.Add(-time.Second)}))(t)
	_, err := s.UseInvitation(ctx, "old", now)
	wantErr(t, err, store.ErrNotFound)
	if list := must(s.Invitations(ctx))(t); len(list) != 2 {
		t.Fatalf("%d invitations listed", len(list))
	}
	if gone := must(s.DeleteInvitation(ctx, inv.ID))(t); gone.CodeHash != "c1" {
		t.Fatalf("deleted %+v", gone)
	}
	_, err = s.InvitationByCode(ctx, "c1")
	wantErr(t, err, store.ErrNotFound)
	_, err = s.DeleteInvitation(ctx, inv.ID)
	wantErr(t, err, store.ErrNotFound)
}

// An upstream identity links to one account only; a flow is taken once, and not
// once expired.
func testUpstream(t *testing.T, s store.Store) {
	ctx := context.Background()
	a := must(s.CreateUser(ctx, store.User{Username: "ann"}))(t)
	b := must(s.CreateUser(ctx, store.User{Username: "bob"}))(t)
	noErr(t, s.LinkUpstream(ctx, store.UpstreamIdentity{Provider: "google", Subject: "123", UserID: a.ID, Email: "ann@example.com"}))
	wantErr(t, s.LinkUpstream(ctx, store.UpstreamIdentity{Provider: "google", Subject: "123", UserID: b.ID}), store.ErrConflict)
	noErr(t, s.LinkUpstream(ctx, store.UpstreamIdentity{Provider: "github", Subject: "123", UserID: b.ID}))
	if got := must(s.UpstreamIdentity(ctx, "google", "123"))(t); got.UserID != a.ID || got.Email != "ann@example.com" {
		t.Fatalf("google 123 is %+v", got)
	}
	if list := must(s.UpstreamIdentities(ctx, b.ID))(t); len(list) != 1 || list[0].Provider != "github" {
		t.Fatalf("bob's identities: %+v", list)
	}
	wantErr(t, s.UnlinkUpstream(ctx, b.ID, "google", "123"), store.ErrNotFound)
	noErr(t, s.UnlinkUpstream(ctx, a.ID, "google", "123"))
	_, err := s.UpstreamIdentity(ctx, "google", "123")
	wantErr(t, err, store.ErrNotFound)
	noErr(t, s.DeleteUser(ctx, b.ID))
	_, err = s.UpstreamIdentity(ctx, "github", "123")
	wantErr(t, err, store.ErrNotFound)

	now := time.Now()
	noErr(t, s.CreateUpstreamFlow(ctx, store.UpstreamFlow{StateHash: "s1", Provider: "google", Intent: store.UpstreamJoin, Invitation: "ih", Nonce: "n", Verifier: "v", ReturnTo: "/x", ExpiresAt: now.Add(time.Minute)}))
	noErr(t, s.CreateUpstreamFlow(ctx, store.UpstreamFlow{StateHash: "old", Provider: "google", Intent: store.UpstreamSignIn, Nonce: "n", Verifier: "v", ExpiresAt: now.Add(-time.Second)}))
	var wins atomic.Int32
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			if f, err := s.TakeUpstreamFlow(ctx, "s1", now); err == nil && f.Invitation == "ih" && f.Intent == store.UpstreamJoin && f.ReturnTo == "/x" {
				wins.Add(1)
			}
		})
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("a flow was taken %d times", wins.Load())
	}
	_, err = s.TakeUpstreamFlow(ctx, "old", now)
	wantErr(t, err, store.ErrNotFound)
}
