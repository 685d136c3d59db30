package webhook

import (
	"errors"
	"testing"
	"time"

	"github.com/gatehouse-id/gatehouse/internal/config"
	"github.com/gatehouse-id/gatehouse/internal/store"
)

// The example of the Standard Webhooks specification signs to the value it gives.
func TestSignMatchesTheSpecification(t *testing.T) {
	w := config.Webhook{Secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}
	got := Sign(w.SigningKey(), "msg_p5jXN8AQM9LWM0D4loKWxJek", time.Unix(1614265330, 0), `{"test": 2432232314}`)
	if want := "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="; got != want {
		t.Fatalf("signature %s, want %s", got, want)
	}
}

// A 2xx delivers; anything else waits its backoff, until the next try would fall
// after retry_for; a webhook gone from the config is given up at once.
func TestOutcome(t *testing.T) {
	made := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	d := store.WebhookDelivery{Webhook: "a", CreatedAt: made, Attempts: 1, State: store.WebhookPending}
	now := made.Add(time.Second)
	if got := Outcome(d, now, 204, nil, true, time.Hour, Backoff); got.State != store.WebhookDelivered || !got.FinishedAt.Equal(now) || got.LastStatus != 204 {
		t.Fatalf("a 204: %+v", got)
	}
	got := Outcome(d, now, 503, errors.New("the receiver answered HTTP 503"), true, time.Hour, Backoff)
	if got.State != store.WebhookPending || !got.NextAt.Equal(now.Add(5*time.Second)) || got.LastStatus != 503 || got.LastError == "" {
		t.Fatalf("a 503 on the first attempt: %+v", got)
	}
	d.Attempts = 5 // the next pause is 2h, past an hour since the event
	if got := Outcome(d, made.Add(50*time.Minute), 0, errors.New("connection refused"), true, time.Hour, Backoff); got.State != store.WebhookFailed || got.FinishedAt.IsZero() {
		t.Fatalf("a failure whose retry would fall after retry_for: %+v", got)
	}
	if got := Outcome(d, now, 0, errors.New("gone"), false, time.Hour, Backoff); got.State != store.WebhookFailed {
		t.Fatalf("a webhook no longer in the config: %+v", got)
	}
	for attempt, want := range map[int]time.Duration{0: 5 * time.Second, 1: 5 * time.Second, 2: time.Minute, 6: 5 * time.Hour, 40: 5 * time.Hour} {
		if got := Backoff(attempt); got != want {
			t.Errorf("Backoff(%d) = %s, want %s", attempt, got, want)
		}
	}
}

func TestWants(t *testing.T) {
	for _, c := range []struct {
		events []string
		kind   string
		want   bool
	}{
		{nil, "user.created", true},
		{nil, "login.succeeded", false},
		{[]string{"user.*"}, "user.deleted", true},
		{[]string{"user.*"}, "usersomething.x", false},
		{[]string{"*"}, "login.failed", true},
		{[]string{"login.failed"}, "login.failed", true},
		{[]string{"login.failed"}, "login.failed_more", false},
	} {
		if got := (config.Webhook{Events: c.events}).Wants(c.kind); got != c.want {
			t.Errorf("events %v, kind %s: %v, want %v", c.events, c.kind, got, c.want)
		}
	}
}

// A Slack body is one line with Slack's three markup characters escaped, so a
// username cannot ping a channel or make a link.
func TestSlackText(t *testing.T) {
	e := store.Event{Kind: "user.created", Actor: "root", Target: "<!channel>", Detail: "groups: A&B", Fields: map[string]string{"z": "1", "a": "2"}}
	if got, want := SlackText(e), "Gatehouse: *user.created* by root on &lt;!channel&gt; (groups: A&amp;B); a: 2; z: 1"; got != want {
		t.Fatalf("%s\nwant %s", got, want)
	}
	if got := Body(config.Webhook{Format: "slack"}, e); got != `{"text":"Gatehouse: *user.created* by root on \u0026lt;!channel\u0026gt; (groups: A\u0026amp;B); a: 2; z: 1"}` {
		t.Fatalf("slack body %s", got)
	}
}
