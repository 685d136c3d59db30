package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/gatehouse-id/gatehouse/internal/identity"
	"github.com/gatehouse-id/gatehouse/internal/store"
)

// A person saving their profile while an admin disables them cannot bring the account
// back: a write changes only the fields it was given, never writes back what it read.
func TestProfileSaveCannotUndoADisable(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dbURL string) {
		h := start(t, testConfig(dbURL))
		h.addUser("root", "Home Server Admins")
		carol := h.addUser("carol", "Allow Login Users")
		dir, ctx := h.app.Directory(), context.Background()
		for round := range 100 {
			var wg sync.WaitGroup
			for i := range 4 { // several saves, so one is likely to straddle the disable
				wg.Go(func() {
					if _, err := dir.ChangeOwnProfile(ctx, carol.ID, "carol@example.com", fmt.Sprintf("Carol %d.%d", round, i)); err != nil {
						t.Error(err)
					}
				})
			}
			wg.Go(func() {
				if err := dir.SetDisabled(ctx, "cli", "carol", true); err != nil {
					t.Error(err)
				}
			})
			wg.Wait()
			u, err := h.app.Store.UserByID(ctx, carol.ID)
			if err != nil {
				t.Fatal(err)
			}
			if !u.Disabled {
				t.Fatalf("round %d: the profile save brought back a user an admin disabled", round)
			}
			if err := dir.SetDisabled(ctx, "cli", "carol", false); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// Two admins disabling each other at the same moment: one is refused, so an enabled
// admin always remains. The guard and the change are one transaction under the
// directory lock, so the second change's guard sees the first.
func TestConcurrentChangesCannotRemoveTheLastAdmin(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dbURL string) {
		h := start(t, testConfig(dbURL))
		h.addUser("ann", "Home Server Admins")
		h.addUser("ben", "Home Server Admins")
		dir, ctx := h.app.Directory(), context.Background()
		changes := []func() error{
			func() error { return dir.SetDisabled(ctx, "cli", "ann", true) },
			func() error { return dir.SetDisabled(ctx, "cli", "ben", true) },
			func() error { return dir.RemoveMembers(ctx, "cli", "Home Server Admins", []string{"ben"}) },
			func() error { return dir.DeleteUser(ctx, "cli", "ann") },
		}
		for round := range 20 {
			a, b := changes[round%2], changes[2+round%2]
			if round%4 >= 2 {
				a, b = changes[0], changes[1]
			}
			errs := make([]error, 2)
			var wg sync.WaitGroup
			wg.Go(func() { errs[0] = a() })
			wg.Go(func() { errs[1] = b() })
			wg.Wait()
			admins, err := dir.AdminUserIDs(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(admins) == 0 {
				t.Fatalf("round %d: two concurrent changes left no admin (errors %v)", round, errs)
			}
			refused := 0
			for _, err := range errs {
				switch {
				case errors.Is(err, identity.ErrLockout):
					refused++
				case err != nil:
					t.Fatalf("round %d: %v", round, err)
				}
			}
			if refused != 1 {
				t.Fatalf("round %d: %d of two changes refused, want exactly one", round, refused)
			}
			// Back to two enabled admins for the next round.
			for _, name := range []string{"ann", "ben"} {
				if _, err := dir.User(ctx, name); errors.Is(err, store.ErrNotFound) {
					h.addUser(name, "Home Server Admins")
				}
				if err := dir.SetDisabled(ctx, "cli", name, false); err != nil {
					t.Fatal(err)
				}
			}
			members, _ := h.app.Store.GroupByName(ctx, "Home Server Admins")
			ids, _ := h.app.Store.GroupMemberIDs(ctx, members.ID)
			if len(ids) < 2 {
				if err := dir.AddMembers(ctx, "cli", "Home Server Admins", []string{"ben"}); err != nil {
					t.Fatal(err)
				}
			}
		}
	})
}

// failingFeed is a store whose change feed cannot be written: what happens to a change
// when its invalidation fails.
type failingFeed struct{ store.Store }

var errFeedDown = errors.New("the change feed is down")

func (f failingFeed) AppendChange(context.Context, store.ChangeKind, string) error {
	return errFeedDown
}

func (f failingFeed) InTx(ctx context.Context, fn func(store.Store) error) error {
	return f.Store.InTx(ctx, func(tx store.Store) error { return fn(failingFeed{tx}) })
}

// A change whose change-feed row (or audit event) cannot be written is not made at
// all: otherwise other replicas would keep serving a revoked session or an old group
// set for the cache's trust period.
func TestAChangeAndItsInvalidationCommitTogether(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dbURL string) {
		h := start(t, testConfig(dbURL))
		h.addUser("root", "Home Server Admins")
		h.addUser("dora", "Allow Login Users")
		_, sess := h.login("dora", "correct horse dora", "")
		ctx := context.Background()
		// The events the failed changes would have written (the sign-in's own event is
		// written in the background, whenever it is).
		events := func() int {
			all, err := h.app.Store.ListEvents(ctx, 1000)
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for _, e := range all {
				if e.Target == "dora" && slices.Contains([]string{"user.disabled", "session.revoked", "group.member_removed", "user.deleted"}, e.Kind) {
					n++
				}
			}
			return n
		}
		before := events()
		broken := &identity.Directory{Store: failingFeed{h.app.Store}, Hasher: identity.NewHasher(1), AdminGroups: func() []string { return []string{"Home Server Admins"} }}
		for name, change := range map[string]func() error{
			"disable":         func() error { return broken.SetDisabled(ctx, "cli", "dora", true) },
			"revoke sessions": func() error { _, err := broken.RevokeUserSessions(ctx, "cli", "dora"); return err },
			"remove member":   func() error { return broken.RemoveMembers(ctx, "cli", "Allow Login Users", []string{"dora"}) },
			"delete":          func() error { return broken.DeleteUser(ctx, "cli", "dora") },
		} {
			if err := change(); !errors.Is(err, errFeedDown) {
				t.Fatalf("%s with the feed down: %v", name, err)
			}
		}
		u, err := h.app.Store.UserByUsername(ctx, "dora")
		if err != nil || u.Disabled {
			t.Fatalf("dora after failed changes: %+v %v", u, err)
		}
		if ss, _ := h.app.Store.ListSessions(ctx, u.ID); len(ss) != 1 {
			t.Fatalf("dora's sessions after a failed revocation: %d", len(ss))
		}
		if groups, _ := h.app.Store.UserGroupIDs(ctx, u.ID); len(groups) != 1 {
			t.Fatalf("dora's groups after a failed removal: %v", groups)
		}
		if events() != before {
			t.Fatal("a change that failed left an audit event")
		}
		if resp, _ := h.do(req{path: "/api/authz/forward-auth", header: traefik("https://app.example.com/"), cookies: []*http.Cookie{sess}}); resp.StatusCode != http.StatusOK {
			t.Fatalf("dora's session after failed changes: %d", resp.StatusCode)
		}
	})
}

