package upstream

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/gatehouse-id/gatehouse/internal/config"
)

// fakeOP is a provider whose token endpoint answers with whatever ID token the test
// makes, signed by its published key or another.
type fakeOP struct {
	srv      *httptest.Server
	key      *ecdsa.PrivateKey
	issuer   string // what its discovery document names
	idToken  func(claims map[string]any) map[string]any
	sign     *ecdsa.PrivateKey // nil: key
	userinfo map[string]any
}

func newFakeOP(t *testing.T) *fakeOP {
	op := &fakeOP{}
	op.key, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	mux := http.NewServeMux()
	op.srv = httptest.NewServer(mux)
	t.Cleanup(op.srv.Close)
	op.issuer = op.srv.URL
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]any{"issuer": op.issuer, "authorization_endpoint": op.srv.URL + "/authorize",
			"token_endpoint": op.srv.URL + "/token", "userinfo_endpoint": op.srv.URL + "/userinfo", "jwks_uri": op.srv.URL + "/jwks"})
	})
	mux.HandleFunc("/jwks", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &op.key.PublicKey, KeyID: "k1", Algorithm: "ES256", Use: "sig"}}})
	})
	mux.HandleFunc("/token", func(w http.ResponseWriter, r *http.Request) {
		if id, secret, ok := r.BasicAuth(); !ok || id != "gatehouse" || secret != "s3cret" || r.PostFormValue("code_verifier") == "" {
			w.WriteHeader(http.StatusUnauthorized)
			json.NewEncoder(w).Encode(map[string]string{"error": "invalid_client"})
			return
		}
		claims := map[string]any{"iss": op.srv.URL, "sub": "u1", "aud": "gatehouse", "exp": time.Now().Add(time.Minute).Unix(), "iat": time.Now().Unix(),
			"nonce": "n1", "email": "ann@example.com", "email_verified": "true"}
		if op.idToken != nil {
			claims = op.idToken(claims)
		}
		signer := op.sign
		if signer == nil {
			signer = op.key
		}
		s, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: signer, KeyID: "k1"}}, nil)
		raw, _ := jwt.Signed(s).Claims(claims).Serialize()
		json.NewEncoder(w).Encode(map[string]string{"id_token": raw, "access_token": "at", "token_type": "Bearer"})
	})
	mux.HandleFunc("/userinfo", func(w http.ResponseWriter, r *http.Request) { json.NewEncoder(w).Encode(op.userinfo) })
	return op
}

func (op *fakeOP) provider() config.LoginProvider {
	return config.LoginProvider{ID: "fake", Type: "oidc", Issuer: op.srv.URL, ClientID: "gatehouse", ClientSecret: "s3cret"}
}

