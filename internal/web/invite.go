package web

import (
	"errors"
	"net/http"
	"strings"

	"github.com/gatehouse-id/gatehouse/internal/authn"
	"github.com/gatehouse-id/gatehouse/internal/identity"
	"github.com/gatehouse-id/gatehouse/internal/store"
)

// The invitation page: a person with a code makes their own account, which lands in
// the invitation's groups. The code is checked when the page opens with one, and
// spent atomically with the account's creation when the form is sent; wrong codes are
// throttled per network either way.

// inviteView is what the invitation page shows.
type inviteView struct {
	// Open is signup.open: a code is not needed, and SignUpGroups are what one gets
	// without.
	Open         bool
	SignUpGroups []string
	Code         string
	Groups       []string // of a valid code, so the person sees what they join
	Email        string   // the address the invitation is pinned to
	Domain       string
}

// checkInvitation reads a typed code for the page, throttled like setup links.
func (s *Server) checkInvitation(r *http.Request, code string) (identity.InvitationView, error) {
	limits := authn.InvitationLimits(s.network(r))
	if wait, err := s.Regulator.Wait(r.Context(), limits...); err != nil {
		return identity.InvitationView{}, err
	} else if wait > 0 {
		s.throttled("invitation code", "", s.clientIP(r))
		return identity.InvitationView{}, errThrottled
	}
	inv, err := s.Directory.InvitationFor(r.Context(), code)
	if errors.Is(err, identity.ErrInvitationNotValid) {
		if ferr := s.Regulator.Fail(r.Context(), limits...); ferr != nil {
			return inv, ferr
		}
	}
	return inv, err
}

func (s *Server) renderInvite(w http.ResponseWriter, r *http.Request, status int, v inviteView, f map[string]string, msg string) {
	title := "Join with an invitation"
	if su := s.cfg().SignUp; su.Open {
		v.Open, v.SignUpGroups, title = true, su.Groups, "Make your account"
	}
	s.render(w, status, "invite.html", page{Title: title, CSRF: s.csrfToken(w, r), Extra: v, Form: f, Error: msg})
}

func (s *Server) invitePage(w http.ResponseWriter, r *http.Request) {
	v := inviteView{Code: strings.TrimSpace(r.URL.Query().Get("code"))}
	if v.Code == "" {
		s.renderInvite(w, r, http.StatusOK, v, nil, "")
		return
	}
	inv, err := s.checkInvitation(r, v.Code)
	if msg, status, ok := s.invitationRefused(w, err); !ok {
		if status != 0 {
			s.renderInvite(w, r, status, v, nil, msg)
		}
		return
	}
	v.Groups, v.Email, v.Domain = inv.Groups, inv.Email, inv.Domain
	s.renderInvite(w, r, http.StatusOK, v, map[string]string{"email": inv.Email}, "")
}

// invitationRefused sorts a checked code: ok to go on, or the message and status to
// show, or (status 0) an answer already written for Gatehouse's own failure.
func (s *Server) invitationRefused(w http.ResponseWriter, err error) (string, int, bool) {
	var field *identity.FieldError
	switch {
	case err == nil:
		return "", 0, true
	case errors.Is(err, errThrottled):
		return "Too many wrong invitation codes came from your address. Wait 15 minutes and try again.", http.StatusTooManyRequests, false
	case errors.Is(err, identity.ErrInvitationNotValid):
		return upper(err.Error()) + ".", http.StatusNotFound, false
	case errors.Is(err, identity.ErrSignUpClosed):
		return upper(err.Error()) + ".", http.StatusForbidden, false
	case errors.As(err, &field):
		return upper(field.Detail) + ".", http.StatusBadRequest, false
	}
	if msg, status := refusedChange(err); status != 0 {
		return msg, status, false
	}
	s.loginError(w, err)
	return "", 0, false
}

// acceptInvite makes the account and signs its person in: to the apps page, or, with
// no password chosen, to the account page to add a passkey.
func (s *Server) acceptInvite(w http.ResponseWriter, r *http.Request) {
	if !s.parseForm(w, r) {
		return
	}
	f := map[string]string{}
	for _, k := range []string{"username", "email", "display_name"} {
		f[k] = strings.TrimSpace(r.PostFormValue(k))
	}
	v := inviteView{Code: strings.TrimSpace(r.PostFormValue("code"))}
	password := r.PostFormValue("password")
	// A refused form shows the invitation's groups again when its code is good.
	fail := func(status int, msg string) {
		if inv, err := s.Directory.InvitationFor(r.Context(), v.Code); err == nil {
			v.Groups, v.Email, v.Domain = inv.Groups, inv.Email, inv.Domain
		}
		s.renderInvite(w, r, status, v, f, msg)
	}
	limits := authn.InvitationLimits(s.network(r))
	if wait, err := s.Regulator.Wait(r.Context(), limits...); err != nil {
		s.loginError(w, err)
		return
	} else if wait > 0 {
		s.throttled("invitation code", "", s.clientIP(r))
		msg, status, _ := s.invitationRefused(w, errThrottled)
		s.renderInvite(w, r, status, v, f, msg)
		return
	}
	if password != r.PostFormValue("password_confirm") {
		fail(http.StatusBadRequest, "The two passwords differ: nothing was made.")
		return
	}
	nu := identity.NewUser{Username: f["username"], Email: f["email"], DisplayName: f["display_name"], Password: password}
	var u store.User
	var err error
	if v.Code == "" && s.cfg().SignUp.Open {
		// Open sign-up: every account made counts against the network's budget.
		if err = s.Regulator.Fail(r.Context(), limits...); err == nil {
			u, err = s.Directory.SignUp(r.Context(), nu)
		}
	} else {
		u, err = s.Directory.AcceptInvitation(r.Context(), v.Code, nu)
	}
	if errors.Is(err, identity.ErrInvitationNotValid) { // a wrong code, or one used up meanwhile
		if ferr := s.Regulator.Fail(r.Context(), limits...); ferr != nil {
			s.loginError(w, ferr)
			return
		}
	}
	if msg, status, ok := s.invitationRefused(w, err); !ok {
		if status != 0 {
			fail(status, msg+" Nothing was made.")
		}
		return
	}
	method, next := "password", "/"
	if password == "" {
		method, next = "invitation", "/account?welcome=1"
	}
	s.finishLogin(w, r, u, method, next)
}
