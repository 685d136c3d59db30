package web

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"time"
	"unicode/utf8"

	"github.com/gatehouse-id/gatehouse/internal/authn"
	"github.com/gatehouse-id/gatehouse/internal/store"
)

// deviceCookie names the cookie by which a browser that signed in to an account before
// keeps its own sign-in budget while that account is under attack (authn.PasswordLimits):
// a signed device id and user id, on Gatehouse's own host only, for a year.
const deviceCookie = "gatehouse_device"

const deviceLifetime = 365 * 24 * time.Hour

// knownDevice returns the browser's device id when its device cookie was issued for
// userID, else "".
func (s *Server) knownDevice(r *http.Request, userID string) string {
	if userID == "" {
		return ""
	}
	for _, c := range r.CookiesNamed(deviceCookie) {
		if f, ok := s.unsign("device", c.Value, 2); ok && f[1] == userID {
			return f[0]
		}
	}
	return ""
}

// rememberDevice gives the browser a device cookie for userID after a sign-in, keeping
// its device id when it has one.
func (s *Server) rememberDevice(w http.ResponseWriter, r *http.Request, userID string) {
	id := ""
	for _, c := range r.CookiesNamed(deviceCookie) {
		if f, ok := s.unsign("device", c.Value, 2); ok {
			id = f[0]
		}
	}
	if id == "" {
		id = randomToken()[:22]
	}
	http.SetCookie(w, &http.Cookie{Name: deviceCookie, Value: s.sign("device", deviceLifetime, id, userID), Path: "/",
		MaxAge: int(deviceLifetime.Seconds()), HttpOnly: true, Secure: s.cfg().SecureCookies(), SameSite: http.SameSiteLaxMode})
}

// throttled records a refused guess: a metric, an audit event and a log line, so an
// attack shows up without anyone reading the throttle table.
func (s *Server) throttled(what, target, ip string) {
	s.Metrics.Logins.WithLabelValues("throttled").Inc()
	s.Audit(store.Event{Kind: "login.throttled", Actor: "anonymous", Target: target, Detail: what + " from " + ip})
}

// hashOf names a signed value in a throttle key without putting the value itself in
// the database.
func hashOf(value string) string {
	sum := sha256.Sum256([]byte(value))
	return hex.EncodeToString(sum[:16])
}

// minutes says a wait the way people read it.
func minutes(d time.Duration) string {
	if m := int(d.Minutes()) + 1; m > 1 {
		return fmt.Sprintf("%d minutes", m)
	}
	return "a minute"
}

// network is the client's address as the throttle counts it (an IPv6 /64).
func (s *Server) network(r *http.Request) string { return authn.Network(s.clientIP(r)) }

// clip shortens s to at most n bytes for an event, on a rune boundary.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
