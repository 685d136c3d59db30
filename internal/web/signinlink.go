package web

import (
	"errors"
	"net/http"
	"net/url"
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
	if l.Purpose == store.LinkVerify {
		http.Redirect(w, r, identity.VerifyEmailPath+"?token="+url.QueryEscape(token), http.StatusFound)
		return
	}
	u, err := s.Store.UserByID(r.Context(), l.UserID)
	if err != nil {
		s.signInLinkRefused(w, err)
		return
	}
	title := "Sign in as " + u.Username
	if l.Purpose == store.LinkReset {
		title = "Reset the password of " + u.Username
	}
	s.render(w, http.StatusOK, "signin_link.html", page{Title: title, CSRF: s.csrfToken(w, r), Token: token, Extra: l})
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
	u, purpose, err := s.Directory.UseSignInLink(r.Context(), identity.HashLinkToken(token))
	if err != nil {
		s.signInLinkRefused(w, err)
		return
	}
	if purpose == store.LinkReset {
		s.finishLogin(w, r, u, "reset", "/account?reset=1")
		return
	}
	s.finishLogin(w, r, u, "link", "/account?welcome=1")
}

// resetPage asks for a username or address to mail a reset link to.
func (s *Server) resetPage(w http.ResponseWriter, r *http.Request) {
	s.render(w, http.StatusOK, "reset.html", page{Title: "Forgot your password?", CSRF: s.csrfToken(w, r), Extra: s.Directory.CanMail()})
}

// requestReset mails a reset link when the account has a confirmed address, and
// answers the same whether or not it does. Requests are throttled per network.
func (s *Server) requestReset(w http.ResponseWriter, r *http.Request) {
	if !s.parseForm(w, r) {
		return
	}
	limits := authn.ResetLimits(s.network(r))
	if wait, err := s.Regulator.Wait(r.Context(), limits...); err != nil {
		s.loginError(w, err)
		return
	} else if wait > 0 {
		s.throttled("password reset", "", s.clientIP(r))
		s.message(w, http.StatusTooManyRequests, "Too many requests", "Too many password resets were asked for from your address. Wait 15 minutes and try again.")
		return
	}
	// Every request counts, found or not: the budget bounds the mail sent, too.
	if err := s.Regulator.Fail(r.Context(), limits...); err != nil {
		s.loginError(w, err)
		return
	}
	if err := s.Directory.RequestPasswordReset(r.Context(), r.PostFormValue("who")); err != nil {
		s.loginError(w, err)
		return
	}
	s.render(w, http.StatusOK, "message.html", page{Title: "Check your mail",
		Notice: "If that account has a confirmed email address, a link to reset its password is on its way there. It works for an hour."})
}

// verifyEmailPage shows the button that confirms an address: a mail scanner opening
// the link confirms nothing.
func (s *Server) verifyEmailPage(w http.ResponseWriter, r *http.Request) {
	token := r.URL.Query().Get("token")
	l, err := s.signInLinkOK(r, token)
	if err == nil && l.Purpose != store.LinkVerify {
		err = store.ErrNotFound
	}
	if err != nil {
		s.signInLinkRefused(w, err)
		return
	}
	s.render(w, http.StatusOK, "verify_email.html", page{Title: "Confirm your address", CSRF: s.csrfToken(w, r), Token: token})
}

func (s *Server) verifyEmail(w http.ResponseWriter, r *http.Request) {
	if !s.parseForm(w, r) {
		return
	}
	token := r.PostFormValue("token")
	if _, err := s.signInLinkOK(r, token); err != nil {
		s.signInLinkRefused(w, err)
		return
	}
	u, err := s.Directory.ConfirmEmail(r.Context(), identity.HashLinkToken(token))
	if err != nil {
		s.signInLinkRefused(w, err)
		return
	}
	s.render(w, http.StatusOK, "message.html", page{Title: "Address confirmed", Notice: u.Email + " is confirmed: apps are told it from your next sign-in to them."})
}
