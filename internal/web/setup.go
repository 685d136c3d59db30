package web

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/gatehouse-id/gatehouse/internal/authn"
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
	if err := s.Directory.IssueSetupToken(ctx, session.HashToken(token), time.Now().Add(SetupLinkLifetime)); err != nil {
		return "", err
	}
	return s.cfg().Server.PublicURL + "/setup?token=" + token, nil
}

// setupTokenOK reports whether token is a valid setup link while no admin exists: the
// link dies as soon as any admin does (made with the CLI, say), not only when used.
// Wrong tokens are throttled per address like passwords, and a throttled address is
// told so (errThrottled).
func (s *Server) setupTokenOK(r *http.Request, token string) (bool, error) {
	limits := authn.SetupLinkLimits(s.network(r))
	if wait, err := s.Regulator.Wait(r.Context(), limits...); err != nil || wait > 0 {
		if err == nil {
			s.throttled("setup link", "", s.clientIP(r))
			err = errThrottled
		}
		return false, err
	}
	ok := false
	if len(token) == 43 {
		var err error
		if ok, err = s.Store.SetupTokenValid(r.Context(), session.HashToken(token), time.Now()); err != nil {
			return false, err
		}
	}
	if !ok {
		return false, s.Regulator.Fail(r.Context(), limits...)
	}
	admins, err := s.Directory.AdminUserIDs(r.Context())
	return err == nil && len(admins) == 0, err
}

// errThrottled means the client made too many wrong guesses and must wait.
var errThrottled = errors.New("too many wrong guesses from this address")

// setupRefused answers a setup request whose link cannot be used.
func (s *Server) setupRefused(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, errThrottled):
		s.message(w, http.StatusTooManyRequests, "Too many tries", "Too many wrong setup links came from your address. Wait 15 minutes and open the link again.")
	case err != nil:
		s.loginError(w, err)
	default:
		s.message(w, http.StatusNotFound, "Setup link not valid", setupGone)
	}
}

const setupGone = "This setup link was used already, has expired, or an admin exists now. Restart Gatehouse while no admin exists to get a new one, or sign in."

func (s *Server) setupPage(w http.ResponseWriter, r *http.Request) {
	token := r.URL.Query().Get("token")
	if ok, err := s.setupTokenOK(r, token); !ok {
		s.setupRefused(w, err)
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
	if ok, err := s.setupTokenOK(r, token); !ok {
		s.setupRefused(w, err)
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
	res, err := s.Directory.CompleteSetup(r.Context(), session.HashToken(token),
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
	if err := s.startSession(w, r, res.User, "setup", ""); err != nil {
		s.loginError(w, err)
		return
	}
	http.Redirect(w, r, "/", http.StatusSeeOther)
}
