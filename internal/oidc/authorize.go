package oidc

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse-id/gatehouse/internal/config"
	"github.com/gatehouse-id/gatehouse/internal/session"
	"github.com/gatehouse-id/gatehouse/internal/store"
)

// codeTTL is how long an authorization code may wait to be redeemed.
const codeTTL = time.Minute

// consentTTL is how long a consent page may wait for an answer.
const consentTTL = 10 * time.Minute

// grantData is what Gatehouse keeps with a code, token or device code.
type grantData struct {
	RedirectURI string   `json:"redirect_uri,omitempty"`
	Nonce       string   `json:"nonce,omitempty"`
	Challenge   string   `json:"code_challenge,omitempty"`
	AuthTime    int64    `json:"auth_time,omitempty"`
	AMR         []string `json:"amr,omitempty"`
	// SID is the Gatehouse sign-in the grant was given in (store.Session.SID). Without
	// offline_access the grant is online: it lasts only as long as that sign-in.
	SID string `json:"sid,omitempty"`
	// Device authorization.
	Device   string `json:"device,omitempty"`   // on a user_code: the device code's hash
	Decision string `json:"decision,omitempty"` // on a device code: "", "approved" or "denied"
}

func (d grantData) encode() string {
	b, _ := json.Marshal(d)
	return string(b)
}

func decodeGrant(s string) grantData {
	var d grantData
	_ = json.Unmarshal([]byte(s), &d)
	return d
}

var challengePattern = regexp.MustCompile(`^[A-Za-z0-9._~-]{43,128}$`)

// redirectAllowed matches a redirect URI exactly against the client's list; a loopback
// http URI matches on any port, as RFC 8252 asks for native apps.
func redirectAllowed(c *config.Client, raw string) bool {
	if slices.Contains(c.RedirectURIs, raw) {
		return true
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "http" || u.User != nil || !loopback(u.Hostname()) {
		return false
	}
	for _, reg := range c.RedirectURIs {
		r, err := url.Parse(reg)
		if err == nil && r.Scheme == "http" && loopback(r.Hostname()) && r.Hostname() == u.Hostname() &&
			r.Path == u.Path && r.RawQuery == u.RawQuery {
			return true
		}
	}
	return false
}

// loopback accepts the loopback addresses and "localhost", which native apps such as
// kubectl oidc-login use although RFC 8252 prefers the address.
func loopback(host string) bool {
	ip := net.ParseIP(host)
	return (ip != nil && ip.IsLoopback()) || strings.EqualFold(host, "localhost")
}

// authRequest is a validated authorization request.
type authRequest struct {
	client    *config.Client
	redirect  string
	state     string
	scopes    []string
	nonce     string
	challenge string
	prompt    string
	mode      string // response_mode: query, fragment or form_post
	raw       url.Values
}

// authorize is the authorization endpoint (code flow only).
func (p *Provider) authorize(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		p.Pages.Message(w, r, http.StatusBadRequest, "Bad sign-in request", "The app's sign-in request could not be read. Go back to the app and try again.")
		return
	}
	p.authorizeRequest(w, r, r.Form, false)
}

