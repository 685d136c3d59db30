package web

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/gatehouse-id/gatehouse/internal/authn"
	"github.com/gatehouse-id/gatehouse/internal/identity"
	"github.com/gatehouse-id/gatehouse/internal/session"
	"github.com/gatehouse-id/gatehouse/internal/store"
)

// Passkeys are WebAuthn credentials that live on the authenticator (discoverable), so
// a person signs in by picking one, without typing a username. Every ceremony requires
// user verification (a PIN or biometrics on top of holding the key), which is why a
// passkey sign-in counts as two factors.
//
// The challenge and its parameters travel signed in the page (see signed.go): showing
// the login page writes nothing, and any replica can finish what another began. A
// challenge is recorded as spent when it is answered, so an answer is never accepted
// twice.

// ceremonyTTL is how long a rendered page's passkey challenge stays valid.
const ceremonyTTL = 10 * time.Minute

// passkeyNameMax bounds the name a user gives a passkey.
const passkeyNameMax = 64

// relyingParty returns the WebAuthn relying party for the current public URL; passkeys
// are bound to its host name, so changing server.public_url's host orphans them.
func (s *Server) relyingParty() (*webauthn.WebAuthn, error) {
	publicURL := s.cfg().Server.PublicURL
	s.rpMu.Lock()
	defer s.rpMu.Unlock()
	if s.rp != nil && s.rpURL == publicURL {
		return s.rp, nil
	}
	u, err := url.Parse(publicURL)
	if err != nil {
		return nil, fmt.Errorf("server.public_url %q: %w", publicURL, err)
	}
	rp, err := webauthn.New(&webauthn.Config{
		RPID:          u.Hostname(),
		RPDisplayName: "Gatehouse",
		RPOrigins:     []string{u.Scheme + "://" + u.Host},
		Timeouts: webauthn.TimeoutsConfig{
			Login:        webauthn.TimeoutConfig{Enforce: true, Timeout: ceremonyTTL, TimeoutUVD: ceremonyTTL},
			Registration: webauthn.TimeoutConfig{Enforce: true, Timeout: ceremonyTTL, TimeoutUVD: ceremonyTTL},
		},
	})
	if err != nil {
		return nil, fmt.Errorf("passkeys cannot work with server.public_url %q: %w", publicURL, err)
	}
	s.rp, s.rpURL = rp, publicURL
	return rp, nil
}

// rpCache keeps the relying party built for one public URL.
type rpCache struct {
	rpMu  sync.Mutex
	rp    *webauthn.WebAuthn
	rpURL string
}

// passkeyUser presents a Gatehouse user to the WebAuthn library. The user handle is
// the user's id, so a discoverable passkey names its user without a username.
type passkeyUser struct {
	user  store.User
	keys  []store.Passkey
	creds []webauthn.Credential
}

func (p *passkeyUser) WebAuthnID() []byte   { return []byte(p.user.ID) }
func (p *passkeyUser) WebAuthnName() string { return p.user.Username }
func (p *passkeyUser) WebAuthnDisplayName() string {
	return orDefault(p.user.DisplayName, p.user.Username)
}
func (p *passkeyUser) WebAuthnCredentials() []webauthn.Credential { return p.creds }

func (s *Server) loadPasskeyUser(r *http.Request, u store.User) (*passkeyUser, error) {
	keys, err := s.Store.Passkeys(r.Context(), u.ID)
	if err != nil {
		return nil, err
	}
	pu := &passkeyUser{user: u, keys: keys}
	for _, k := range keys {
		var c webauthn.Credential
		if err := json.Unmarshal([]byte(k.Data), &c); err != nil {
			return nil, fmt.Errorf("passkey %s of user %q has an unreadable record: %w", k.ID, u.Username, err)
		}
		pu.creds = append(pu.creds, c)
	}
	return pu, nil
}

