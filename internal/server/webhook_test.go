package server

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-id/gatehouse/internal/config"
	"github.com/gatehouse-id/gatehouse/internal/identity"
	"github.com/gatehouse-id/gatehouse/internal/store"
)

const testWebhookSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// receiver is a webhook endpoint that checks every request as a careful receiver
// would — the signature over id.timestamp.body with the shared key, a timestamp
// within five minutes — and refuses the first refuse attempts of each message.
type receiver struct {
	t      *testing.T
	srv    *httptest.Server
	refuse int
	mu     sync.Mutex
	tries  map[string]int          // webhook-id → attempts seen
	events map[string]webhookEvent // webhook-id → the body it carried, once accepted
	bad    []string
}

type webhookEvent struct {
	Type      string    `json:"type"`
	Timestamp time.Time `json:"timestamp"`
	Data      struct {
		EventID int64             `json:"event_id"`
		Actor   string            `json:"actor"`
		Target  string            `json:"target"`
		Fields  map[string]string `json:"fields"`
	} `json:"data"`
}

func newReceiver(t *testing.T, refuse int) *receiver {
	rc := &receiver{t: t, refuse: refuse, tries: map[string]int{}, events: map[string]webhookEvent{}}
	key, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(testWebhookSecret, "whsec_"))
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		id, ts := r.Header.Get("webhook-id"), r.Header.Get("webhook-timestamp")
		m := hmac.New(sha256.New, key)
		m.Write([]byte(id + "." + ts + "." + string(body)))
		want := "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
		sec, err := strconv.ParseInt(ts, 10, 64)
		rc.mu.Lock()
		defer rc.mu.Unlock()
		switch {
		case !strings.Contains(" "+r.Header.Get("webhook-signature")+" ", " "+want+" "):
			rc.bad = append(rc.bad, "bad signature on "+id)
		case err != nil || time.Since(time.Unix(sec, 0)).Abs() > 5*time.Minute:
			rc.bad = append(rc.bad, "bad timestamp "+ts)
		case r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json":
			rc.bad = append(rc.bad, r.Method+" "+r.Header.Get("Content-Type"))
		}
		rc.tries[id]++
		if rc.tries[id] <= rc.refuse {
			http.Error(w, "not now", http.StatusServiceUnavailable)
			return
		}
		var e webhookEvent
		if err := json.Unmarshal(body, &e); err != nil {
			rc.bad = append(rc.bad, "unreadable body "+string(body))
		}
		if _, again := rc.events[id]; again {
			rc.bad = append(rc.bad, "delivered twice: "+id)
		}
		rc.events[id] = e
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

// accepted returns the accepted events of kind, by target.
func (rc *receiver) accepted(kind string) map[string]webhookEvent {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	out := map[string]webhookEvent{}
	for _, e := range rc.events {
		if e.Type == kind {
			out[e.Data.Target] = e
		}
	}
	return out
}

func (rc *receiver) check() {
	rc.t.Helper()
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for _, b := range rc.bad {
		rc.t.Error(b)
	}
}

// fastWebhooks makes a test's webhook pauses short: looking for work every 20 ms,
// retrying after 10 ms.
func fastWebhooks(a *App) {
	a.Webhooks.Poll = 20 * time.Millisecond
	a.Webhooks.Backoff = func(int) time.Duration { return 10 * time.Millisecond }
}

func webhookConfig(dbURL string, hooks ...config.Webhook) config.Config {
	cfg := testConfig(dbURL)
	cfg.Webhooks = hooks
	return cfg
}

// Changes reach a webhook signed and once: a receiver that refuses twice gets the
// same message (same webhook-id) a third time and takes it; a Slack webhook gets a
// line of text; an event nobody asked for is not sent; the admin page lists each
// delivery with its attempts.
func TestWebhooksDeliverSignedEvents(t *testing.T) {
	archive := newReceiver(t, 2)
	var chatMu sync.Mutex
	var chat []string
	chatSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		chatMu.Lock()
		chat = append(chat, string(b))
		chatMu.Unlock()
	}))
	defer chatSrv.Close()
	h := start(t, webhookConfig(backends[0].url(t),
		config.Webhook{Name: "archive", URL: archive.srv.URL, Secret: testWebhookSecret},
		config.Webhook{Name: "chat", URL: chatSrv.URL, Format: "slack", Events: []string{"user.deleted"}}), fastWebhooks)
	h.addUser("root", "Home Server Admins")
	ctx := context.Background()
	d := h.app.Directory()
	if _, err := d.AddUser(ctx, "root", identity.NewUser{Username: "ivy", Groups: []string{"Allow Login Users"}}); err != nil {
		t.Fatal(err)
	}
	if err := d.SetDisabled(ctx, "root", "ivy", true); err != nil {
		t.Fatal(err)
	}
	if err := d.DeleteUser(ctx, "root", "ivy"); err != nil {
		t.Fatal(err)
	}
	for _, kind := range []string{"user.created", "user.disabled", "user.deleted"} {
		waitFor(t, kind+" at the receiver", func() bool { _, ok := archive.accepted(kind)["ivy"]; return ok })
	}
	waitFor(t, "the deletion in the chat", func() bool {
		chatMu.Lock()
		defer chatMu.Unlock()
		return len(chat) == 1
	})
	archive.check()
	created := archive.accepted("user.created")["ivy"]
	if created.Data.Actor != "root" || created.Data.EventID == 0 || time.Since(created.Timestamp) > time.Minute {
		t.Fatalf("the user.created event: %+v", created)
	}
	archive.mu.Lock()
	for id, n := range archive.tries {
		if n != 3 || !strings.HasPrefix(id, "evt_") {
			t.Errorf("message %s was tried %d times, want 3 (two refused, one taken)", id, n)
		}
	}
	archive.mu.Unlock()
	if want := `{"text":"Gatehouse: *user.deleted* by root on ivy"}`; chat[0] != want {
		t.Fatalf("the chat got %s, want %s", chat[0], want)
	}
	if _, seen := archive.accepted("login.succeeded")["root"]; seen {
		t.Fatal("an event outside the default set was sent")
	}
	waitFor(t, "every delivery finished", func() bool {
		list, err := h.app.Store.WebhookDeliveries(ctx, "", 0, 100)
		for _, dl := range list {
			if dl.State != store.WebhookDelivered {
				return false
			}
		}
		return err == nil && len(list) == 5 // three to the archive (root's creation too), one to the chat
	})
	_, admin := h.login("root", "correct horse root", "")
	resp, body := h.do(req{path: "/admin/webhooks?webhook=archive", cookies: []*http.Cookie{admin}})
	if resp.StatusCode != http.StatusOK || strings.Count(body, "<td>delivered</td><td>3</td>") != 4 || !strings.Contains(body, "user.deleted") {
		t.Fatalf("the delivery log: %d\n%s", resp.StatusCode, body)
	}
}