// Only an ID token that is the provider's, for Gatehouse, unexpired, carrying this
// sign-in's nonce, is believed; an email is verified only when the provider says so.
func TestExchangeChecksTheIDToken(t *testing.T) {
	ctx := context.Background()
	op := newFakeOP(t)
	c := &Client{}
	res, err := c.Exchange(ctx, op.provider(), "https://auth.example.com/cb", "code", "verifier", "n1")
	if err != nil || res.Subject != "u1" || res.Email != "ann@example.com" || !res.EmailVerified || res.Provider != "fake" {
		t.Fatalf("a good token: %+v, %v", res, err)
	}
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	for what, change := range map[string]func(map[string]any) map[string]any{
		"another nonce":       func(c map[string]any) map[string]any { c["nonce"] = "n2"; return c },
		"no nonce":            func(c map[string]any) map[string]any { delete(c, "nonce"); return c },
		"another audience":    func(c map[string]any) map[string]any { c["aud"] = "grafana"; return c },
		"two audiences":       func(c map[string]any) map[string]any { c["aud"] = []string{"gatehouse", "grafana"}; return c },
		"another issuer":      func(c map[string]any) map[string]any { c["iss"] = "https://evil.example.com"; return c },
		"expired":             func(c map[string]any) map[string]any { c["exp"] = time.Now().Add(-2 * time.Minute).Unix(); return c },
		"no expiry":           func(c map[string]any) map[string]any { delete(c, "exp"); return c },
		"no subject":          func(c map[string]any) map[string]any { delete(c, "sub"); return c },
		"issued in an hour":   func(c map[string]any) map[string]any { c["iat"] = time.Now().Add(time.Hour).Unix(); return c },
		"not valid before 1h": func(c map[string]any) map[string]any { c["nbf"] = time.Now().Add(time.Hour).Unix(); return c },
	} {
		op.idToken = change
		if res, err := c.Exchange(ctx, op.provider(), "https://auth.example.com/cb", "code", "verifier", "n1"); err == nil {
			t.Errorf("%s: believed %+v", what, res)
		}
	}
	op.idToken = nil
	op.sign = other
	if _, err := c.Exchange(ctx, op.provider(), "https://auth.example.com/cb", "code", "verifier", "n1"); err == nil || !strings.Contains(err.Error(), "signature") {
		t.Errorf("a token signed by another key: %v", err)
	}
	op.sign = nil
	op.idToken = func(c map[string]any) map[string]any {
		c["aud"] = []string{"gatehouse", "grafana"}
		c["azp"] = "gatehouse"
		return c
	}
	if _, err := c.Exchange(ctx, op.provider(), "https://auth.example.com/cb", "code", "verifier", "n1"); err != nil {
		t.Errorf("two audiences with azp gatehouse: %v", err)
	}

	// Claims the ID token leaves out come from userinfo, for the same subject only.
	op.idToken = func(c map[string]any) map[string]any { delete(c, "email"); delete(c, "email_verified"); return c }
	op.userinfo = map[string]any{"sub": "u1", "email": "ann@example.com", "email_verified": false, "preferred_username": "ann"}
	if res, err := c.Exchange(ctx, op.provider(), "https://auth.example.com/cb", "code", "verifier", "n1"); err != nil || res.EmailVerified || res.PreferredUsername != "ann" {
		t.Errorf("email from userinfo, unverified: %+v, %v", res, err)
	}
	op.userinfo = map[string]any{"sub": "someone-else", "email": "root@example.com", "email_verified": true}
	if _, err := c.Exchange(ctx, op.provider(), "https://auth.example.com/cb", "code", "verifier", "n1"); err == nil {
		t.Error("userinfo about another subject was believed")
	}

	// A wrong secret is the provider's refusal, named.
	p := op.provider()
	p.ClientSecret = "wrong"
	if _, err := c.Exchange(ctx, p, "https://auth.example.com/cb", "code", "verifier", "n1"); err == nil || !strings.Contains(err.Error(), "invalid_client") {
		t.Errorf("a wrong client secret: %v", err)
	}
}

// A discovery document naming another issuer is refused; the authorization request
// carries PKCE S256, the nonce and the state.
func TestDiscoveryAndAuthURL(t *testing.T) {
	op := newFakeOP(t)
	c := &Client{}
	target, err := c.AuthURL(context.Background(), op.provider(), "https://auth.example.com/cb", "st", "n1", "verifier")
	if err != nil || !strings.Contains(target, "code_challenge_method=S256") || !strings.Contains(target, "code_challenge="+Challenge("verifier")) ||
		!strings.Contains(target, "nonce=n1") || !strings.Contains(target, "state=st") || !strings.Contains(target, "scope=openid+profile+email") {
		t.Fatalf("auth URL %q, %v", target, err)
	}
	op2 := newFakeOP(t)
	op2.issuer = "https://accounts.example.com"
	if _, err := (&Client{}).AuthURL(context.Background(), op2.provider(), "https://auth.example.com/cb", "st", "n1", "v"); err == nil || !strings.Contains(err.Error(), "names the issuer") {
		t.Fatalf("a discovery document naming another issuer: %v", err)
	}
}

// FuzzVerify hands arbitrary tokens to the ID token checks: refusals are fine, a
// panic or a token believed is not.
func FuzzVerify(f *testing.F) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	d := &discovered{meta: Metadata{Issuer: "https://op.example.com"}, keys: jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1"}}},
		fetched: time.Now().Add(time.Hour)} // fresh throughout: a fuzzed kid never sends the test to the network
	c := &Client{cache: map[string]*discovered{"https://op.example.com": d}}
	p := config.LoginProvider{ID: "fake", Issuer: "https://op.example.com", ClientID: "gatehouse"}
	f.Add("eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.")
	f.Add("eyJhbGciOiJFUzI1NiIsImtpZCI6ImsxIn0.e30.AAAA")
	f.Add("a.b.c")
	f.Fuzz(func(t *testing.T, raw string) {
		if claims, err := c.verify(context.Background(), p, d, raw, "n1"); err == nil {
			t.Fatalf("an unsigned token was believed: %+v", claims)
		}
	})
}