// authorizeRequest checks a request and answers it: an error page when the app cannot
// be trusted with a redirect, an error redirect when it can, the login page, a step-up,
// the consent page, "not allowed", or the code.
func (p *Provider) authorizeRequest(w http.ResponseWriter, r *http.Request, q url.Values, consented bool) {
	clientID := q.Get("client_id")
	c, ok := p.cfg().OIDC.ClientByID(clientID)
	if !ok {
		p.Pages.Message(w, r, http.StatusBadRequest, "Unknown app",
			fmt.Sprintf("The app asked to sign in as client %q, which Gatehouse does not know. Its admin must add it under oidc.clients.", clip(clientID)))
		return
	}
	redirect := q.Get("redirect_uri")
	openID := slices.Contains(strings.Fields(q.Get("scope")), "openid")
	if redirect == "" && len(c.RedirectURIs) == 1 && !openID { // OpenID Connect requires it (Core 3.1.2.1)
		redirect = c.RedirectURIs[0]
	}
	if !redirectAllowed(c, redirect) {
		p.Pages.Message(w, r, http.StatusBadRequest, "Unregistered return address",
			fmt.Sprintf("%s asked to return to %q, which is not one of its redirect_uris in Gatehouse's config. Its admin must add the exact address.", c.DisplayName(), clip(redirect)))
		return
	}
	ar := authRequest{client: c, redirect: redirect, state: q.Get("state"), nonce: q.Get("nonce"),
		challenge: q.Get("code_challenge"), prompt: q.Get("prompt"), mode: q.Get("response_mode"), raw: q}
	modeKnown := slices.Contains(responseModes, ar.mode)
	if !modeKnown || ar.mode == "" {
		ar.mode = "query"
	}
	fail := func(code, description string) { p.redirectError(w, r, ar, code, description) }
	prompts := strings.Fields(ar.prompt)
	switch {
	case !modeKnown:
		fail("invalid_request", fmt.Sprintf("response_mode %q is not supported: use query, fragment or form_post", clip(q.Get("response_mode"))))
		return
	case repeated(q) != "":
		fail("invalid_request", fmt.Sprintf("the parameter %q is given more than once (RFC 6749 3.1)", clip(repeated(q))))
		return
	case !c.HasGrant("authorization_code"):
		fail("unauthorized_client", "this client may not use the authorization code flow (see its grant_types)")
		return
	case q.Get("response_type") == "":
		fail("invalid_request", "response_type is missing: send response_type=code")
		return
	case q.Get("response_type") != "code":
		fail("unsupported_response_type", "only response_type=code is supported")
		return
	case q.Has("request_uri"):
		fail("request_uri_not_supported", "request_uri is not supported; send the parameters in the URL")
		return
	case q.Has("request"):
		fail("request_not_supported", "request objects are not supported; send the parameters in the URL")
		return
	case slices.Contains(prompts, "none") && len(prompts) > 1:
		fail("invalid_request", "prompt=none cannot be combined with other prompt values (Core 3.1.2.1)")
		return
	case ar.challenge == "" && c.Public():
		fail("invalid_request", "a public client must use PKCE: send code_challenge and code_challenge_method=S256")
		return
	case ar.challenge != "" && q.Get("code_challenge_method") != "S256":
		fail("invalid_request", "code_challenge_method must be S256")
		return
	case ar.challenge != "" && !challengePattern.MatchString(ar.challenge):
		fail("invalid_request", "code_challenge must be 43 to 128 characters of base64url")
		return
	case len(ar.nonce) > 512 || len(ar.state) > 2048:
		fail("invalid_request", "nonce or state is too long")
		return
	}
	ar.scopes = grantedScopes(c, q.Get("scope"))

	user := p.Pages.Current(r)
	returnTo := PathAuthorize + "?" + q.Encode()
	if user == nil {
		if ar.prompt == "none" {
			fail("login_required", "nobody is signed in at Gatehouse")
			return
		}
		http.Redirect(w, r, p.Pages.LoginURL(returnTo), http.StatusFound)
		return
	}
	if hint := q.Get("id_token_hint"); hint != "" {
		// The app names who it expects (Core 3.1.2.1): another person signed in here
		// must not be handed a code for themselves.
		sub, err := p.hintSubject(r.Context(), c, hint)
		switch {
		case err != nil:
			fail("invalid_request", "id_token_hint is not an ID token Gatehouse issued to this client")
			return
		case sub != subject(c, store.User{ID: user.UserID, Username: user.Username}) && ar.prompt == "none":
			fail("login_required", "the person signed in is not the one id_token_hint names")
			return
		case sub != subject(c, store.User{ID: user.UserID, Username: user.Username}):
			http.Redirect(w, r, p.Pages.ReauthURL(returnTo), http.StatusFound)
			return
		}
	}
	if p.needsFreshLogin(q, user) {
		if ar.prompt == "none" {
			fail("login_required", "the app asks for a fresh sign-in")
			return
		}
		// Back here after signing in again, the request carries the time (ms) it asked from,
		// instead of prompt=login or max_age, so a fresh sign-in satisfies it once. The
		// time is signed: a login_after made up outside would wave an old session through
		// an app's prompt=login.
		again := url.Values{}
		for k, v := range q {
			if k != "prompt" && k != "max_age" {
				again[k] = v
			}
		}
		again.Set("login_after", p.signedKey().Sign("oidc-login-after", loginAfterTTL, strconv.FormatInt(time.Now().UnixMilli(), 10)))
		http.Redirect(w, r, p.Pages.ReauthURL(PathAuthorize+"?"+again.Encode()), http.StatusFound)
		return
	}
	if !p.allowed(c, user.Groups) {
		p.Audit(store.Event{Kind: "oidc.denied", Actor: user.Username, Target: c.ID, Detail: "not in the client's groups"})
		if ar.prompt == "none" {
			fail("access_denied", "this user may not use this app")
			return
		}
		// The page explains; its button hands the app access_denied, so an app waiting
		// for an answer (a CLI on a loopback port) stops waiting.
		p.Pages.NotAllowed(w, r, NotAllowedView{
			Text: fmt.Sprintf("Your account (%s) may not use %s. If you should, ask an admin to add you to one of its groups: %s.",
				user.Username, c.DisplayName(), strings.Join(c.Groups, ", ")),
			Client: c.DisplayName(),
			Return: p.responseURL(ar, url.Values{"error": {"access_denied"}, "error_description": {"this user may not use this app"},
				"state": {ar.state}, "iss": {p.issuer()}}),
		})
		return
	}
	if c.TwoFactor && !user.TwoFactor {
		if ar.prompt == "none" {
			fail("interaction_required", "this app needs a sign-in with two factors")
			return
		}
		http.Redirect(w, r, p.Pages.StepUpURL(returnTo), http.StatusFound)
		return
	}
	if c.Consent == "explicit" && !consented {
		given, err := p.Store.OIDCConsent(r.Context(), user.UserID, c.ID)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			p.Pages.Message(w, r, http.StatusServiceUnavailable, "Sign-in unavailable", "Gatehouse cannot reach its database right now. Try again in a moment.")
			return
		}
		if !covers(given, ar.scopes) {
			if ar.prompt == "none" {
				fail("consent_required", "the user has not allowed this app yet")
				return
			}
			p.Pages.Consent(w, r, ConsentView{Client: c.DisplayName(), Scopes: ar.scopes,
				Request: p.signedKey().Sign("oidc-consent", consentTTL, user.UserID, q.Encode())})
			return
		}
	}
	p.issueCode(w, r, ar, user)
}

