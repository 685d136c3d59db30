package web

import (
	"fmt"
	"testing"
	"time"
)

func TestThrottle(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	th := NewThrottle(15*time.Minute, 3, 5)
	th.now = func() time.Time { return now }

	for range 3 {
		th.Failed("198.51.100.1", "Alice")
	}
	if blocked, wait := th.Blocked("198.51.100.1", "alice"); !blocked || wait != 15*time.Minute {
		t.Fatalf("after 3 failures: blocked=%v wait=%v (usernames compare without case)", blocked, wait)
	}
	if blocked, _ := th.Blocked("198.51.100.2", "alice"); blocked {
		t.Fatal("the same account from another address is blocked: an attacker could lock the owner out")
	}
	if blocked, _ := th.Blocked("198.51.100.1", "bob"); blocked {
		t.Fatal("another account from the address is blocked before the per-address limit")
	}
	th.Failed("198.51.100.1", "bob")
	th.Failed("198.51.100.1", "carol")
	if blocked, _ := th.Blocked("198.51.100.1", "dave"); !blocked {
		t.Fatal("5 failures from one address across accounts do not block the address")
	}
	now = now.Add(15 * time.Minute)
	if blocked, _ := th.Blocked("198.51.100.1", "alice"); blocked {
		t.Fatal("still blocked after the window")
	}

	th.Failed("198.51.100.3", "erin")
	th.Succeeded("198.51.100.3", "erin")
	th.Failed("198.51.100.3", "erin")
	th.Failed("198.51.100.3", "erin")
	if blocked, _ := th.Blocked("198.51.100.3", "erin"); blocked {
		t.Fatal("a success did not reset the pair's failures")
	}
}

func TestThrottleMemoryIsBounded(t *testing.T) {
	th := NewThrottle(time.Minute, 3, 5)
	th.maxKeys = 100
	for i := range 1000 {
		th.Failed(fmt.Sprintf("192.0.2.%d", i%250), fmt.Sprint("user", i))
	}
	if len(th.failures) > 100 {
		t.Fatalf("throttle holds %d keys, bound is 100", len(th.failures))
	}
}
