package oidc

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/gatehouse-id/gatehouse/internal/store"
)

// Signing keys live in the database so that every replica signs with, and publishes,
// the same keys. The private half is sealed with AES-256-GCM under a key derived from
// the server secret: a copy of the database alone does not let anyone mint ID tokens.
//
// A new key is published at once but signs only once it has been published for
// publishAhead, longer than apps may cache the JWKS (its max-age) plus the time replicas
// cache keys: an app that fetched the key set just before the rotation still knows the
// key of every token it is handed. The newest key that old signs (on a new install,
// the only key signs at once: nobody can have cached a key set without it). A key is
// deleted once every ID token it could have signed has expired; until then the JWKS
// still publishes it.

// keyCacheTTL is how long a replica signs with the keys it read before reading again:
// a rotation by another replica is picked up within this time.
const keyCacheTTL = 30 * time.Second

// jwksMaxAge is the Cache-Control max-age of the published key set.
const jwksMaxAge = 5 * time.Minute

// publishAhead is how long a new key is published before it signs.
const publishAhead = jwksMaxAge + keyCacheTTL + 30*time.Second

type signingKey struct {
	id      string
	alg     jose.SignatureAlgorithm
	created time.Time
	private crypto.Signer
}

func (k signingKey) public() jose.JSONWebKey {
	return jose.JSONWebKey{Key: k.private.Public(), KeyID: k.id, Algorithm: string(k.alg), Use: "sig"}
}

type keyring struct {
	mu     sync.Mutex
	keys   []signingKey // newest first
	loaded time.Time
}

// sealPurpose names the server key's sealer for signing keys (serverkey.Key.Sealer):
// the same derivation Gatehouse has always used, so keys sealed before stay openable.
const sealPurpose = "gatehouse oidc signing keys"

func (p *Provider) seal(der []byte) string {
	return base64.RawStdEncoding.EncodeToString(p.key.Sealer(sealPurpose).Seal(der))
}

func (p *Provider) unseal(id, sealed string) (crypto.Signer, error) {
	raw, err := base64.RawStdEncoding.DecodeString(sealed)
	if err != nil {
		return nil, fmt.Errorf("signing key %s is damaged in the database", id)
	}
	der, err := p.key.Sealer(sealPurpose).Open(raw)
	if err != nil {
		return nil, fmt.Errorf("signing key %s cannot be opened with this server key "+
			"(was server.secret or the key file changed?): rotate keys with 'gatehouse oidc rotate-keys'", id)
	}
	key, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w", id, err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("signing key %s is not a signing key", id)
	}
	return signer, nil
}

// keys returns the signing keys, newest first, reading them again when the cached copy
// is older than keyCacheTTL or force is set. Keys that cannot be opened are skipped
// with a log line, so one bad key does not stop sign-ins.
func (p *Provider) keys(ctx context.Context, force bool) ([]signingKey, error) {
	p.ring.mu.Lock()
	defer p.ring.mu.Unlock()
	if !force && p.ring.keys != nil && time.Since(p.ring.loaded) < keyCacheTTL {
		return p.ring.keys, nil
	}
	stored, err := p.Store.OIDCKeys(ctx)
	if err != nil {
		return nil, err
	}
	keys := make([]signingKey, 0, len(stored))
	for _, k := range stored {
		signer, err := p.unseal(k.ID, k.PrivateKey)
		if err != nil {
			p.Log.Error("an OpenID Connect signing key is unusable", "key", k.ID, "error", err.Error())
			continue
		}
		keys = append(keys, signingKey{id: k.ID, alg: jose.SignatureAlgorithm(k.Algorithm), created: k.CreatedAt, private: signer})
	}
	p.ring.keys, p.ring.loaded = keys, time.Now()
	return keys, nil
}

// signer returns the key that signs now, making the first one if there is none.
func (p *Provider) signer(ctx context.Context) (signingKey, error) {
	keys, err := p.keys(ctx, false)
	if err == nil && len(keys) == 0 {
		if _, err = p.RotateKeys(ctx); err == nil {
			keys, err = p.keys(ctx, true)
		}
	}
	if err != nil {
		return signingKey{}, err
	}
	if len(keys) == 0 {
		return signingKey{}, errors.New("no usable OpenID Connect signing key")
	}
	return signingKeyOf(keys, time.Now()), nil
}

func signingKeyOf(keys []signingKey, now time.Time) signingKey {
	created := make([]time.Time, len(keys))
	for i, k := range keys {
		created[i] = k.created
	}
	return keys[SigningIndex(created, now)]
}

