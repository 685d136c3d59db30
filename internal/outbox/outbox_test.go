package outbox

import (
	"errors"
	"testing"
	"time"

	"github.com/gatehouse-id/gatehouse/internal/store"
)

// The schedule's last pause repeats; a failure waits for its pause unless that would
// fall after For, or the caller gives up; a success is done.
func TestRetry(t *testing.T) {
	r := Retry{Pauses: []time.Duration{time.Second, time.Minute}, For: time.Hour}
	for attempt, want := range map[int]time.Duration{0: time.Second, 1: time.Second, 2: time.Minute, 9: time.Minute} {
		if got := r.Pause(attempt); got != want {
			t.Errorf("Pause(%d) = %s, want %s", attempt, got, want)
		}
	}
	made := time.Date(2026, 12, 2, 8, 0, 0, 0, time.UTC)
	if state, _, finished, last := r.Outcome(made, made.Add(time.Second), 1, nil, false, nil); state != store.WebhookDelivered || finished.IsZero() || last != "" {
		t.Errorf("a success: %s %s %q", state, finished, last)
	}
	if state, next, _, last := r.Outcome(made, made.Add(time.Second), 1, errors.New("refused"), false, nil); state != store.WebhookPending || !next.Equal(made.Add(2*time.Second)) || last != "refused" {
		t.Errorf("a failure with time left: %s %s %q", state, next, last)
	}
	if state, _, _, _ := r.Outcome(made, made.Add(59*time.Minute+30*time.Second), 3, errors.New("refused"), false, nil); state != store.WebhookFailed {
		t.Errorf("a failure whose next try falls after For: %s", state)
	}
	if state, _, _, _ := r.Outcome(made, made, 1, errors.New("gone"), true, nil); state != store.WebhookFailed {
		t.Errorf("given up: %s", state)
	}
	long := make([]byte, 400)
	for i := range long {
		long[i] = 'x'
	}
	if _, _, _, last := r.Outcome(made, made, 1, errors.New(string(long)), false, func(int) time.Duration { return 0 }); len(last) > 310 {
		t.Errorf("an error of 400 bytes kept as %d", len(last))
	}
}
