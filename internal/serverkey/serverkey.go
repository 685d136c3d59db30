// Package serverkey owns the key that protects Gatehouse's data, and keeps it out of
// the data it protects: a copy of the database alone must yield nothing usable (no
// signing key to mint ID tokens with, no authenticator-app secret, no way to forge a
// sign-in step). The key comes from server.secret (PostgreSQL: every replica is given
// the same one, for example from a Kubernetes Secret through GATEHOUSE_SERVER_SECRET_FILE)
// or, with SQLite and no server.secret, from a key file beside the database that is
// made at first start. Every use gets its own key derived from it.
package serverkey

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// Key is the server key. The zero Key is unusable.
type Key struct{ master []byte }

// New wraps key material of at least 32 bytes.
func New(master []byte) (Key, error) {
	if len(master) < 32 {
		return Key{}, fmt.Errorf("the server key is %d bytes long; it needs at least 32", len(master))
	}
	return Key{master: append([]byte(nil), master...)}, nil
}

// Generate makes new key material: 32 random bytes, hex-encoded so it can live in a
// text file, an environment variable or a Kubernetes Secret.
func Generate() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Derive returns the 32-byte key for one purpose ("csrf and signed pages", …): a
// value signed or sealed for one purpose is worthless for any other.
func (k Key) Derive(purpose string) []byte {
	sum := sha256.Sum256(append([]byte(purpose+"\x00"), k.master...))
	return sum[:]
}

// Sealer encrypts values at rest for one purpose with AES-256-GCM.
type Sealer struct{ aead cipher.AEAD }

// Sealer returns the sealer for purpose.
func (k Key) Sealer(purpose string) Sealer {
	block, _ := aes.NewCipher(k.Derive(purpose))
	aead, _ := cipher.NewGCM(block)
	return Sealer{aead}
}

// Seal encrypts plaintext under a fresh nonce.
func (s Sealer) Seal(plaintext []byte) []byte {
	nonce := make([]byte, s.aead.NonceSize())
	_, _ = rand.Read(nonce)
	return s.aead.Seal(nonce, nonce, plaintext, nil)
}

// ErrWrongKey means a sealed value does not open with this key: it was sealed under
// another server key, or altered.
var ErrWrongKey = errors.New("sealed with another server key, or altered")

// Open decrypts what Seal made.
func (s Sealer) Open(sealed []byte) ([]byte, error) {
	if len(sealed) < s.aead.NonceSize() {
		return nil, ErrWrongKey
	}
	out, err := s.aead.Open(nil, sealed[:s.aead.NonceSize()], sealed[s.aead.NonceSize():], nil)
	if err != nil {
		return nil, ErrWrongKey
	}
	return out, nil
}

// sealedPrefix marks a text value sealed by SealString, so values stored in the clear
// by an older Gatehouse can be told apart and sealed on upgrade.
const sealedPrefix = "sealed:v1:"

// SealString seals a text value for a text column.
func (s Sealer) SealString(plaintext string) string {
	return sealedPrefix + base64.RawStdEncoding.EncodeToString(s.Seal([]byte(plaintext)))
}

// OpenString opens what SealString made. A value without the sealed prefix was stored
// in the clear by an older Gatehouse: it is returned as it is, with sealed false.
func (s Sealer) OpenString(stored string) (plaintext string, sealed bool, err error) {
	b64, ok := strings.CutPrefix(stored, sealedPrefix)
	if !ok {
		return stored, false, nil
	}
	raw, err := base64.RawStdEncoding.DecodeString(b64)
	if err != nil {
		return "", true, ErrWrongKey
	}
	out, err := s.Open(raw)
	return string(out), true, err
}