// Every committed directory event reaches the JSON log through the events table (the
// outbox): once across replicas, with its target's name and id and its fields as data,
// also when the change came from a process with no log of its own (the CLI's
// Directory); and events name their target by username, never by id.
func TestDirectoryEventsReachTheLog(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dbURL string) {
		h, other := start(t, testConfig(dbURL)), start(t, testConfig(dbURL))
		h.addUser("root", "Home Server Admins")
		eve := h.addUser("eve", "Allow Login Users")
		_, _ = h.login("eve", "correct horse eve", "")
		ctx := context.Background()
		cli := identity.NewDirectory(h.app.Store, identity.NewHasher(1), func() []string { return []string{"Home Server Admins"} })
		if _, err := cli.RevokeUserSessions(ctx, "cli", "eve"); err != nil {
			t.Fatal(err)
		}
		if err := cli.RemoveMembers(ctx, "cli", "Allow Login Users", []string{"eve"}); err != nil {
			t.Fatal(err)
		}
		if err := cli.SetDisabled(ctx, "cli", "eve", true); err != nil {
			t.Fatal(err)
		}
		type line struct {
			Msg      string            `json:"msg"`
			Kind     string            `json:"kind"`
			Actor    string            `json:"actor"`
			Target   string            `json:"target"`
			TargetID string            `json:"target_id"`
			EventID  int64             `json:"event_id"`
			Fields   map[string]string `json:"fields"`
		}
		logged := func() map[string][]line {
			out := map[string][]line{}
			for _, r := range []*harness{h, other} {
				for _, raw := range strings.Split(r.logText(), "\n") {
					var l line
					if json.Unmarshal([]byte(raw), &l) == nil && l.Msg == "audit" && l.Target == "eve" {
						out[l.Kind] = append(out[l.Kind], l)
					}
				}
			}
			return out
		}
		want := []string{"user.created", "session.revoked", "group.member_removed", "user.disabled"}
		waitFor(t, "eve's events in the replicas' logs", func() bool {
			got := logged()
			for _, k := range want {
				if len(got[k]) == 0 {
					return false
				}
			}
			return true
		})
		got := logged()
		for _, k := range want {
			if l := got[k]; len(l) != 1 || l[0].TargetID != eve.ID || l[0].EventID == 0 {
				t.Errorf("%s logged %d times across the replicas (want once), as %+v", k, len(l), l)
			}
		}
		if f := got["group.member_removed"][0].Fields; f["group"] != "Allow Login Users" || f["group_id"] == "" {
			t.Errorf("group.member_removed carries fields %v", f)
		}
		if l := got["user.disabled"][0]; l.Actor != "cli" {
			t.Errorf("user.disabled logged with actor %q", l.Actor)
		}
		events, err := h.app.Store.ListEvents(ctx, 100)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range events {
			if e.Target == eve.ID {
				t.Errorf("event %s names its target by id", e.Kind)
			}
		}
	})
}
