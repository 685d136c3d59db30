// Package fakeidp owns stand-ins for identity providers that cannot be reached from
// the tests — Google, GitHub, Facebook — each following its provider's documented
// endpoints and answer shapes: Google's OpenID Connect (discovery, keys, token,
// userinfo, the hd claim), GitHub's OAuth app flow (/login/oauth/authorize and
// access_token, /user, /user/emails, /user/orgs) and Facebook Login (the dialog,
// oauth/access_token, /me?fields=). A test says who signs in next; the provider's
// authorization step then answers at once, as if that person had consented.
package fakeidp

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// Person is whoever signs in at the provider next.
type Person struct {
	ID, Login, Name string
	Email           string
	EmailVerified   bool
	HostedDomain    string   // Google: the Workspace domain (hd); "" for a personal account
	Orgs            []string // GitHub: organizations
}

// Provider is one fake identity provider on loopback.
type Provider struct {
	URL          string // its base URL (the OpenID issuer for Google)
	ClientID     string
	ClientSecret string

	srv   *httptest.Server
	key   *ecdsa.PrivateKey
	mu    sync.Mutex
	next  Person
	codes map[string]grant // code → who and with which nonce and PKCE challenge
	seen  []url.Values     // authorization requests, for the test to inspect
}

type grant struct {
	who                  Person
	nonce, challenge, cb string
}

// SignInAs makes who the next person to sign in.
func (p *Provider) SignInAs(who Person) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.next = who
}

// LastRequest is the query of the last authorization request.
func (p *Provider) LastRequest() url.Values {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.seen) == 0 {
		return nil
	}
	return p.seen[len(p.seen)-1]
}

func newProvider(t testing.TB) (*Provider, *http.ServeMux) {
	p := &Provider{ClientID: "gatehouse-client", ClientSecret: "gatehouse-secret-0123456789", codes: map[string]grant{}}
	p.key, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	mux := http.NewServeMux()
	p.srv = httptest.NewServer(mux)
	p.URL = p.srv.URL
	t.Cleanup(p.srv.Close)
	return p, mux
}

// authorize answers an authorization request at once: back to redirect_uri with a
// code for the next person, and the state.
func (p *Provider) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	p.mu.Lock()
	p.seen = append(p.seen, q)
	code := randomHex()
	p.codes[code] = grant{who: p.next, nonce: q.Get("nonce"), challenge: q.Get("code_challenge"), cb: q.Get("redirect_uri")}
	p.mu.Unlock()
	if q.Get("client_id") != p.ClientID {
		http.Error(w, "unknown client_id", http.StatusBadRequest)
		return
	}
	back, _ := url.Parse(q.Get("redirect_uri"))
	bq := back.Query()
	bq.Set("code", code)
	bq.Set("state", q.Get("state"))
	back.RawQuery = bq.Encode()
	http.Redirect(w, r, back.String(), http.StatusFound)
}

// redeem spends a code once, for the client that holds the secret.
func (p *Provider) redeem(r *http.Request) (grant, bool) {
	id, secret, basic := r.BasicAuth()
	if !basic {
		id, secret = r.PostFormValue("client_id"), r.PostFormValue("client_secret")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	g, ok := p.codes[r.FormValue("code")]
	delete(p.codes, r.FormValue("code"))
	if !ok || id != p.ClientID || secret != p.ClientSecret || g.cb != r.FormValue("redirect_uri") {
		return grant{}, false
	}
	return g, true
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func randomHex() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// tokens remembers whom an access token was given to.
type tokens struct {
	mu sync.Mutex
	m  map[string]Person
}

func (t *tokens) issue(who Person) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m == nil {
		t.m = map[string]Person{}
	}
	tok := "at-" + randomHex()
	t.m[tok] = who
	return tok
}

func (t *tokens) who(r *http.Request) (Person, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	tok := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	if tok == "" {
		tok = r.URL.Query().Get("access_token")
	}
	p, ok := t.m[tok]
	return p, ok
}

// Google stands in for Google's OpenID Connect: its issuer is the server's URL.
func Google(t testing.TB) *Provider {
	p, mux := newProvider(t)
	var toks tokens
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]any{"issuer": p.URL, "authorization_endpoint": p.URL + "/o/oauth2/v2/auth", "token_endpoint": p.URL + "/token",
			"userinfo_endpoint": p.URL + "/v1/userinfo", "jwks_uri": p.URL + "/oauth2/v3/certs",
			"token_endpoint_auth_methods_supported": []string{"client_secret_post", "client_secret_basic"}})
	})
	mux.HandleFunc("GET /oauth2/v3/certs", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &p.key.PublicKey, KeyID: "g1", Algorithm: "ES256", Use: "sig"}}})
	})
	mux.HandleFunc("GET /o/oauth2/v2/auth", p.authorize)
	mux.HandleFunc("POST /token", func(w http.ResponseWriter, r *http.Request) {
		g, ok := p.redeem(r)
		if !ok {
			writeJSON(w, 400, map[string]string{"error": "invalid_grant"})
			return
		}
		claims := map[string]any{"iss": p.URL, "aud": p.ClientID, "azp": p.ClientID, "sub": g.who.ID, "email": g.who.Email,
			"email_verified": g.who.EmailVerified, "name": g.who.Name, "nonce": g.nonce, "iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix()}
		if g.who.HostedDomain != "" {
			claims["hd"] = g.who.HostedDomain
		}
		signer, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: p.key, KeyID: "g1"}}, nil)
		idToken, _ := jwt.Signed(signer).Claims(claims).Serialize()
		writeJSON(w, 200, map[string]any{"access_token": toks.issue(g.who), "id_token": idToken, "token_type": "Bearer", "expires_in": 3599})
	})
	mux.HandleFunc("GET /v1/userinfo", func(w http.ResponseWriter, r *http.Request) {
		who, ok := toks.who(r)
		if !ok {
			writeJSON(w, 401, map[string]string{"error": "invalid_token"})
			return
		}
		writeJSON(w, 200, map[string]any{"sub": who.ID, "email": who.Email, "email_verified": who.EmailVerified, "name": who.Name})
	})
	return p
}

