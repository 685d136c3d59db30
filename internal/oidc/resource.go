package oidc

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/gatehouse-id/gatehouse/internal/config"
	"github.com/gatehouse-id/gatehouse/internal/store"
)

// bearerToken reads "Authorization: Bearer TOKEN"; the scheme's name is case-insensitive
// (RFC 7235 2.1), so "bearer" from some clients is as good.
func bearerToken(header string) (string, bool) {
	scheme, token, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	return strings.TrimSpace(token), true
}

// activeToken finds an unexpired access or refresh token by its value.
func (p *Provider) activeToken(r *http.Request, value string) (store.OIDCToken, bool, error) {
	if value == "" {
		return store.OIDCToken{}, false, nil
	}
	t, err := p.Store.OIDCToken(r.Context(), hashToken(value))
	if errors.Is(err, store.ErrNotFound) {
		return t, false, nil
	}
	if err != nil {
		return t, false, err
	}
	live := (t.Kind == "access" || t.Kind == "refresh") && time.Now().Before(t.ExpiresAt) && t.UsedAt.IsZero()
	if d := decodeGrant(t.Data); live && online(d, strings.Fields(t.Scope)) {
		// An online grant's tokens end with the sign-in, whoever ended it and wherever.
		ends, err := p.signInEnds(r.Context(), d.SID, t.UserID)
		if err != nil {
			return t, false, err
		}
		live = !ends.IsZero()
	}
	return t, live, nil
}

// userinfo returns the claims of the user an access token was issued for.
func (p *Provider) userinfo(w http.ResponseWriter, r *http.Request) {
	token, ok := bearerToken(r.Header.Get("Authorization"))
	if !ok && r.Method == http.MethodPost {
		r.Body = http.MaxBytesReader(w, r.Body, maxTokenForm)
		if r.ParseForm() == nil {
			token = r.PostForm.Get("access_token")
		}
	}
	if strings.TrimSpace(token) == "" {
		// No credentials at all: a challenge without an error code (RFC 6750 3.1).
		w.Header().Set("WWW-Authenticate", `Bearer realm="gatehouse"`)
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_request", "error_description": "send the access token: Authorization: Bearer TOKEN"})
		return
	}
	invalid := func(desc string) {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token", error_description="`+desc+`"`)
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_token", "error_description": desc})
	}
	t, live, err := p.activeToken(r, strings.TrimSpace(token))
	switch {
	case err != nil:
		p.serverError(w, err)
		return
	case !live || t.Kind != "access":
		invalid("the access token is missing, unknown, expired or revoked")
		return
	case t.UserID == "":
		invalid("this token was issued to a client acting for itself: it has no user")
		return
	}
	c, ok := p.cfg().OIDC.ClientByID(t.ClientID)
	if !ok {
		invalid("the client this token was issued to is no longer configured")
		return
	}
	u, groups, err := p.user(r.Context(), t.UserID)
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, errDisabled) {
		invalid("the user no longer exists or is disabled")
		return
	}
	if err != nil {
		p.serverError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, claims(c, u, groups, strings.Fields(t.Scope)))
}

// backChannel reads a form from an authenticated confidential client.
func (p *Provider) backChannel(w http.ResponseWriter, r *http.Request, allowPublic bool) (*config.Client, bool) {
	r.Body = http.MaxBytesReader(w, r.Body, maxTokenForm)
	if err := r.ParseForm(); err != nil {
		p.writeError(w, badRequest("invalid_request", "the body is not a form of at most 16 KiB"))
		return nil, false
	}
	c, oerr := p.authenticateClient(r)
	if oerr == nil && c.Public() && !allowPublic {
		oerr = &oauthError{http.StatusUnauthorized, "invalid_client", "only a confidential client (with a secret) may introspect tokens"}
	}
	if oerr != nil {
		p.writeError(w, oerr)
		return nil, false
	}
	return c, true
}

// introspect answers RFC 7662 for any authenticated confidential client (an API that
// receives tokens issued to a front-end client checks them here).
func (p *Provider) introspect(w http.ResponseWriter, r *http.Request) {
	if _, ok := p.backChannel(w, r, false); !ok {
		return
	}
	t, live, err := p.activeToken(r, r.PostForm.Get("token"))
	if err != nil {
		p.serverError(w, err)
		return
	}
	if !live {
		writeJSON(w, http.StatusOK, map[string]any{"active": false})
		return
	}
	resp := map[string]any{"active": true, "scope": t.Scope, "client_id": t.ClientID, "token_type": "Bearer",
		"exp": t.ExpiresAt.Unix(), "iat": t.CreatedAt.Unix(), "iss": p.issuer(), "aud": t.ClientID}
	if t.Kind == "refresh" {
		resp["token_type"] = "refresh_token"
	}
	if t.UserID != "" {
		c, ok := p.cfg().OIDC.ClientByID(t.ClientID)
		u, _, err := p.user(r.Context(), t.UserID)
		if !ok || errors.Is(err, store.ErrNotFound) || errors.Is(err, errDisabled) {
			writeJSON(w, http.StatusOK, map[string]any{"active": false})
			return
		}
		if err != nil {
			p.serverError(w, err)
			return
		}
		resp["sub"], resp["username"] = subject(c, u), u.Username
	} else {
		resp["sub"] = t.ClientID
	}
	writeJSON(w, http.StatusOK, resp)
}

