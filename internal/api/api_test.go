package api

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// FuzzRequestParsing: whatever a client sends as a body, an If-Match or a cursor, the
// parsers answer with a value or with an error that names the field, never a panic or
// an error the API would report as its own failure.
func FuzzRequestParsing(f *testing.F) {
	f.Add(`{"display_name": "A"}`, `"abc"`, "YWxpY2U", "10")
	f.Add(`{"disabled": true} {}`, `W/"x"`, "%%%", "0")
	f.Add(`{"emial": 1}`, `*`, "", "1001")
	f.Add("\x00", `"`, "====", "-1")
	f.Fuzz(func(t *testing.T, body, match, cursor, limit string) {
		r := httptest.NewRequest(http.MethodPatch, "/api/v1/users/a?"+url.Values{"cursor": {cursor}, "limit": {limit}}.Encode(), strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		r.Header.Set("If-Match", match)
		named := func(err error) bool {
			var bad invalid
			var unreadable malformed
			var big *http.MaxBytesError
			return err == nil || errors.As(err, &bad) || errors.As(err, &unreadable) || errors.As(err, &big)
		}
		var patch UserPatch
		if err := decode(httptest.NewRecorder(), r, &patch); !named(err) {
			t.Fatalf("body %q: %v", body, err)
		}
		if _, err := ifMatch(r); !named(err) {
			t.Fatalf("If-Match %q: %v", match, err)
		}
		if _, n, err := pageParams(r); !named(err) || (err == nil && (n < 1 || n > 1000)) {
			t.Fatalf("cursor %q limit %q: %d %v", cursor, limit, n, err)
		}
	})
}
