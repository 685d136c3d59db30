package server

import (
	"context"
	"testing"
	"time"

	"github.com/gatehouse-id/gatehouse/internal/store"
)

// Every table that grows is bounded: on start (and every 10 minutes after) the lease
// holder deletes expired sessions, spent WebAuthn challenges past their expiry, expired
// OpenID Connect tokens and audit events beyond database.keep_audit_events; it also
// makes the first OpenID Connect signing key.
func TestHousekeepingBoundsTheTables(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dbURL string) {
		cfg := testConfig(dbURL)
		cfg.Database.KeepAuditEvents = 1000
		st, err := OpenStore(&cfg)
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		if _, err := st.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		u, _ := st.CreateUser(ctx, store.User{Username: "old"})
		past := time.Now().Add(-48 * time.Hour)
		st.CreateSession(ctx, store.Session{ID: "s1", TokenHash: "h1", UserID: u.ID, CreatedAt: past, ExpiresAt: past.Add(time.Hour), LastSeenAt: past})
		st.SpendChallenge(ctx, "old-challenge", past)
		st.AddOIDCToken(ctx, store.OIDCToken{Hash: "old-code", Kind: "code", ClientID: "c", Family: "f", CreatedAt: past, ExpiresAt: past.Add(time.Minute)})
		for range 1500 {
			st.AppendEvent(ctx, store.Event{Kind: "test"})
		}
		st.Close()

		h := start(t, cfg)
		waitFor(t, "housekeeping to bound the tables", func() bool {
			rows := tableRows(t, h.app.Store)
			return rows["sessions"] == 0 && rows["spent_challenges"] == 0 && rows["oidc_tokens"] == 0 && rows["oidc_keys"] == 1 && rows["events"] <= 1000+10 && rows["leases"] == 1 // housekeeping's (no webhook, so no webhooks lease)
		})
	})
}
