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
		code := HumanCode(recoveryAlphabet, 5, 5)
		codes = append(codes, code)
		hashes = append(hashes, HashRecoveryCode(code))
	}
	return codes, hashes
}

// HumanCode returns a random code for people to read and type: groups of size
// characters from alphabet (at most 256 of them), joined by dashes, each character
// drawn uniformly (bytes that would favour the first letters are drawn again).
func HumanCode(alphabet string, groups ...int) string {
	limit := 256 - 256%len(alphabet)
	var sb strings.Builder
	var b [1]byte
	for g, size := range groups {
		if g > 0 {
			sb.WriteByte('-')
		}
		for n := 0; n < size; {
			_, _ = rand.Read(b[:])
			if int(b[0]) < limit {
				sb.WriteByte(alphabet[int(b[0])%len(alphabet)])
				n++
			}
		}
	}
	return sb.String()
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
