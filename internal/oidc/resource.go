package oidc

import (
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

// logout is RP-initiated logout. With a valid id_token_hint the browser is signed out
// of Gatehouse and sent to the app's registered post_logout_redirect_uri; a hint that
// Gatehouse did not sign is refused; without a hint the person is asked to confirm.
func (p *Provider) logout(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		p.Pages.Message(w, r, http.StatusBadRequest, "Bad sign-out request", "The app's sign-out request could not be read.")
		return
	}
	hint, after := r.Form.Get("id_token_hint"), r.Form.Get("post_logout_redirect_uri")
	clientID := r.Form.Get("client_id")
	if hint == "" {
		if after != "" {
			p.Pages.Message(w, r, http.StatusBadRequest, "Sign-out needs the app's ID token",
				"The app asked to be returned after signing out but sent no id_token_hint, so Gatehouse cannot tell it is really that app. Sign out at /logout.")
			return
		}
		http.Redirect(w, r, "/logout", http.StatusFound)
		return
	}
	payload, err := p.verify(r.Context(), hint)
	var h idTokenHint
	if err == nil {
		err = json.Unmarshal(payload, &h)
	}
	if err != nil || h.Iss != p.issuer() || h.audience() == "" || (clientID != "" && clientID != h.audience()) {
		p.Pages.Message(w, r, http.StatusBadRequest, "Sign-out refused",
			"The app sent an id_token_hint that Gatehouse did not issue (or that names another app). Nothing was changed; sign out at /logout.")
		return
	}
	c, ok := p.cfg().OIDC.ClientByID(h.audience())
	if after != "" && (!ok || !slices.Contains(c.PostLogoutRedirectURIs, after)) {
		p.Pages.Message(w, r, http.StatusBadRequest, "Unregistered return address",
			"The app asked to return to an address that is not one of its post_logout_redirect_uris in Gatehouse's config. You are still signed in; sign out at /logout.")
		return
	}
	// A valid ID token proves which app asks, not that this browser is the one it was
	// issued to: anyone holding someone's old ID token could sign a victim's browser
	// out with it. Only the browser's own sign-in is ended without asking.
	if who := p.Pages.Current(r); who != nil && (!ok || subject(c, store.User{ID: who.UserID, Username: who.Username}) != h.Sub) {
		confirm := "/logout"
		if after != "" {
			confirm += "?rd=" + url.QueryEscape(after)
		}
		http.Redirect(w, r, confirm, http.StatusFound)
		return
	}
	if err := p.Pages.EndSession(w, r); err != nil {
		p.Pages.Message(w, r, http.StatusServiceUnavailable, "Sign-out failed", "Gatehouse cannot reach its database right now. Try again in a moment.")
		return
	}
	p.Audit(store.Event{Kind: "oidc.logout", Actor: h.Sub, Target: h.audience()})
	if after == "" {
		http.Redirect(w, r, "/login?logged_out", http.StatusFound)
		return
	}
	if state := r.Form.Get("state"); state != "" {
		p.redirectWith(w, r, after, map[string][]string{"state": {state}})
		return
	}
	http.Redirect(w, r, after, http.StatusFound)
}
