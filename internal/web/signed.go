package web

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"strconv"
	"strings"
	"time"
)

// Signed values carry state through the browser instead of the server: a login that
// still needs its second factor, or a TOTP secret waiting to be confirmed. They are
// HMACs under the server secret, bound to a purpose and an expiry, so nothing is
// stored for them and a visitor can neither forge nor reuse one for something else.

func (s *Server) sign(purpose string, ttl time.Duration, fields ...string) string {
	payload := strconv.FormatInt(time.Now().Add(ttl).Unix(), 10) + "\x00" + strings.Join(fields, "\x00")
	m := hmac.New(sha256.New, s.secret)
	m.Write([]byte(purpose + "\x00" + payload))
	return base64.RawURLEncoding.EncodeToString([]byte(payload)) + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// unsign returns the fields of a valid, unexpired value signed for purpose.
func (s *Server) unsign(purpose, value string, want int) ([]string, bool) {
	p64, mac64, ok := strings.Cut(value, ".")
	payload, err1 := base64.RawURLEncoding.DecodeString(p64)
	mac, err2 := base64.RawURLEncoding.DecodeString(mac64)
	if !ok || err1 != nil || err2 != nil || len(value) > 4096 {
		return nil, false
	}
	m := hmac.New(sha256.New, s.secret)
	m.Write([]byte(purpose + "\x00" + string(payload)))
	if !hmac.Equal(mac, m.Sum(nil)) {
		return nil, false
	}
	parts := strings.Split(string(payload), "\x00")
	expiry, err := strconv.ParseInt(parts[0], 10, 64)
	if err != nil || time.Now().Unix() > expiry || len(parts)-1 != want {
		return nil, false
	}
	return parts[1:], true
}
