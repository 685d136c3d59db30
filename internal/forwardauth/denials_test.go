package forwardauth

import (
	"testing"
	"time"
)

// A flood of denied checks becomes one audit event per (user, host) and minute; the
// next event counts what was not recorded.
func TestDenialsAreRecordedOncePerMinute(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	l := &denialLimiter{now: func() time.Time { return now }}
	if ok, _ := l.record("bob", "app.example.com"); !ok {
		t.Fatal("the first denial was not recorded")
	}
	for range 1000 {
		if ok, _ := l.record("bob", "app.example.com"); ok {
			t.Fatal("a denial within the minute was recorded again")
		}
	}
	if ok, _ := l.record("bob", "other.example.com"); !ok {
		t.Fatal("another host's first denial was not recorded")
	}
	if ok, _ := l.record("eve", "app.example.com"); !ok {
		t.Fatal("another user's first denial was not recorded")
	}
	now = now.Add(denialWindow)
	ok, before := l.record("bob", "app.example.com")
	if !ok || before != 1000 {
		t.Fatalf("after the minute: recorded %v, reporting %d unrecorded, want true and 1000", ok, before)
	}
	if suppressedNote(before) == "" || suppressedNote(0) != "" {
		t.Fatal("the note does not say how many")
	}
}

// The limiter's memory is bounded: a full table of live windows records nothing new.
func TestDenialLimiterIsBounded(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	l := &denialLimiter{now: func() time.Time { return now }}
	for i := range maxDenialKeys {
		l.record("u", string(rune('a'+i%26))+time.Duration(i).String())
	}
	if ok, _ := l.record("new", "host"); ok || len(l.windows) > maxDenialKeys {
		t.Fatalf("a full limiter took a new key: %v, %d keys", ok, len(l.windows))
	}
	now = now.Add(denialWindow)
	if ok, _ := l.record("new", "host"); !ok || len(l.windows) != 1 {
		t.Fatalf("expired windows were not swept: %v, %d keys", ok, len(l.windows))
	}
}