// hintSubject returns the sub of an ID token Gatehouse issued to c (its signature
// checked; an expired one still names who the app expects).
func (p *Provider) hintSubject(ctx context.Context, c *config.Client, hint string) (string, error) {
	payload, err := p.verify(ctx, hint)
	if err != nil {
		return "", err
	}
	var h idTokenHint
	if err := json.Unmarshal(payload, &h); err != nil || h.Iss != p.issuer() || h.audience() != c.ID || h.Sub == "" {
		return "", errors.New("not an ID token of this client")
	}
	return h.Sub, nil
}

// repeated returns the name of a parameter given more than once, or "".
func repeated(q url.Values) string {
	for k, v := range q {
		if len(v) > 1 {
			return k
		}
	}
	return ""
}

// grantedScopes is what a client gets of the scopes it asked for: those it may have,
// once each. Others — scopes Gatehouse does not know (address, phone, a vendor's) or this
// client may not have — are left out rather than failing the sign-in (OpenID Connect
// Core 5.4, RFC 6749 3.3); the token response's scope says what was granted.
func grantedScopes(c *config.Client, asked string) []string {
	var out []string
	for _, s := range strings.Fields(asked) {
		if slices.Contains(c.AllowedScopes(), s) && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// loginAfterTTL is how long a signed login_after lasts: the time to sign in again.
const loginAfterTTL = 15 * time.Minute

// needsFreshLogin reports whether the app asked (prompt=login, or a max_age the
// session's sign-in is older than) for a sign-in newer than the user's.
func (p *Provider) needsFreshLogin(q url.Values, user *session.Principal) bool {
	if f, ok := p.signedKey().Open("oidc-login-after", q.Get("login_after"), 1); ok {
		if after, err := strconv.ParseInt(f[0], 10, 64); err == nil {
			return user.AuthenticatedAt.UnixMilli() < after
		}
	}
	if slices.Contains(strings.Fields(q.Get("prompt")), "login") {
		return true
	}
	maxAge, err := strconv.ParseInt(q.Get("max_age"), 10, 64)
	return err == nil && maxAge >= 0 && time.Since(user.AuthenticatedAt) > time.Duration(maxAge)*time.Second
}

// consent takes the answer of the consent page.
func (p *Provider) consent(w http.ResponseWriter, r *http.Request) {
	if !p.Pages.CheckForm(w, r) {
		return
	}
	user := p.Pages.Current(r)
	fields, ok := p.signedKey().Open("oidc-consent", r.PostFormValue("request"), 2)
	if !ok || user == nil || fields[0] != user.UserID {
		p.Pages.Message(w, r, http.StatusBadRequest, "Request expired", "This page expired or belongs to another sign-in. Go back to the app and sign in again.")
		return
	}
	q, err := url.ParseQuery(fields[1])
	if err != nil {
		p.Pages.Message(w, r, http.StatusBadRequest, "Bad sign-in request", "Go back to the app and sign in again.")
		return
	}
	c, ok := p.cfg().OIDC.ClientByID(q.Get("client_id"))
	if !ok {
		p.authorizeRequest(w, r, q, false) // explains the unknown client
		return
	}
	if r.PostFormValue("decision") != "allow" {
		p.Audit(store.Event{Kind: "oidc.consent_refused", Actor: user.Username, Target: c.ID})
		redirect := q.Get("redirect_uri")
		if redirect == "" && len(c.RedirectURIs) == 1 {
			redirect = c.RedirectURIs[0]
		}
		if !redirectAllowed(c, redirect) {
			p.authorizeRequest(w, r, q, false)
			return
		}
		p.redirectError(w, r, authRequest{client: c, redirect: redirect, state: q.Get("state"), mode: cmp.Or(q.Get("response_mode"), "query")}, "access_denied", "the user did not allow the app")
		return
	}
	if err := p.Store.SetOIDCConsent(r.Context(), user.UserID, c.ID, q.Get("scope")); err != nil {
		p.Pages.Message(w, r, http.StatusServiceUnavailable, "Sign-in unavailable", "Gatehouse cannot reach its database right now. Try again in a moment.")
		return
	}
	p.Audit(store.Event{Kind: "oidc.consent_given", Actor: user.Username, Target: c.ID, Detail: q.Get("scope")})
	p.authorizeRequest(w, r, q, true)
}

// covers reports whether consent for given scopes includes every wanted one.
func covers(given string, wanted []string) bool {
	have := strings.Fields(given)
	for _, s := range wanted {
		if !slices.Contains(have, s) {
			return false
		}
	}
	return given != ""
}

func (p *Provider) issueCode(w http.ResponseWriter, r *http.Request, ar authRequest, user *session.Principal) {
	code, hash := newToken()
	_, family := newToken()
	err := p.Store.AddOIDCToken(r.Context(), store.OIDCToken{
		Hash: hash, Kind: "code", ClientID: ar.client.ID, UserID: user.UserID, Family: family,
		Scope: strings.Join(ar.scopes, " "), ExpiresAt: time.Now().Add(codeTTL),
		Data: grantData{RedirectURI: ar.redirect, Nonce: ar.nonce, Challenge: ar.challenge,
			AuthTime: user.AuthenticatedAt.Unix(), AMR: amrOf(user), SID: user.SID}.encode(),
	})
	if err != nil {
		p.Log.Error("storing an authorization code failed", "error", err.Error())
		p.redirectError(w, r, ar, "temporarily_unavailable", "Gatehouse cannot reach its database right now")
		return
	}
	p.Audit(store.Event{Kind: "oidc.authorized", Actor: user.Username, Target: ar.client.ID, Detail: strings.Join(ar.scopes, " ")})
	p.respond(w, r, ar, url.Values{"code": {code}, "state": {ar.state}, "iss": {p.issuer()}})
}

// amrOf names how the user signed in, in RFC 8176's words: a password ("pwd"), a
// one-time code ("otp"), a key held in hardware ("hwk"), and "mfa" for two factors.
func amrOf(user *session.Principal) []string {
	var amr []string
	switch {
	case strings.HasPrefix(user.Method, "passkey"):
		amr = append(amr, "hwk")
	default:
		amr = append(amr, "pwd")
	}
	if strings.HasSuffix(user.Method, "+totp") {
		amr = append(amr, "otp")
	}
	if user.TwoFactor {
		amr = append(amr, "mfa")
	}
	return amr
}

// redirectError sends an error back to the app, at an address already checked.
func (p *Provider) redirectError(w http.ResponseWriter, r *http.Request, ar authRequest, code, description string) {
	p.respond(w, r, ar, url.Values{"error": {code}, "error_description": {description}, "state": {ar.state}, "iss": {p.issuer()}})
}

// responseModes are the response_mode values Gatehouse answers in ("" is query).
var responseModes = []string{"", "query", "fragment", "form_post"}

// respond sends an authorization response to the app's (checked) redirect URI in the
// request's response_mode: in the query string, in the fragment, or posted by a page
// that submits itself (OAuth 2.0 Form Post Response Mode).
func (p *Provider) respond(w http.ResponseWriter, r *http.Request, ar authRequest, params url.Values) {
	if ar.mode == "form_post" {
		if params.Get("state") == "" {
			params.Del("state")
		}
		writeFormPost(w, ar.redirect, params)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, p.responseURL(ar, params), http.StatusFound)
}

// responseURL is the redirect URI carrying params in the fragment (response_mode
// fragment) or the query string (otherwise: a link cannot post a form).
func (p *Provider) responseURL(ar authRequest, params url.Values) string {
	if params.Get("state") == "" {
		params.Del("state")
	}
	if ar.mode == "fragment" {
		base, _, _ := strings.Cut(ar.redirect, "#")
		return base + "#" + params.Encode()
	}
	sep := "?"
	if strings.Contains(ar.redirect, "?") {
		sep = "&"
	}
	return ar.redirect + sep + params.Encode()
}

func (p *Provider) redirectWith(w http.ResponseWriter, r *http.Request, redirect string, params url.Values) {
	p.respond(w, r, authRequest{redirect: redirect, mode: "query"}, params)
}

// clip shortens what a request sent before it is shown back.
func clip(s string) string {
	if len(s) > 200 {
		return s[:200] + "…"
	}
	return s
}