// revoke answers RFC 7009: a refresh token takes its whole grant with it; an access
// token goes alone. Unknown tokens, and other clients' tokens, are answered 200 and
// left alone, so the endpoint tells nobody which tokens exist.
func (p *Provider) revoke(w http.ResponseWriter, r *http.Request) {
	c, ok := p.backChannel(w, r, true)
	if !ok {
		return
	}
	t, _, err := p.activeToken(r, r.PostForm.Get("token"))
	if err == nil && t.Hash != "" && t.ClientID == c.ID {
		switch t.Kind {
		case "refresh":
			_, err = p.Store.RevokeOIDCFamily(r.Context(), t.Family)
		case "access":
			err = p.Store.DeleteOIDCToken(r.Context(), t.Hash)
		}
		if err == nil {
			p.Audit(store.Event{Kind: "oidc.token_revoked", Actor: c.ID, Target: t.UserID, Detail: t.Kind})
		}
	}
	if err != nil {
		p.serverError(w, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
}

// idTokenHint is what a (possibly expired) ID token Gatehouse signed says.
type idTokenHint struct {
	Iss string `json:"iss"`
	Sub string `json:"sub"`
	Aud any    `json:"aud"`
	SID string `json:"sid"`
}

func (h idTokenHint) audience() string {
	switch a := h.Aud.(type) {
	case string:
		return a
	case []any:
		if len(a) == 1 {
			s, _ := a[0].(string)
			return s
		}
	}
	return ""
}

// logoutTTL is how long a sign-out confirmation page may wait for its answer.
const logoutTTL = 10 * time.Minute

// logout is RP-initiated logout (RP-Initiated Logout 1.0), by GET or POST. The app is
// known by a valid id_token_hint or by client_id, and post_logout_redirect_uri must be
// one it registered. What ends without asking is only what is provably the asker's:
// the browser's own sign-in when the hint names its person, or, when the request
// carries no Gatehouse session at all (an app's server calling, as oauth2-proxy's
// backend logout does), the sign-in the hint's sid names. Anything else — no hint, or
// another person's — gets a confirmation page, since any site can send a browser here.
func (p *Provider) logout(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		p.Pages.Message(w, r, http.StatusBadRequest, "Bad sign-out request", "The app's sign-out request could not be read.")
		return
	}
	if r.Method == http.MethodPost && r.PostForm.Has("confirm") {
		p.confirmedLogout(w, r)
		return
	}
	if name := repeated(r.Form); name != "" {
		p.Pages.Message(w, r, http.StatusBadRequest, "Bad sign-out request", "The app sent "+name+" more than once.")
		return
	}
	hint, after, clientID, state := r.Form.Get("id_token_hint"), r.Form.Get("post_logout_redirect_uri"), r.Form.Get("client_id"), r.Form.Get("state")
	var h idTokenHint
	var c *config.Client
	if hint != "" {
		payload, err := p.verify(r.Context(), hint)
		if err == nil {
			err = json.Unmarshal(payload, &h)
		}
		if err != nil || h.Iss != p.issuer() || h.audience() == "" || (clientID != "" && clientID != h.audience()) {
			p.Pages.Message(w, r, http.StatusBadRequest, "Sign-out refused",
				"The app sent an id_token_hint that Gatehouse did not issue (or that names another app). Nothing was changed; sign out at /logout.")
			return
		}
		clientID = h.audience()
	}
	if clientID != "" {
		var ok bool
		if c, ok = p.cfg().OIDC.ClientByID(clientID); !ok {
			p.Pages.Message(w, r, http.StatusBadRequest, "Unknown app",
				"The app that sent you here ("+clip(clientID)+") is not one of Gatehouse's OpenID Connect clients. You are still signed in; sign out at /logout.")
			return
		}
	}
	if after != "" && c == nil {
		p.Pages.Message(w, r, http.StatusBadRequest, "Sign-out needs the app's name",
			"The app asked to be returned after signing out but sent neither client_id nor id_token_hint, so Gatehouse cannot check the address. You are still signed in; sign out at /logout.")
		return
	}
	if after != "" && !slices.Contains(c.PostLogoutRedirectURIs, after) {
		p.Pages.Message(w, r, http.StatusBadRequest, "Unregistered return address",
			"The app asked to return to an address that is not one of its post_logout_redirect_uris in Gatehouse's config. You are still signed in; sign out at /logout.")
		return
	}
	who := p.Pages.Current(r)
	switch {
	case hint != "" && who == nil:
		if err := p.endHintedSignIn(r.Context(), c, h); err != nil {
			p.Pages.Message(w, r, http.StatusServiceUnavailable, "Sign-out failed", "Gatehouse cannot reach its database right now. Try again in a moment.")
			return
		}
	case hint != "" && subject(c, store.User{ID: who.UserID, Username: who.Username}) == h.Sub:
		if err := p.endBrowserSignIn(w, r, c, h); err != nil {
			p.Pages.Message(w, r, http.StatusServiceUnavailable, "Sign-out failed", "Gatehouse cannot reach its database right now. Try again in a moment.")
			return
		}
	case who == nil:
		// Nobody is signed in here: nothing to end, so nothing to ask.
	default:
		name := "An app"
		if c != nil {
			name = c.DisplayName()
		}
		p.Pages.ConfirmLogout(w, r, LogoutView{Client: name,
			Request: p.signedKey().Sign("oidc-logout", logoutTTL, who.SID, clientID, after, state)})
		return
	}
	p.afterLogout(w, r, after, state)
}

// confirmedLogout ends the browser's sign-in once its person confirmed it on the page
// logout showed, and returns to the app.
func (p *Provider) confirmedLogout(w http.ResponseWriter, r *http.Request) {
	if !p.Pages.CheckForm(w, r) {
		return
	}
	fields, ok := p.signedKey().Open("oidc-logout", r.PostFormValue("confirm"), 4)
	who := p.Pages.Current(r)
	if !ok || (who != nil && who.SID != fields[0]) {
		p.Pages.Message(w, r, http.StatusBadRequest, "Request expired", "This page expired or belongs to another sign-in. Nothing was changed; sign out at /logout.")
		return
	}
	clientID, after, state := fields[1], fields[2], fields[3]
	if who != nil {
		if err := p.Pages.EndSession(w, r); err != nil {
			p.Pages.Message(w, r, http.StatusServiceUnavailable, "Sign-out failed", "Gatehouse cannot reach its database right now. Try again in a moment.")
			return
		}
		p.Audit(store.Event{Kind: "oidc.logout", Actor: who.Username, Target: clientID, Detail: "confirmed"})
	}
	if c, ok := p.cfg().OIDC.ClientByID(clientID); !ok || !slices.Contains(c.PostLogoutRedirectURIs, after) {
		after = "" // the config changed meanwhile: the address is no longer the app's
	}
	p.afterLogout(w, r, after, state)
}

// endBrowserSignIn signs the browser out, and with it the hint's sign-in if that is
// another of the same person's (an older sign-in the app still held).
func (p *Provider) endBrowserSignIn(w http.ResponseWriter, r *http.Request, c *config.Client, h idTokenHint) error {
	who := p.Pages.Current(r)
	if err := p.Pages.EndSession(w, r); err != nil {
		return err
	}
	if h.SID != "" && h.SID != who.SID {
		if err := p.endHintedSignIn(r.Context(), c, h); err != nil {
			return err
		}
	}
	p.Audit(store.Event{Kind: "oidc.logout", Actor: who.Username, Target: c.ID})
	return nil
}

// endHintedSignIn ends every session of the sign-in the hint's sid names, if they are
// the hint's person's: what an app's server asks for when it signs someone out.
func (p *Provider) endHintedSignIn(ctx context.Context, c *config.Client, h idTokenHint) error {
	if h.SID == "" {
		return nil // an ID token from before sid: it names no sign-in
	}
	sessions, err := p.Store.SessionsBySID(ctx, h.SID)
	if err != nil {
		return err
	}
	for _, s := range sessions {
		u, err := p.Store.UserByID(ctx, s.UserID)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		if subject(c, u) != h.Sub {
			continue
		}
		if err := p.Pages.RevokeSession(ctx, c.ID, s); err != nil {
			return err
		}
		p.Audit(store.Event{Kind: "oidc.logout", Actor: u.Username, Target: c.ID, Detail: "sign-in " + h.SID})
	}
	return nil
}

// afterLogout sends the browser on: to the app's registered address with its state,
// or to Gatehouse's sign-in page.
func (p *Provider) afterLogout(w http.ResponseWriter, r *http.Request, after, state string) {
	switch {
	case after == "":
		http.Redirect(w, r, "/login?logged_out", http.StatusFound)
	case state != "":
		p.redirectWith(w, r, after, url.Values{"state": {state}})
	default:
		w.Header().Set("Cache-Control", "no-store")
		http.Redirect(w, r, after, http.StatusFound)
	}
}
