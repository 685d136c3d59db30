package server

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"
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
	deadline := time.Now().Add(10 * time.Second)
	for {
		events, err := h.app.Store.ListEvents(context.Background(), 1000)
		if err != nil {
			t.Fatal(err)
		}
		denied, after := 0, false
		for _, e := range events {
			switch {
			case e.Kind == "access.denied":
				denied++
			case e.Kind == "login.failed":
				after = true
			}
		}
		if after {
			if denied != 1 {
				t.Fatalf("200 denied checks left %d audit events, want 1", denied)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the audit writer did not write the events within 10 s: %d so far", len(events))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if body := h.metrics(); !strings.Contains(body, `gatehouse_forward_auth_decisions_total{result="deny"} 200`) {
		t.Error("the metric must still count every denial")
	}
}