// A receiver that cannot be reached keeps its deliveries pending, tried again and
// again with the error kept, and takes them once it is back.
func TestWebhookReceiverDown(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens here now: connections are refused
	h := start(t, webhookConfig(backends[0].url(t), config.Webhook{Name: "down", URL: "http://" + addr + "/hook", Secret: testWebhookSecret}), fastWebhooks)
	ctx := context.Background()
	if _, err := h.app.Directory().AddUser(ctx, "root", identity.NewUser{Username: "ivy"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "three failed attempts", func() bool {
		list, err := h.app.Store.WebhookDeliveries(ctx, "down", 0, 1)
		return err == nil && len(list) == 1 && list[0].Attempts >= 3 && list[0].State == store.WebhookPending && strings.Contains(list[0].LastError, "refused")
	})
	rc := newReceiver(t, 0)
	back := httptest.NewUnstartedServer(rc.srv.Config.Handler)
	back.Listener.Close()
	if back.Listener, err = net.Listen("tcp", addr); err != nil {
		t.Skipf("the port was taken meanwhile: %v", err)
	}
	back.Start()
	defer back.Close()
	waitFor(t, "the delivery once the receiver is back", func() bool { _, ok := rc.accepted("user.created")["ivy"]; return ok })
	rc.check()
}

// Three replicas on one database deliver each event once: one holds the lease, and a
// delivery is claimed before it is sent.
func TestWebhooksThreeReplicasDeliverOnce(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dbURL string) {
		rc := newReceiver(t, 0)
		cfg := webhookConfig(dbURL, config.Webhook{Name: "archive", URL: rc.srv.URL, Secret: testWebhookSecret, Events: []string{"user.created"}})
		replicas := []*harness{start(t, cfg, fastWebhooks), start(t, cfg, fastWebhooks), start(t, cfg, fastWebhooks)}
		const n = 30
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				if _, err := replicas[i%3].app.Directory().AddUser(context.Background(), "cli", identity.NewUser{Username: fmt.Sprintf("u%02d", i)}); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		waitFor(t, "every creation at the receiver", func() bool { return len(rc.accepted("user.created")) == n })
		waitFor(t, "every delivery marked delivered", func() bool {
			list, err := replicas[0].app.Store.WebhookDeliveries(context.Background(), "archive", 0, 100)
			for _, d := range list {
				if d.State != store.WebhookDelivered {
					return false
				}
			}
			return err == nil && len(list) == n
		})
		rc.check()
		rc.mu.Lock()
		defer rc.mu.Unlock()
		for id, tries := range rc.tries {
			if tries != 1 {
				t.Errorf("message %s arrived %d times", id, tries)
			}
		}
	})
}

// A webhook added by a reload starts from then on: what happened while no webhook
// was defined is not replayed from the audit log.
func TestWebhookAddedLaterStartsThen(t *testing.T) {
	h := start(t, testConfig(backends[0].url(t)), fastWebhooks)
	ctx := context.Background()
	d := h.app.Directory()
	if _, err := d.AddUser(ctx, "root", identity.NewUser{Username: "before"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the event marked routed", func() bool {
		var unrouted int
		err := h.app.Store.(interface{ DB() *sql.DB }).DB().QueryRow("SELECT COUNT(*) FROM events WHERE hooked_at = 0").Scan(&unrouted)
		return err == nil && unrouted == 0
	})
	rc := newReceiver(t, 0)
	if err := h.app.Reload(ctx, webhookConfig(h.app.Config().Database.URL, config.Webhook{Name: "late", URL: rc.srv.URL, Secret: testWebhookSecret})); err != nil {
		t.Fatal(err)
	}
	if _, err := d.AddUser(ctx, "root", identity.NewUser{Username: "after"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the later creation at the receiver", func() bool { _, ok := rc.accepted("user.created")["after"]; return ok })
	if _, replayed := rc.accepted("user.created")["before"]; replayed {
		t.Fatal("an event from before the webhook existed was sent")
	}
	rc.check()
}