// ceremony is what a page needs to run one WebAuthn ceremony: the options for
// navigator.credentials, and the signed state to post back with the answer.
type ceremony struct {
	Options string // JSON, for a data-options attribute (html/template escapes it there)
	State   string
}

func (s *Server) newCeremony(purpose string, options any, sd *webauthn.SessionData) (*ceremony, error) {
	opts, err := json.Marshal(options)
	if err != nil {
		return nil, err
	}
	state, err := json.Marshal(sd)
	if err != nil {
		return nil, err
	}
	return &ceremony{Options: string(opts), State: s.sign(purpose, ceremonyTTL, base64.RawURLEncoding.EncodeToString(state))}, nil
}

func (s *Server) openCeremony(purpose, state string) (webauthn.SessionData, bool) {
	var sd webauthn.SessionData
	fields, ok := s.unsign(purpose, state, 1)
	if !ok {
		return sd, false
	}
	raw, err := base64.RawURLEncoding.DecodeString(fields[0])
	return sd, err == nil && json.Unmarshal(raw, &sd) == nil
}

// loginCeremony offers a passwordless sign-in with any passkey for this site.
func (s *Server) loginCeremony() *ceremony {
	rp, err := s.relyingParty()
	if err != nil {
		s.Log.Warn("passkey sign-in is off", "error", err.Error())
		return nil
	}
	assertion, sd, err := rp.BeginDiscoverableLogin(webauthn.WithUserVerification(protocol.VerificationRequired))
	if err == nil {
		var c *ceremony
		if c, err = s.newCeremony("passkey-login", assertion, sd); err == nil {
			return c
		}
	}
	s.Log.Error("starting a passkey sign-in failed", "error", err.Error())
	return nil
}

// passkeyLogin finishes a sign-in with a passkey: passwordless from the login page, or
// as the second step after a password (then the passkey must be the same user's).
func (s *Server) passkeyLogin(w http.ResponseWriter, r *http.Request) {
	if !s.parseForm(w, r) {
		return
	}
	rd := s.safeRD(r.PostFormValue("rd"))
	pendingUser := ""
	if pending := r.PostFormValue("pending"); pending != "" {
		fields, ok := s.unsign("login-pending", pending, 2)
		if !ok {
			s.message(w, http.StatusBadRequest, "Sign-in expired", "This sign-in took longer than 5 minutes or was altered. Sign in again.")
			return
		}
		pendingUser, rd = fields[0], s.safeRD(fields[1])
	}
	fail := func(status int, msg string) {
		s.Metrics.Logins.WithLabelValues("failure").Inc()
		s.render(w, status, "login.html", page{Title: "Sign in", CSRF: s.csrfToken(w, r), RD: rd, Error: msg, Extra: s.loginCeremony()})
	}
	ip := s.clientIP(r)
	limits := authn.PasskeyLimits(authn.Network(ip))
	if wait, err := s.Regulator.Wait(r.Context(), limits...); err != nil {
		s.loginError(w, err)
		return
	} else if wait > 0 {
		s.throttled("passkey", "", ip)
		fail(http.StatusTooManyRequests, "Too many failed sign-ins from your address. Try again in "+minutes(wait)+".")
		return
	}
	u, method, err := s.verifyPasskey(r)
	var bad userError
	switch {
	case errors.As(err, &bad):
		if err := s.Regulator.Fail(r.Context(), limits...); err != nil {
			s.loginError(w, err)
			return
		}
		s.Audit(store.Event{Kind: "login.failed", Actor: "anonymous", Target: u.Username, Detail: "passkey from " + ip + ": " + bad.msg})
		fail(http.StatusUnauthorized, bad.msg)
		return
	case err != nil:
		s.loginError(w, err)
		return
	case pendingUser != "" && u.ID != pendingUser:
		fail(http.StatusUnauthorized, "That passkey belongs to another account. Use a passkey of the account you typed the password for.")
		return
	}
	s.finishLogin(w, r, u, method, rd)
}

