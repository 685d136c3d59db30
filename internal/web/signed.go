package web

import (
	"time"

	"github.com/gatehouse-id/gatehouse/internal/signed"
)

// sign and unsign carry state through the browser (see package signed).
func (s *Server) sign(purpose string, ttl time.Duration, fields ...string) string {
	return signed.Key(s.secret).Sign(purpose, ttl, fields...)
}

func (s *Server) unsign(purpose, value string, want int) ([]string, bool) {
	return signed.Key(s.secret).Open(purpose, value, want)
}
