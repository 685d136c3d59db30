package session

import (
	"bytes"
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gatehouse-id/gatehouse/internal/store/sqlite"
)

// A change feed that cannot be read is logged once, not once a poll: an outage must
// not bury the rest of the log.
func TestFeedFailuresAreLoggedOnce(t *testing.T) {
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "gh.db"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	m := NewManager(st, Options{}, slog.New(slog.NewTextHandler(&logs, nil)))
	st.Close() // every read fails from now on
	for range 50 {
		m.PollChanges(context.Background())
	}
	if n := strings.Count(logs.String(), "reading the change feed failed"); n != 1 {
		t.Fatalf("50 failed polls logged %d times, want once:\n%s", n, logs.String())
	}
}