// verifyPasskey checks a posted passkey answer against its signed challenge and the
// stored key, spends the challenge, and records the key's use. A userError says what
// the person can do about a refusal.
func (s *Server) verifyPasskey(r *http.Request) (store.User, string, error) {
	var u store.User
	sd, ok := s.openCeremony("passkey-login", r.PostFormValue("passkey_state"))
	if !ok {
		return u, "", userError{"This sign-in page expired. Reload it and choose your passkey again."}
	}
	parsed, err := protocol.ParseCredentialRequestResponseBytes([]byte(r.PostFormValue("credential")))
	if err != nil {
		return u, "", userError{"Your browser sent an answer Gatehouse cannot read. Try again, or sign in with your password."}
	}
	rp, err := s.relyingParty()
	if err != nil {
		return u, "", err
	}
	var key store.Passkey
	var lookupErr error // the database's answer, kept apart from the library's verdict
	lookup := func(rawID, userHandle []byte) (webauthn.User, error) {
		key, lookupErr = s.Store.PasskeyByCredentialID(r.Context(), base64.RawURLEncoding.EncodeToString(rawID))
		if lookupErr == nil && key.UserID != string(userHandle) {
			lookupErr = store.ErrNotFound // the key names another user: not one of ours
		}
		if lookupErr == nil {
			u, lookupErr = s.Store.UserByID(r.Context(), key.UserID)
		}
		if lookupErr != nil {
			return nil, lookupErr
		}
		pu, err := s.loadPasskeyUser(r, u)
		lookupErr = err
		return pu, err
	}
	_, cred, err := rp.ValidatePasskeyLogin(lookup, sd, parsed)
	if err != nil {
		if errors.Is(lookupErr, store.ErrNotFound) {
			return u, "", userError{"This passkey is not registered here (it may have been removed). Sign in with your password or another passkey."}
		}
		if lookupErr != nil {
			return u, "", lookupErr // the database failed: a 503, not the person's fault
		}
		var perr *protocol.Error
		if errors.As(err, &perr) {
			s.Log.Info("a passkey answer was refused", "reason", perr.Details, "user", u.Username)
			return u, "", userError{"Your passkey's answer was not accepted. Try again, or sign in with your password."}
		}
		return u, "", err
	}
	if u.Disabled {
		return u, "", userError{"This account is disabled. Ask an admin."}
	}
	spent := sha256.Sum256([]byte(sd.Challenge))
	data, err := json.Marshal(cred)
	if err == nil {
		err = s.Directory.UsePasskey(r.Context(), u, key, hex.EncodeToString(spent[:]), sd.Expires, string(data), cred.Authenticator.CloneWarning)
	}
	if errors.Is(err, identity.ErrReplay) {
		return u, "", userError{"This passkey answer was used already. Reload the page and try again."}
	}
	return u, "passkey+verified", err
}

// registrationCeremony offers to add a passkey to the signed-in user's account.
func (s *Server) registrationCeremony(r *http.Request, u store.User) (*ceremony, error) {
	rp, err := s.relyingParty()
	if err != nil {
		return nil, err
	}
	pu, err := s.loadPasskeyUser(r, u)
	if err != nil {
		return nil, err
	}
	exclude := make([]protocol.CredentialDescriptor, len(pu.creds))
	for i, c := range pu.creds {
		exclude[i] = c.Descriptor()
	}
	creation, sd, err := rp.BeginRegistration(pu,
		webauthn.WithAuthenticatorSelection(protocol.AuthenticatorSelection{
			ResidentKey: protocol.ResidentKeyRequirementRequired, UserVerification: protocol.VerificationRequired}),
		webauthn.WithResidentKeyRequirement(protocol.ResidentKeyRequirementRequired),
		webauthn.WithExclusions(exclude),
		webauthn.WithConveyancePreference(protocol.PreferNoAttestation))
	if err != nil {
		return nil, err
	}
	return s.newCeremony("passkey-register", creation, sd)
}

