package identity

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-id/gatehouse/internal/store"
)

func TestHashAndVerify(t *testing.T) {
	h := NewHasher(2)
	ctx := context.Background()
	hash, err := h.Hash(ctx, "correct horse")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(hash, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Fatalf("hash format: %s", hash)
	}
	if other, _ := h.Hash(ctx, "correct horse"); other == hash {
		t.Fatal("two hashes of one password are equal: the salt is not random")
	}
	if err := h.Verify(ctx, hash, "correct horse"); err != nil {
		t.Fatalf("right password: %v", err)
	}
	for _, wrong := range []string{"correct hors", "Correct horse", "", strings.Repeat("x", 2000)} {
		if err := h.Verify(ctx, hash, wrong); err != ErrPasswordMismatch {
			t.Fatalf("wrong password %.10q: %v", wrong, err)
		}
	}
	if err := h.Verify(ctx, dummyHash, "gatehouse-timing-equaliser"); err != nil {
		t.Fatalf("the dummy hash is not a valid hash at the current parameters: %v", err)
	}
	if !strings.HasPrefix(dummyHash, hash[:strings.LastIndex(hash[:len(hash)-44], "$")]) {
		t.Fatalf("the dummy hash's parameters differ from new hashes': %s vs %s", dummyHash, hash)
	}
	if err := h.Verify(ctx, "", "anything"); err != ErrPasswordMismatch {
		t.Fatalf("no password set must never verify: %v", err)
	}
	if err := h.Verify(ctx, "$bcrypt$xyz", "x"); err == nil || !strings.Contains(err.Error(), "gatehouse user passwd") {
		t.Fatalf("foreign hash: %v", err)
	}
	if _, err := h.Hash(ctx, strings.Repeat("p", 10<<20)); err == nil {
		t.Fatal("a 10 MB password was hashed")
	}
}

func TestHasherBoundsConcurrency(t *testing.T) {
	h := NewHasher(2)
	var running, peak atomic.Int32
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if err := h.acquire(context.Background()); err != nil {
				t.Error(err)
				return
			}
			n := running.Add(1)
			for {
				p := peak.Load()
				if n <= p || peak.CompareAndSwap(p, n) {
					break
				}
			}
			time.Sleep(5 * time.Millisecond)
			running.Add(-1)
			h.release()
		})
	}
	wg.Wait()
	if peak.Load() > 2 {
		t.Fatalf("%d hashes ran at once, bound is 2", peak.Load())
	}
	// A caller that gives up while queued is released, not stuck.
	h.acquire(context.Background())
	h.acquire(context.Background())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := h.Hash(ctx, "password1"); err == nil {
		t.Fatal("a cancelled caller waited for a slot")
	}
}

func TestChecks(t *testing.T) {
	for _, ok := range []string{"alice", "a.b-c_d@example.com", "Z9"} {
		if err := CheckUsername(ok); err != nil {
			t.Errorf("CheckUsername(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", "a b", "a\x00", "a\nb", "é", "a,b", "a|b", strings.Repeat("a", 65)} {
		if CheckUsername(bad) == nil {
			t.Errorf("CheckUsername(%q) accepted", bad)
		}
	}
	if CheckEmail("") != nil || CheckEmail("a@example.com") != nil {
		t.Error("valid emails refused")
	}
	for _, bad := range []string{"a", "A <a@example.com>", "a@example.com\r\nBcc: x@y"} {
		if CheckEmail(bad) == nil {
			t.Errorf("CheckEmail(%q) accepted", bad)
		}
	}
	if CheckPassword("short") == nil || CheckPassword(strings.Repeat("x", 1025)) == nil || CheckPassword("long enough") != nil {
		t.Error("CheckPassword bounds")
	}
}

func TestEffectiveGroups(t *testing.T) {
	all := []store.Group{
		{ID: "1", Name: "Allow Login Users"},
		{ID: "2", Name: "Home Server Admins", ParentID: "1"},
		{ID: "3", Name: "Family", ParentID: "1"},
		{ID: "4", Name: "Loop A", ParentID: "5"},
		{ID: "5", Name: "Loop B", ParentID: "4"},
	}
	tests := []struct {
		direct []string
		want   string
	}{
		{nil, ""},
		{[]string{"1"}, "Allow Login Users"},
		{[]string{"2"}, "Allow Login Users,Home Server Admins"},
		{[]string{"2", "3"}, "Allow Login Users,Family,Home Server Admins"},
		{[]string{"4"}, "Loop A,Loop B"},
		{[]string{"missing"}, ""},
	}
	for _, tc := range tests {
		if got := strings.Join(EffectiveGroups(tc.direct, all), ","); got != tc.want {
			t.Errorf("EffectiveGroups(%v) = %q, want %q", tc.direct, got, tc.want)
		}
	}
}
