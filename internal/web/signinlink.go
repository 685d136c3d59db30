package web

import (
	"errors"
	"net/http"
	"time"

	"github.com/gatehouse-id/gatehouse/internal/authn"
	"github.com/gatehouse-id/gatehouse/internal/identity"
	"github.com/gatehouse-id/gatehouse/internal/store"
)

// A one-time sign-in link an admin made (identity.IssueSignInLink) opens a page with
// one button: the link is spent by the POST that button sends, not by the GET, so a
// mail scanner or a chat app's link preview opening it does not use it up.

// signInLinkOK reports whether token names an unexpired link, throttling wrong tokens
// per network like setup links (errThrottled once over the budget).
func (s *Server) signInLinkOK(r *http.Request, token string) (store.SignInLink, error) {
	limits := authn.SignInLinkLimits(s.network(r))
	if wait, err := s.Regulator.Wait(r.Context(), limits...); err != nil {
		return store.SignInLink{}, err
	} else if wait > 0 {
		s.throttled("sign-in link", "", s.clientIP(r))
		return store.SignInLink{}, errThrottled
	}
	err := store.ErrNotFound
	var l store.SignInLink
	if len(token) == 43 {
		l, err = s.Store.SignInLinkValid(r.Context(), identity.HashLinkToken(token), time.Now())
	}
	if errors.Is(err, store.ErrNotFound) {
		if ferr := s.Regulator.Fail(r.Context(), limits...); ferr != nil {
			return l, ferr
		}
	}
	return l, err
}

// signInLinkRefused answers a link that cannot be used.
func (s *Server) signInLinkRefused(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, errThrottled):
		s.message(w, http.StatusTooManyRequests, "Too many tries", "Too many wrong sign-in links came from your address. Wait 15 minutes and open the link again.")
	case errors.Is(err, store.ErrNotFound):
		s.message(w, http.StatusNotFound, "Sign-in link not valid",
			"This sign-in link was used already, has expired (links last 24 hours), or a newer one was made. Ask your admin for a new link.")
	default:
		s.loginError(w, err)
	}
}

func (s *Server) signInLinkPage(w http.ResponseWriter, r *http.Request) {
	token := r.URL.Query().Get("token")
	l, err := s.signInLinkOK(r, token)
	if err != nil {
		s.signInLinkRefused(w, err)
		return
	}
	u, err := s.Store.UserByID(r.Context(), l.UserID)
	if err != nil {
		s.signInLinkRefused(w, err)
		return
	}
	s.render(w, http.StatusOK, "signin_link.html", page{Title: "Sign in as " + u.Username, CSRF: s.csrfToken(w, r), Token: token,
		Extra: l.ExpiresAt})
}

// useSignInLink spends the link and signs its person in, then sends them to their
// account page to set a password or add a passkey.
func (s *Server) useSignInLink(w http.ResponseWriter, r *http.Request) {
	if !s.parseForm(w, r) {
		return
	}
	token := r.PostFormValue("token")
	if _, err := s.signInLinkOK(r, token); err != nil {
		s.signInLinkRefused(w, err)
		return
	}
	u, err := s.Directory.UseSignInLink(r.Context(), identity.HashLinkToken(token))
	if err != nil {
		s.signInLinkRefused(w, err)
		return
	}
	s.finishLogin(w, r, u, "link", "/account?welcome=1")
}
