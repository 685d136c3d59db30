package server

import (
	"context"
	"net/http"
	"strings"
	"testing"
)

// A signed-in user hammering a host they may not open leaves one audit row per minute,
// not one per request.
func TestDeniedChecksAreAuditedOncePerMinute(t *testing.T) {
	h := start(t, testConfig(backends[0].url(t)))
	h.addUser("bob") // in no group: denied everywhere
	_, sess := h.login("bob", "correct horse bob", "")
	for range 200 {
		if resp, _ := h.do(req{path: "/api/authz/forward-auth", header: traefik("https://app.example.com/x"), cookies: []*http.Cookie{sess}}); resp.StatusCode != http.StatusForbidden {
			t.Fatalf("bob: %d, want 403", resp.StatusCode)
		}
	}
	h.login("bob", "a wrong password", "") // an event after them: once it is written, they all are
	count := func(kind string) int {
		events, err := h.app.Store.ListEvents(context.Background(), 1000)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, e := range events {
			if e.Kind == kind {
				n++
			}
		}
		return n
	}
	waitFor(t, "the audit writer to write the failed login after the denials", func() bool { return count("login.failed") > 0 })
	if denied := count("access.denied"); denied != 1 {
		t.Fatalf("200 denied checks left %d audit events, want 1", denied)
	}
	if body := h.metrics(); !strings.Contains(body, `gatehouse_forward_auth_decisions_total{result="deny"} 200`) {
		t.Error("the metric must still count every denial")
	}
}
