// Package webhook owns the delivery of Gatehouse's events to the webhooks in the
// config. The audit events table is the outbox: a change writes its event in its own
// transaction, and here one replica at a time (under the "webhooks" lease) routes each
// committed event to the webhooks that want it — storing one delivery per webhook,
// in one transaction with marking the event routed — and then posts the deliveries
// that are due, signed per Standard Webhooks (https://www.standardwebhooks.com):
// webhook-id (the same on every attempt, so a receiver can drop repeats),
// webhook-timestamp and webhook-signature (v1, HMAC-SHA256 of id.timestamp.body). A
// failed attempt is tried again with growing pauses until the webhook's retry_for has
// passed since the event; each attempt's outcome is kept for the admin page. A
// webhook's deliveries are sent one at a time, oldest first, so a receiver that keeps
// up sees events in the order they happened; one that was retried can arrive after
// later ones (its event_id and timestamp tell).
package webhook

import (
	"cmp"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gatehouse-id/gatehouse/internal/config"
	"github.com/gatehouse-id/gatehouse/internal/outbox"
	"github.com/gatehouse-id/gatehouse/internal/store"
)

// Store is what delivering webhooks needs of the database.
type Store interface {
	store.Webhooks
	store.Leases
}

// PollInterval is how often the lease holder looks for events and due deliveries: how
// long, at most, a receiver waits for an event after it was committed.
const PollInterval = time.Second

// leaseName is the lease one replica holds while it delivers; leaseTTL is how long a
// dead holder keeps it from the others.
const (
	leaseName = "webhooks"
	leaseTTL  = 30 * time.Second
)

// Timeout bounds one attempt: a receiver answers at once or is tried again later.
const Timeout = 10 * time.Second

// batch is how many deliveries are claimed at once.
const batch = 16

// claimFor keeps claimed deliveries from every other caller while they are attempted:
// longer than a whole batch to one webhook can take, one after another.
const claimFor = batch*Timeout + time.Minute

// KeepDeliveries is how long finished deliveries stay in the delivery log.
const KeepDeliveries = 7 * 24 * time.Hour

// schedule is the pause after each failed attempt; the last repeats.
var schedule = []time.Duration{5 * time.Second, time.Minute, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour, 5 * time.Hour}

// Backoff is the default pause after the attempt-th failed attempt (from 1).
func Backoff(attempt int) time.Duration { return outbox.Retry{Pauses: schedule}.Pause(attempt) }

// Sender routes events to webhooks and delivers them.
type Sender struct {
	Store  Store
	Config func() *config.Config
	Log    *slog.Logger
	// Holder names this replica for the lease.
	Holder string
	// Client sends the requests; nil: one that follows no redirects.
	Client *http.Client
	// Backoff is the pause after the attempt-th failed attempt; nil: Backoff.
	Backoff func(attempt int) time.Duration
	// Poll is how often to look for work; 0: PollInterval.
	Poll time.Duration

	pruned time.Time
}

// defaultClient follows no redirects: an event goes where the config says only.
var defaultClient = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// Run delivers webhooks while this replica holds the lease, until ctx ends.
func (s *Sender) Run(ctx context.Context) { s.loop().Run(ctx, s.Work) }

func (s *Sender) loop() *outbox.Loop {
	poll := s.Poll
	if poll == 0 {
		poll = PollInterval
	}
	return &outbox.Loop{Leases: s.Store, Lease: leaseName, Holder: s.Holder, TTL: leaseTTL, Poll: poll, Log: s.Log, What: "delivering webhooks"}
}