// addPasskey stores the passkey the signed-in user's browser just created.
// A new credential needs a recent sign-in too: a borrowed session must not be able to
// plant a key of its own.
func (s *Server) addPasskey(w http.ResponseWriter, r *http.Request, p *session.Principal, u store.User) (string, error) {
	if err := s.reauthenticate(r, p, u); err != nil {
		return "", err
	}
	name := strings.TrimSpace(r.PostFormValue("name"))
	if err := checkPasskeyName(name); err != nil {
		return "", err
	}
	sd, ok := s.openCeremony("passkey-register", r.PostFormValue("passkey_state"))
	if !ok || string(sd.UserID) != u.ID {
		return "", userError{"This page expired before the passkey was made. Reload it and add the passkey again."}
	}
	parsed, err := protocol.ParseCredentialCreationResponseBytes([]byte(r.PostFormValue("credential")))
	if err != nil {
		return "", userError{"Your browser sent a passkey Gatehouse cannot read. Try again, or use another browser or key."}
	}
	rp, err := s.relyingParty()
	if err != nil {
		return "", err
	}
	pu, err := s.loadPasskeyUser(r, u)
	if err != nil {
		return "", err
	}
	cred, err := rp.CreateCredential(pu, sd, parsed)
	if err != nil {
		s.Log.Info("a new passkey was refused", "user", u.Username, "error", err.Error())
		return "", userError{"The passkey could not be verified (it must check your PIN or fingerprint). Try again, or use another key."}
	}
	data, err := json.Marshal(cred)
	if err != nil {
		return "", err
	}
	_, err = s.Directory.AddOwnPasskey(r.Context(), store.Passkey{UserID: u.ID, CredentialID: base64.RawURLEncoding.EncodeToString(cred.ID), Name: name, Data: string(data)})
	if errors.Is(err, store.ErrConflict) {
		return "", userError{"This passkey is registered already."}
	}
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("Passkey %q added. You can sign in with it, without a password.", name), nil
}

func checkPasskeyName(name string) error {
	if name == "" || len(name) > passkeyNameMax || identity.CheckDisplayName(name) != nil {
		return userError{fmt.Sprintf("Give the passkey a name of 1 to %d characters, like \"Laptop\" or \"Blue key\".", passkeyNameMax)}
	}
	return nil
}

func (s *Server) renamePasskey(w http.ResponseWriter, r *http.Request, p *session.Principal, u store.User) (string, error) {
	name := strings.TrimSpace(r.PostFormValue("name"))
	if err := checkPasskeyName(name); err != nil {
		return "", err
	}
	err := s.Directory.RenameOwnPasskey(r.Context(), u, r.PostFormValue("id"), name)
	if errors.Is(err, store.ErrNotFound) {
		return "", userError{"That passkey no longer exists."}
	}
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("Passkey renamed to %q.", name), nil
}

func (s *Server) removePasskey(w http.ResponseWriter, r *http.Request, p *session.Principal, u store.User) (string, error) {
	return "Passkey removed.", s.removeCredential(r, p, u, r.PostFormValue("id"))
}

// removeCredential removes one of the signed-in user's credentials after checking they
// proved who they are recently, and never the last one they can sign in with.
func (s *Server) removeCredential(r *http.Request, p *session.Principal, u store.User, id string) error {
	if err := s.reauthenticate(r, p, u); err != nil {
		return err
	}
	err := s.Directory.RemoveCredential(r.Context(), u.Username, u.Username, id, false)
	switch {
	case errors.Is(err, identity.ErrLastCredential):
		return userError{"This is the only way you can sign in, so it stays. Add a passkey or set a password first."}
	case errors.Is(err, store.ErrNotFound):
		return userError{"That credential no longer exists."}
	case err != nil:
		return err
	}
	s.Log.Info("credential removed", "user", u.Username, "credential", id)
	return nil
}
