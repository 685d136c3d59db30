package ratelog

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
)

// Fifty failures in a row are one line; the success after them says how many there were.
func TestFailuresAreLoggedOnceThenCounted(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	var f Failures
	f.OK(log, "works again") // nothing failed: no line
	for range 50 {
		f.Fail(log, "reading failed", errors.New("connection refused"))
	}
	f.OK(log, "works again")
	f.OK(log, "works again")
	out := buf.String()
	if strings.Count(out, "reading failed") != 1 || strings.Count(out, "works again") != 1 || !strings.Contains(out, "failures=50") {
		t.Fatalf("logged:\n%s", out)
	}
}