// Work does one round if this replica holds (or takes) the lease: route new events,
// attempt the deliveries that are due, and now and then prune the delivery log.
func (s *Sender) Work(ctx context.Context) error {
	if len(s.Config().Webhooks) == 0 {
		// Nothing to send, and no lease to hold: events are only marked routed (a
		// read when there are none), so a webhook added later starts from then on
		// instead of replaying the audit log. Replicas claiming at once is safe.
		_, err := s.Store.QueueWebhooks(ctx, time.Now(), 1000, s.route)
		return err
	}
	held, err := s.loop().Hold(ctx)
	if err != nil || !held {
		return err
	}
	for {
		n, err := s.Store.QueueWebhooks(ctx, time.Now(), 200, s.route)
		if err != nil {
			return err
		}
		if n < 200 {
			break
		}
	}
	for ctx.Err() == nil {
		now := time.Now()
		due, err := s.Store.ClaimWebhookDeliveries(ctx, now, now.Add(claimFor), batch)
		if err != nil || len(due) == 0 {
			if err == nil {
				err = s.prune(ctx, now)
			}
			return err
		}
		// Each webhook's deliveries go one after another, oldest first, so a receiver
		// that keeps up gets events in order; webhooks do not wait for one another.
		slices.SortFunc(due, func(a, b store.WebhookDelivery) int {
			return cmp.Or(a.NextAt.Compare(b.NextAt), cmp.Compare(a.ID, b.ID))
		})
		byWebhook := map[string][]store.WebhookDelivery{}
		for _, d := range due {
			byWebhook[d.Webhook] = append(byWebhook[d.Webhook], d)
		}
		var wg sync.WaitGroup
		for _, list := range byWebhook {
			wg.Go(func() {
				for _, d := range list {
					s.attempt(ctx, d)
				}
			})
		}
		wg.Wait()
	}
	return ctx.Err()
}

func (s *Sender) prune(ctx context.Context, now time.Time) error {
	if now.Sub(s.pruned) < time.Hour {
		return nil
	}
	_, err := s.Store.PruneWebhookDeliveries(ctx, now.Add(-KeepDeliveries))
	if err == nil {
		s.pruned = now
	}
	return err
}

// route makes the deliveries of e: one for each webhook that wants its kind.
func (s *Sender) route(e store.Event) []store.WebhookDelivery {
	var out []store.WebhookDelivery
	for _, w := range s.Config().Webhooks {
		if w.Wants(e.Kind) {
			out = append(out, store.WebhookDelivery{Webhook: w.Name, Body: Body(w, e)})
		}
	}
	return out
}

// Event is the body of a standard webhook: Standard Webhooks' type, timestamp and
// data, with data being the audit event.
type Event struct {
	Type      string    `json:"type"`
	Timestamp time.Time `json:"timestamp"`
	Data      EventData `json:"data"`
}

// EventData is what happened, as the audit log records it.
type EventData struct {
	EventID  int64             `json:"event_id"`
	Actor    string            `json:"actor"`
	Target   string            `json:"target"`
	TargetID string            `json:"target_id,omitempty"`
	Detail   string            `json:"detail,omitempty"`
	Fields   map[string]string `json:"fields,omitempty"`
}

// Body is the JSON w is sent for e.
func Body(w config.Webhook, e store.Event) string {
	var b []byte
	if w.Format == "slack" {
		b, _ = json.Marshal(map[string]string{"text": SlackText(e)})
	} else {
		b, _ = json.Marshal(Event{Type: e.Kind, Timestamp: e.At.UTC(), Data: EventData{EventID: e.ID, Actor: e.Actor, Target: e.Target,
			TargetID: e.TargetID, Detail: e.Detail, Fields: e.Fields}})
	}
	return string(b)
}

// SlackText is an event as one line of a chat message. Slack's mrkdwn reads <, > and
// & as markup, so they are escaped the way its documentation asks.
func SlackText(e store.Event) string {
	esc := strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace
	line := "Gatehouse: *" + esc(e.Kind) + "*"
	if e.Actor != "" {
		line += " by " + esc(e.Actor)
	}
	if e.Target != "" {
		line += " on " + esc(e.Target)
	}
	if e.Detail != "" {
		line += " (" + esc(e.Detail) + ")"
	}
	for _, k := range slices.Sorted(maps.Keys(e.Fields)) {
		line += "; " + esc(k) + ": " + esc(e.Fields[k])
	}
	return line
}

