package web

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/gatehouse-id/gatehouse/internal/identity"
	"github.com/gatehouse-id/gatehouse/internal/session"
	"github.com/gatehouse-id/gatehouse/internal/store"
)

// SetupLinkLifetime is how long a first-admin setup link works.
const SetupLinkLifetime = 24 * time.Hour

// IssueSetupLink returns a one-time link for creating the first admin, or "" when an
// enabled admin exists already. Only the token's hash is stored.
func (s *Server) IssueSetupLink(ctx context.Context) (string, error) {
	admins, err := s.Directory.AdminUserIDs(ctx)
	if err != nil || len(admins) > 0 {
		return "", err
	}
	token := randomToken()
	if err := s.Store.CreateSetupToken(ctx, session.HashToken(token), time.Now().Add(SetupLinkLifetime)); err != nil {
		return "", err
	}
	return s.cfg().Server.PublicURL + "/setup?token=" + token, nil
}

func (s *Server) setupTokenOK(r *http.Request, token string) (bool, error) {
	if len(token) != 43 {
		return false, nil
	}
	return s.Store.SetupTokenValid(r.Context(), session.HashToken(token), time.Now())
}

const setupGone = "This setup link was used already or has expired. Restart Gatehouse while no admin exists to get a new one, or sign in."

func (s *Server) setupPage(w http.ResponseWriter, r *http.Request) {
	token := r.URL.Query().Get("token")
	ok, err := s.setupTokenOK(r, token)
	if err != nil {
		s.loginError(w, err)
		return
	}
	if !ok {
		s.message(w, http.StatusNotFound, "Setup link not valid", setupGone)
		return
	}
	s.render(w, http.StatusOK, "setup.html", page{Title: "Create the first admin", CSRF: s.csrfToken(w, r), Token: token,
		Extra: s.cfg().Access.AdminGroups[0]})
}

func (s *Server) setup(w http.ResponseWriter, r *http.Request) {
	if !s.parseForm(w, r) {
		return
	}
	f := map[string]string{}
	for _, k := range []string{"username", "email", "display_name"} {
		f[k] = r.PostFormValue(k)
	}
	token, password := r.PostFormValue("token"), r.PostFormValue("password")
	fail := func(status int, msg string) {
		s.render(w, status, "setup.html", page{Title: "Create the first admin", CSRF: s.csrfToken(w, r), Token: token,
			Error: msg, Form: f, Extra: s.cfg().Access.AdminGroups[0]})
	}
	if ok, err := s.setupTokenOK(r, token); err != nil || !ok {
		s.message(w, http.StatusNotFound, "Setup link not valid", setupGone)
		return
	}
	if err := errors.Join(identity.CheckUsername(f["username"]), identity.CheckEmail(f["email"]),
		identity.CheckDisplayName(f["display_name"]), identity.CheckPassword(password)); err != nil {
		fail(http.StatusBadRequest, err.Error())
		return
	}
	if password != r.PostFormValue("password_confirm") {
		fail(http.StatusBadRequest, "The two passwords differ.")
		return
	}
	hash, err := s.Hasher.Hash(r.Context(), password)
	if err != nil {
		s.loginError(w, err)
		return
	}
	res, err := s.Store.CompleteSetup(r.Context(), session.HashToken(token), time.Now(),
		store.User{Username: f["username"], Email: f["email"], DisplayName: f["display_name"], PasswordHash: hash},
		s.cfg().Access.AdminGroups[0])
	switch {
	case errors.Is(err, store.ErrNotFound):
		s.message(w, http.StatusNotFound, "Setup link not valid", setupGone)
		return
	case errors.Is(err, store.ErrConflict):
		fail(http.StatusConflict, "That username is taken; choose another.")
		return
	case err != nil:
		s.loginError(w, err)
		return
	}
	s.Audit(store.Event{Kind: "setup.completed", Actor: res.User.Username, Target: res.User.Username, Detail: "admin group: " + res.Group.Name})
	if err := s.startSession(w, r, res.User, "setup"); err != nil {
		s.loginError(w, err)
		return
	}
	http.Redirect(w, r, "/", http.StatusSeeOther)
}
