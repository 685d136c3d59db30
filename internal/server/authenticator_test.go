package server

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"testing"

	"github.com/fxamacker/cbor/v2"
)

// softKey is a software passkey: an authenticator with one discoverable ES256
// credential that always verifies its user. It answers the options Gatehouse puts in
// its pages exactly as a browser would hand them to a real authenticator, so the
// server's WebAuthn checks run unchanged; the browser test uses Chromium's own
// virtual authenticator instead.
type softKey struct {
	id     []byte
	priv   *ecdsa.PrivateKey
	user   []byte // the user handle learnt at registration
	count  uint32
	rpID   string
	origin string
}

func newSoftKey(t *testing.T, publicURL string) *softKey {
	t.Helper()
	u, err := url.Parse(publicURL)
	if err != nil {
		t.Fatal(err)
	}
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id := make([]byte, 16)
	rand.Read(id)
	return &softKey{id: id, priv: priv, rpID: u.Hostname(), origin: u.Scheme + "://" + u.Host}
}

var b64 = base64.RawURLEncoding

func (k *softKey) authData(withKey bool) []byte {
	rp := sha256.Sum256([]byte(k.rpID))
	flags := byte(0x01 | 0x04) // user present, user verified
	if withKey {
		flags |= 0x40 // attested credential data follows
	}
	b := append(rp[:], flags)
	b = binary.BigEndian.AppendUint32(b, k.count)
	if withKey {
		b = append(b, make([]byte, 16)...) // AAGUID: none
		b = binary.BigEndian.AppendUint16(b, uint16(len(k.id)))
		b = append(b, k.id...)
		pub, _ := k.priv.PublicKey.ECDH()
		raw := pub.Bytes() // 0x04 | X | Y
		cose, _ := cbor.Marshal(map[int]any{1: 2, 3: -7, -1: 1, -2: raw[1:33], -3: raw[33:]})
		b = append(b, cose...)
	}
	return b
}

func clientData(typ, challenge, origin string) []byte {
	b, _ := json.Marshal(map[string]any{"type": typ, "challenge": challenge, "origin": origin, "crossOrigin": false})
	return b
}

// options pulls the WebAuthn options and the signed state out of a page's passkey form.
func passkeyForm(t testing.TB, page, mode string) (options map[string]any, state string) {
	t.Helper()
	m := regexp.MustCompile(`data-passkey="` + mode + `" data-options="([^"]*)"[^>]*>(?s:.*?)name="passkey_state" value="([^"]*)"`).FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no %q passkey form in the page:\n%s", mode, page)
	}
	var wrapper struct{ PublicKey map[string]any }
	if err := json.Unmarshal([]byte(html.UnescapeString(m[1])), &wrapper); err != nil {
		t.Fatalf("passkey options are not JSON: %v", err)
	}
	return wrapper.PublicKey, html.UnescapeString(m[2])
}

// register answers a page's registration options, as navigator.credentials.create.
func (k *softKey) register(t testing.TB, page string) (credential, state string) {
	t.Helper()
	opts, state := passkeyForm(t, page, "create")
	user := opts["user"].(map[string]any)
	var err error
	if k.user, err = b64.DecodeString(user["id"].(string)); err != nil {
		t.Fatalf("user handle: %v", err)
	}
	if opts["rp"].(map[string]any)["id"] != k.rpID {
		t.Fatalf("relying party %v, want %s", opts["rp"], k.rpID)
	}
	att, _ := cbor.Marshal(map[string]any{"fmt": "none", "attStmt": map[string]any{}, "authData": k.authData(true)})
	cred, _ := json.Marshal(map[string]any{
		"id": b64.EncodeToString(k.id), "rawId": b64.EncodeToString(k.id), "type": "public-key",
		"clientExtensionResults": map[string]any{},
		"response": map[string]any{
			"clientDataJSON":    b64.EncodeToString(clientData("webauthn.create", opts["challenge"].(string), k.origin)),
			"attestationObject": b64.EncodeToString(att), "transports": []string{"internal"},
		},
	})
	return string(cred), state
}

// assert answers a page's sign-in options, as navigator.credentials.get.
func (k *softKey) assert(t *testing.T, page string) (credential, state string) {
	t.Helper()
	opts, state := passkeyForm(t, page, "get")
	k.count++
	ad := k.authData(false)
	cd := clientData("webauthn.get", opts["challenge"].(string), k.origin)
	cdHash := sha256.Sum256(cd)
	digest := sha256.Sum256(append(append([]byte{}, ad...), cdHash[:]...))
	sig, err := ecdsa.SignASN1(rand.Reader, k.priv, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	cred, _ := json.Marshal(map[string]any{
		"id": b64.EncodeToString(k.id), "rawId": b64.EncodeToString(k.id), "type": "public-key",
		"clientExtensionResults": map[string]any{},
		"response": map[string]any{
			"clientDataJSON": b64.EncodeToString(cd), "authenticatorData": b64.EncodeToString(ad),
			"signature": b64.EncodeToString(sig), "userHandle": b64.EncodeToString(k.user),
		},
	})
	return string(cred), state
}

// addPasskey registers k for the user signed in with sess, as the account page does.
func (h *harness) addPasskey(k *softKey, sess *http.Cookie, name string) (*http.Response, string) {
	h.t.Helper()
	_, page := h.do(req{path: "/account", cookies: []*http.Cookie{sess}})
	cred, state := k.register(h.t, page)
	token, csrf := h.formToken("/login")
	return h.do(req{path: "/account/passkeys", cookies: []*http.Cookie{csrf, sess},
		form: url.Values{"csrf_token": {token}, "passkey_state": {state}, "credential": {cred}, "name": {name}}})
}

// passkeyPost posts a passkey answer with the form fields of the page it came from.
func (h *harness) passkeyPost(form url.Values, cookies ...*http.Cookie) (*http.Response, string) {
	h.t.Helper()
	token, csrf := h.formToken("/login")
	form.Set("csrf_token", token)
	return h.do(req{path: "/login/passkey", cookies: append(cookies, csrf), form: form})
}

// post sends a form, with a valid CSRF token, as the user signed in with sess.
func (h *harness) post(path string, sess *http.Cookie, form url.Values) (int, string) {
	h.t.Helper()
	tok, csrf := h.formToken("/login")
	form.Set("csrf_token", tok)
	resp, body := h.do(req{path: path, cookies: []*http.Cookie{csrf, sess}, form: form})
	return resp.StatusCode, body
}