// Sign returns the webhook-signature value of a message per Standard Webhooks.
func Sign(key []byte, id string, timestamp time.Time, body string) string {
	m := hmac.New(sha256.New, key)
	fmt.Fprintf(m, "%s.%d.%s", id, timestamp.Unix(), body)
	return "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// MessageID is a delivery's webhook-id: its event's, the same on every attempt.
func MessageID(d store.WebhookDelivery) string { return "evt_" + strconv.FormatInt(d.EventID, 10) }

// attempt posts d once and stores how it went.
func (s *Sender) attempt(ctx context.Context, d store.WebhookDelivery) {
	w, ok := s.Config().WebhookByName(d.Webhook)
	var status int
	var err error
	if ok {
		status, err = s.post(ctx, w, d)
	} else {
		err = fmt.Errorf("webhook %q is no longer in the config file", d.Webhook)
	}
	now := time.Now()
	d = Outcome(d, now, status, err, ok, w.Retry(), s.Backoff)
	switch d.State {
	case store.WebhookFailed:
		s.Log.Error("webhook delivery given up", "webhook", d.Webhook, "event_id", d.EventID, "kind", d.EventKind, "attempts", d.Attempts, "error", d.LastError)
	case store.WebhookPending:
		s.Log.Warn("webhook delivery failed; it is tried again", "webhook", d.Webhook, "event_id", d.EventID, "attempt", d.Attempts,
			"next_in", d.NextAt.Sub(now).Round(time.Millisecond).String(), "error", d.LastError)
	}
	if err := s.Store.FinishWebhookAttempt(context.WithoutCancel(ctx), d); err != nil {
		// Left claimed: it is attempted again once the claim runs out, which the
		// webhook-id lets the receiver recognise.
		s.Log.Warn("storing a webhook attempt failed", "webhook", d.Webhook, "event_id", d.EventID, "error", err.Error())
	}
}

// Outcome is d after an attempt at now that got status (0: no answer) and err:
// delivered on a 2xx; otherwise tried again after backoff(attempts) (nil: Backoff),
// unless that would be past retryFor since the delivery was made, or the webhook is
// gone.
func Outcome(d store.WebhookDelivery, now time.Time, status int, err error, exists bool, retryFor time.Duration, backoff func(int) time.Duration) store.WebhookDelivery {
	d.LastStatus = status
	d.State, d.NextAt, d.FinishedAt, d.LastError = outbox.Retry{Pauses: schedule, For: retryFor}.Outcome(d.CreatedAt, now, d.Attempts, err, !exists, backoff)
	if d.State == store.WebhookPending {
		return d
	}
	d.NextAt = time.Time{}
	return d
}

// post sends one attempt and returns the receiver's status; an error unless 2xx.
func (s *Sender) post(ctx context.Context, w config.Webhook, d store.WebhookDelivery) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL, strings.NewReader(d.Body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Gatehouse-Webhooks/1")
	id, now := MessageID(d), time.Now()
	req.Header.Set("webhook-id", id)
	req.Header.Set("webhook-timestamp", strconv.FormatInt(now.Unix(), 10))
	if w.Secret != "" {
		req.Header.Set("webhook-signature", Sign(w.SigningKey(), id, now, d.Body))
	}
	client := s.Client
	if client == nil {
		client = defaultClient
	}
	resp, err := client.Do(req)
	if ue, ok := err.(*url.Error); ok {
		// Without the URL: a Slack webhook's URL is its secret, and this error goes to
		// the log and the delivery log.
		err = ue.Err
	}
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	said, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		err := fmt.Errorf("the receiver answered HTTP %d", resp.StatusCode)
		// The start of its answer, on one line, says why more often than the status.
		if line := strings.Join(strings.Fields(strings.ToValidUTF8(string(said), "")), " "); line != "" {
			err = fmt.Errorf("%w: %s", err, line)
		}
		return resp.StatusCode, err
	}
	return resp.StatusCode, nil
}
