// Package identity owns who a person is: username rules, password hashing with argon2id,
// and the effective groups a user holds through group parents.
package identity

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"runtime"
	"strings"

	"github.com/gatehouse-id/gatehouse/internal/config"
	"golang.org/x/crypto/argon2"
)

// Argon2id parameters: OWASP's recommended minimum (19 MiB, 2 passes, 1 lane). Each
// hash held in memory costs 19 MiB, so Hasher bounds how many run at once.
const (
	argonMemoryKiB = 19 * 1024
	argonTime      = 2
	argonThreads   = 1
	argonKeyLen    = 32
	argonSaltLen   = 16
)

// MaxPasswordBytes bounds what is hashed: argon2 would hash 10 MB, but nobody types it.
const MaxPasswordBytes = 1024

// MinPasswordChars is the shortest password accepted when one is set.
const MinPasswordChars = 8

// ErrPasswordMismatch means the password does not match the stored hash.
var ErrPasswordMismatch = errors.New("password does not match")

// dummyHash is a real hash at the current parameters, verified against when a user does
// not exist or has no password, so that those answers take as long as a wrong password.
// It is a constant rather than computed at start: computing it would allocate argon2's
// 19 MiB at every start, which the Go runtime then holds for minutes as idle RSS.
const dummyHash = "$argon2id$v=19$m=19456,t=2,p=1$yZhHT0VpFc++45mkSXcPNA$OkE14MySignNsgc1v+vWMuXueDBpOrDCjdXqkMqJ/98"

// Hasher hashes and verifies passwords with argon2id, running at most a fixed number
// at once: a burst of logins queues instead of exhausting memory.
type Hasher struct {
	slots chan struct{}
}

// NewHasher allows concurrent hashes (0: one per CPU, at least 2).
func NewHasher(concurrent int) *Hasher {
	if concurrent <= 0 {
		concurrent = max(2, runtime.NumCPU())
	}
	return &Hasher{slots: make(chan struct{}, concurrent)}
}

// CheckPassword says what is wrong with a new password, or nil.
func CheckPassword(pw string) error {
	switch {
	case len(pw) > MaxPasswordBytes:
		return invalidf("password", "password is longer than %d bytes", MaxPasswordBytes)
	case len([]rune(pw)) < MinPasswordChars:
		return invalidf("password", "password is shorter than %d characters", MinPasswordChars)
	}
	return nil
}

// Hash returns a PHC-formatted argon2id hash of pw.
func (h *Hasher) Hash(ctx context.Context, pw string) (string, error) {
	if len(pw) > MaxPasswordBytes {
		return "", fmt.Errorf("password is longer than %d bytes", MaxPasswordBytes)
	}
	if err := h.acquire(ctx); err != nil {
		return "", err
	}
	defer h.release()
	return h.hash(pw)
}

func (h *Hasher) hash(pw string) (string, error) {
	salt := make([]byte, argonSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	key := argon2.IDKey([]byte(pw), salt, argonTime, argonMemoryKiB, argonThreads, argonKeyLen)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemoryKiB, argonTime, argonThreads,
		b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// Verify checks pw against a stored hash in constant time. An empty hash (no password
// set) is checked against a dummy hash, so that a missing user or password costs the
// same time as a wrong one, and always fails.
func (h *Hasher) Verify(ctx context.Context, encoded, pw string) error {
	if len(pw) > MaxPasswordBytes {
		return ErrPasswordMismatch
	}
	if err := h.acquire(ctx); err != nil {
		return err
	}
	defer h.release()
	target := encoded
	if target == "" {
		target = dummyHash
	}
	p, err := parsePHC(target)
	if err != nil {
		return err
	}
	key := argon2.IDKey([]byte(pw), p.salt, p.time, p.memory, p.threads, uint32(len(p.key)))
	if subtle.ConstantTimeCompare(key, p.key) != 1 || encoded == "" {
		return ErrPasswordMismatch
	}
	return nil
}

func (h *Hasher) acquire(ctx context.Context) error {
	select {
	case h.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (h *Hasher) release() { <-h.slots }

type phc struct {
	memory, time uint32
	threads      uint8
	salt, key    []byte
}

func parsePHC(s string) (phc, error) {
	var p phc
	parts := strings.Split(s, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return p, errors.New("stored password hash is not an argon2id hash: reset the password with `gatehouse user passwd`")
	}
	var version int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return p, fmt.Errorf("stored password hash has argon2 version %q, want v=%d", parts[2], argon2.Version)
	}
	if err := config.CheckArgon2idParameters(s); err != nil {
		return p, fmt.Errorf("stored password hash: %w", err)
	}
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.memory, &p.time, &p.threads); err != nil {
		return p, fmt.Errorf("stored password hash has unreadable parameters %q", parts[3])
	}
	var err1, err2 error
	p.salt, err1 = base64.RawStdEncoding.DecodeString(parts[4])
	p.key, err2 = base64.RawStdEncoding.DecodeString(parts[5])
	if err1 != nil || err2 != nil || len(p.key) == 0 || p.memory > 1<<22 || p.time == 0 || p.threads == 0 {
		return p, errors.New("stored password hash is corrupt: reset the password with `gatehouse user passwd`")
	}
	return p, nil
}
