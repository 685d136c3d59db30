// Package signed owns values that carry state through the browser instead of the
// server: a login that still needs its second factor, a TOTP secret waiting to be
// confirmed, a WebAuthn challenge, an OpenID Connect request awaiting consent. They are
// HMACs under the server secret, bound to a purpose and an expiry, so nothing is stored
// for them and a visitor can neither forge nor reuse one for something else.
package signed

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"strconv"
	"strings"
	"time"
)

// MaxLen bounds a signed value Open accepts, so a hostile one costs nothing to refuse.
const MaxLen = 8192

// Key signs and opens values. The zero Key is unusable: set it to the server secret.
type Key []byte

// Sign returns fields signed for purpose, valid for ttl. Fields must not contain NUL.
func (k Key) Sign(purpose string, ttl time.Duration, fields ...string) string {
	payload := strconv.FormatInt(time.Now().Add(ttl).Unix(), 10) + "\x00" + strings.Join(fields, "\x00")
	return base64.RawURLEncoding.EncodeToString([]byte(payload)) + "." + base64.RawURLEncoding.EncodeToString(k.mac(purpose, payload))
}

// Open returns the fields of a valid, unexpired value signed for purpose, which must
// hold exactly want fields.
func (k Key) Open(purpose, value string, want int) ([]string, bool) {
	if len(value) > MaxLen {
		return nil, false
	}
	p64, mac64, ok := strings.Cut(value, ".")
	payload, err1 := base64.RawURLEncoding.DecodeString(p64)
	mac, err2 := base64.RawURLEncoding.DecodeString(mac64)
	if !ok || err1 != nil || err2 != nil || !hmac.Equal(mac, k.mac(purpose, string(payload))) {
		return nil, false
	}
	parts := strings.Split(string(payload), "\x00")
	expiry, err := strconv.ParseInt(parts[0], 10, 64)
	if err != nil || time.Now().Unix() > expiry || len(parts)-1 != want {
		return nil, false
	}
	return parts[1:], true
}

func (k Key) mac(purpose, payload string) []byte {
	m := hmac.New(sha256.New, k)
	m.Write([]byte(purpose + "\x00" + payload))
	return m.Sum(nil)
}
