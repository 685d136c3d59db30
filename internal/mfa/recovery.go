package mfa

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"strings"
)

// RecoveryCodeCount is how many recovery codes a user gets at a time.
const RecoveryCodeCount = 10

// recoveryAlphabet has no look-alikes (no 0/O, 1/l/I), for codes copied by hand.
const recoveryAlphabet = "23456789abcdefghjkmnpqrstuvwxyz"

// NewRecoveryCodes returns codes to show the user once, and their hashes to store.
// Each code carries 10 random characters (about 50 bits), so a fast hash is enough:
// nobody can enumerate 2^50 guesses past login throttling.
func NewRecoveryCodes() (codes, hashes []string) {
	for range RecoveryCodeCount {
		var b [10]byte
		_, _ = rand.Read(b[:])
		var sb strings.Builder
		for i, c := range b {
			if i == 5 {
				sb.WriteByte('-')
			}
			sb.WriteByte(recoveryAlphabet[int(c)%len(recoveryAlphabet)])
		}
		codes = append(codes, sb.String())
		hashes = append(hashes, HashRecoveryCode(sb.String()))
	}
	return codes, hashes
}

// HashRecoveryCode normalises a typed code (case, spaces, the dash) and hashes it.
func HashRecoveryCode(code string) string {
	norm := strings.ToLower(strings.NewReplacer(" ", "", "-", "").Replace(strings.TrimSpace(code)))
	sum := sha256.Sum256([]byte("gatehouse-recovery:" + norm))
	return hex.EncodeToString(sum[:])
}

// MatchRecoveryCode returns the index of the stored hash the typed code matches, or -1.
// Every hash is compared, in constant time, so timing tells nothing.
func MatchRecoveryCode(code string, hashes []string) int {
	h := []byte(HashRecoveryCode(code))
	found := -1
	for i, stored := range hashes {
		if subtle.ConstantTimeCompare(h, []byte(stored)) == 1 && found < 0 {
			found = i
		}
	}
	return found
}
