package forwardauth

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// BenchmarkParseOriginal is the cost of reading and cleaning Traefik's headers.
func BenchmarkParseOriginal(b *testing.B) {
	r := httptest.NewRequest(http.MethodGet, "/api/authz/forward-auth", nil)
	r.Header.Set("X-Forwarded-Proto", "https")
	r.Header.Set("X-Forwarded-Host", "app.example.com")
	r.Header.Set("X-Forwarded-Uri", "/static/js/app.3f9a1c.js?v=2")
	r.Header.Set("X-Forwarded-Method", "GET")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseOriginal(r, ForwardAuth); err != nil {
			b.Fatal(err)
		}
	}
}
