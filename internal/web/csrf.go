package web

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
)

// CSRF protection is a signed double submit: a random value in a cookie, and in every
// form an HMAC of it under the server secret. A forged form on another site can read
// neither; a sibling subdomain that plants its own cookie cannot compute the HMAC.
// Nothing is stored on the server, so anonymous visitors create no state.

const csrfCookie = "gatehouse_csrf"

func (s *Server) csrfMAC(value string) string {
	m := hmac.New(sha256.New, s.secret)
	m.Write([]byte("csrf:" + value))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// csrfToken returns the token for the form being rendered, setting the cookie when the
// browser has none yet.
func (s *Server) csrfToken(w http.ResponseWriter, r *http.Request) string {
	if c, err := r.Cookie(csrfCookie); err == nil && len(c.Value) == 43 {
		return s.csrfMAC(c.Value)
	}
	value := randomToken()
	http.SetCookie(w, &http.Cookie{Name: csrfCookie, Value: value, Path: "/", HttpOnly: true,
		Secure: s.cfg().SecureCookies(), SameSite: http.SameSiteLaxMode})
	return s.csrfMAC(value)
}

// csrfValid checks a posted form's token against the cookie in constant time.
func (s *Server) csrfValid(r *http.Request) bool {
	c, err := r.Cookie(csrfCookie)
	if err != nil || len(c.Value) != 43 {
		return false
	}
	return hmac.Equal([]byte(r.PostFormValue("csrf_token")), []byte(s.csrfMAC(c.Value)))
}