// SigningIndex says which of the keys made at created (newest first, at least one)
// signs at now: the newest published for publishAhead, or, when none is that old, the
// oldest. Keys before it are published and waiting; keys after it are retired.
func SigningIndex(created []time.Time, now time.Time) int {
	for i, c := range created {
		if now.Sub(c) >= publishAhead {
			return i
		}
	}
	return len(created) - 1
}

// RotateKeys makes a new signing key with the configured algorithm, published at once
// and signing once it has been published for publishAhead, and returns its id.
func (p *Provider) RotateKeys(ctx context.Context) (string, error) {
	alg := p.cfg().OIDC.SigningAlgorithm
	var priv crypto.Signer
	var err error
	if alg == "ES256" {
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	} else {
		alg = "RS256"
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	}
	if err != nil {
		return "", err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return "", err
	}
	var idBytes [12]byte
	_, _ = rand.Read(idBytes[:])
	id := base64.RawURLEncoding.EncodeToString(idBytes[:])
	if err := p.Store.AddOIDCKey(ctx, store.OIDCKey{ID: id, Algorithm: alg, PrivateKey: p.seal(der), CreatedAt: time.Now()}); err != nil {
		return "", err
	}
	p.Log.Info("new OpenID Connect signing key", "key", id, "algorithm", alg)
	_, err = p.keys(ctx, true)
	return id, err
}

// EnsureKey makes the first signing key unless there is one; a replica calls it before
// it serves, so tokens are signed with a key every replica already publishes.
func (p *Provider) EnsureKey(ctx context.Context) error {
	_, err := p.signer(ctx)
	return err
}

// MaintainKeys makes the first key, rotates the signing key when it is older than
// oidc.key_rotation, and deletes keys that cannot have signed an unexpired token. The
// housekeeping lease holder runs it every 10 minutes.
func (p *Provider) MaintainKeys(ctx context.Context) error {
	keys, err := p.keys(ctx, true)
	if err != nil {
		return err
	}
	if len(keys) == 0 || time.Since(keys[0].created) > p.cfg().OIDC.KeyRotation.D() {
		if _, err := p.RotateKeys(ctx); err != nil {
			return err
		}
		if keys, err = p.keys(ctx, true); err != nil {
			return err
		}
	}
	// Key i signed until key i-1 had been published for publishAhead (plus the cache
	// time of other replicas); the tokens it signed last expire one ID-token lifetime
	// later.
	keep := p.longestIDTokenLifetime() + publishAhead + keyCacheTTL + time.Minute
	for i := 1; i < len(keys); i++ {
		if time.Since(keys[i-1].created) > keep {
			if err := p.Store.DeleteOIDCKey(ctx, keys[i].id); err != nil && !errors.Is(err, store.ErrNotFound) {
				return err
			}
			p.Log.Info("retired OpenID Connect signing key deleted", "key", keys[i].id)
		}
	}
	_, err = p.keys(ctx, true)
	return err
}

func (p *Provider) longestIDTokenLifetime() time.Duration {
	longest := time.Hour
	for i := range p.cfg().OIDC.Clients {
		if _, id, _ := p.cfg().OIDC.Clients[i].Lifetimes(); id > longest {
			longest = id
		}
	}
	return longest
}

// sign makes a compact JWS of claims with the current key.
func (p *Provider) sign(ctx context.Context, claims any) (string, error) {
	return p.signTyped(ctx, "JWT", claims)
}

// signTyped signs with a JOSE typ header of its own, which keeps one kind of token
// from passing for another ("logout+jwt" is never an ID token).
func (p *Provider) signTyped(ctx context.Context, typ jose.ContentType, claims any) (string, error) {
	k, err := p.signer(ctx)
	if err != nil {
		return "", err
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: k.alg, Key: jose.JSONWebKey{Key: k.private, KeyID: k.id}},
		(&jose.SignerOptions{}).WithType(typ))
	if err != nil {
		return "", err
	}
	return signClaims(s, claims)
}

// verify checks a JWS signed by one of the published keys and returns its payload.
// Expiry is the caller's business (an expired id_token_hint is still a good hint).
func (p *Provider) verify(ctx context.Context, token string) ([]byte, error) {
	jws, err := jose.ParseSigned(token, []jose.SignatureAlgorithm{jose.RS256, jose.ES256})
	if err != nil || len(jws.Signatures) != 1 {
		return nil, errors.New("not a signed token")
	}
	kid := jws.Signatures[0].Header.KeyID
	for _, force := range []bool{false, true} {
		keys, err := p.keys(ctx, force)
		if err != nil {
			return nil, err
		}
		for _, k := range keys {
			if k.id == kid {
				return jws.Verify(k.private.Public())
			}
		}
	}
	return nil, errors.New("signed by a key Gatehouse does not have")
}
