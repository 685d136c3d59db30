// Package mfa owns second factors that need no browser API: time-based one-time
// passwords (RFC 6238) and single-use recovery codes. It is pure computation; where
// secrets and used codes are stored is the store's business.
package mfa

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/base32"
	"encoding/binary"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// TOTP parameters every authenticator app understands: SHA-1, 6 digits, 30 s steps.
const (
	Digits = 6
	Period = 30 * time.Second
	// Skew is how many steps either side of now a code may come from, for phones whose
	// clocks drift: one step each way.
	Skew = 1
)

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// NewSecret returns a random 160-bit secret, base32-encoded as authenticator apps
// expect it to be typed or scanned.
func NewSecret() string {
	var b [20]byte
	_, _ = rand.Read(b[:])
	return b32.EncodeToString(b[:])
}

// Code returns the code for a secret at time step (unix time / Period).
func Code(secret string, step int64) (string, error) {
	key, err := b32.DecodeString(strings.ToUpper(strings.TrimRight(secret, "=")))
	if err != nil {
		return "", fmt.Errorf("TOTP secret is not base32: %w", err)
	}
	return hotp(key, uint64(step), Digits), nil
}

// hotp is RFC 4226's HOTP: HMAC-SHA-1 of the counter, dynamically truncated.
func hotp(key []byte, counter uint64, digits int) string {
	var msg [8]byte
	binary.BigEndian.PutUint64(msg[:], counter)
	m := hmac.New(sha1.New, key)
	m.Write(msg[:])
	sum := m.Sum(nil)
	off := sum[len(sum)-1] & 0x0f
	v := binary.BigEndian.Uint32(sum[off:off+4]) & 0x7fffffff
	mod := uint32(1)
	for range digits {
		mod *= 10
	}
	return fmt.Sprintf("%0*d", digits, v%mod)
}

// Step is the time step a moment falls in.
func Step(t time.Time) int64 { return t.Unix() / int64(Period/time.Second) }

// Verify checks a code typed at time now against the secret, allowing Skew steps either
// side, and refuses any step at or before lastUsed: a code, once accepted, cannot be
// replayed within its window. It returns the step that matched, to be stored as the
// new lastUsed.
func Verify(secret, code string, now time.Time, lastUsed int64) (int64, bool) {
	code = strings.ReplaceAll(strings.TrimSpace(code), " ", "")
	if len(code) != Digits {
		return 0, false
	}
	cur := Step(now)
	matched, found := int64(0), false
	for step := cur - Skew; step <= cur+Skew; step++ {
		want, err := Code(secret, step)
		if err != nil {
			return 0, false
		}
		// Compare every candidate in constant time, and keep going after a match, so
		// the time taken does not tell which step matched.
		if subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 && step > lastUsed && !found {
			matched, found = step, true
		}
	}
	return matched, found
}

// URI is the otpauth:// link an authenticator app scans from a QR code.
func URI(issuer, account, secret string) string {
	label := url.PathEscape(issuer) + ":" + url.PathEscape(account)
	q := url.Values{"secret": {secret}, "issuer": {issuer}, "algorithm": {"SHA1"}, "digits": {fmt.Sprint(Digits)},
		"period": {fmt.Sprint(int(Period / time.Second))}}
	return "otpauth://totp/" + label + "?" + q.Encode()
}