// GitHub stands in for GitHub's OAuth app flow; its API is at URL + "/api".
func GitHub(t testing.TB) *Provider {
	p, mux := newProvider(t)
	var toks tokens
	mux.HandleFunc("GET /login/oauth/authorize", p.authorize)
	mux.HandleFunc("POST /login/oauth/access_token", func(w http.ResponseWriter, r *http.Request) {
		g, ok := p.redeem(r)
		if !ok {
			writeJSON(w, 200, map[string]string{"error": "bad_verification_code", "error_description": "The code passed is incorrect or expired."}) // GitHub's way: 200
			return
		}
		writeJSON(w, 200, map[string]string{"access_token": toks.issue(g.who), "token_type": "bearer", "scope": "read:user,user:email"})
	})
	person := func(w http.ResponseWriter, r *http.Request) (Person, bool) {
		who, ok := toks.who(r)
		if !ok {
			writeJSON(w, 401, map[string]string{"message": "Bad credentials"})
		}
		return who, ok
	}
	mux.HandleFunc("GET /api/user", func(w http.ResponseWriter, r *http.Request) {
		if who, ok := person(w, r); ok {
			var id int64
			json.Unmarshal([]byte(who.ID), &id)
			writeJSON(w, 200, map[string]any{"id": id, "login": who.Login, "name": who.Name, "email": nil})
		}
	})
	mux.HandleFunc("GET /api/user/emails", func(w http.ResponseWriter, r *http.Request) {
		if who, ok := person(w, r); ok {
			writeJSON(w, 200, []map[string]any{{"email": who.Login + "@users.noreply.github.com", "primary": false, "verified": true, "visibility": nil},
				{"email": who.Email, "primary": true, "verified": who.EmailVerified, "visibility": "private"}})
		}
	})
	mux.HandleFunc("GET /api/user/orgs", func(w http.ResponseWriter, r *http.Request) {
		if who, ok := person(w, r); ok {
			orgs := []map[string]any{}
			for _, o := range who.Orgs {
				orgs = append(orgs, map[string]any{"login": o, "id": 1})
			}
			writeJSON(w, 200, orgs)
		}
	})
	return p
}

// Facebook stands in for Facebook Login; its Graph API is at URL + "/v21.0".
func Facebook(t testing.TB) *Provider {
	p, mux := newProvider(t)
	var toks tokens
	mux.HandleFunc("GET /v21.0/dialog/oauth", p.authorize)
	mux.HandleFunc("POST /v21.0/oauth/access_token", func(w http.ResponseWriter, r *http.Request) {
		g, ok := p.redeem(r)
		if !ok {
			writeJSON(w, 400, map[string]any{"error": map[string]any{"message": "Invalid verification code format.", "type": "OAuthException", "code": 100}})
			return
		}
		writeJSON(w, 200, map[string]any{"access_token": toks.issue(g.who), "token_type": "bearer", "expires_in": 5183944})
	})
	mux.HandleFunc("GET /v21.0/me", func(w http.ResponseWriter, r *http.Request) {
		who, ok := toks.who(r)
		if !ok {
			writeJSON(w, 400, map[string]any{"error": map[string]any{"message": "Invalid OAuth access token.", "type": "OAuthException", "code": 190}})
			return
		}
		writeJSON(w, 200, map[string]any{"id": who.ID, "name": who.Name, "email": who.Email})
	})
	return p
}
