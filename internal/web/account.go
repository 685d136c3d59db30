package web

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gatehouse-id/gatehouse/internal/authn"
	"github.com/gatehouse-id/gatehouse/internal/config"
	"github.com/gatehouse-id/gatehouse/internal/identity"
	"github.com/gatehouse-id/gatehouse/internal/mfa"
	"github.com/gatehouse-id/gatehouse/internal/session"
	"github.com/gatehouse-id/gatehouse/internal/store"
)

// accountView is what the account page shows.
type accountView struct {
	Passkeys     []store.Passkey
	AddPasskey   *ceremony // nil when passkeys cannot work here (see the log)
	Password     bool      // the user has one
	Recent       bool      // signed in within RecentAuth: removals need no password
	NeedPassword bool      // removals on this page must carry the current password
	TOTP         bool
	RecoveryLeft int
	Sessions     []store.Session
	CurrentID    string
	AppPasswords []store.AppPassword
	// AppPasswordHosts are the hosts of the rules with allow_app_passwords; none
	// hides the section.
	AppPasswordHosts []string
	// Linked are the accounts at other providers that sign in to this one;
	// Providers the login_providers to link one more from.
	Linked        []store.UpstreamIdentity
	Providers     []config.LoginProvider
	Notice, Error string
}

// account is the signed-in user's own page: profile, password, second factor, sessions.
func (s *Server) account(w http.ResponseWriter, r *http.Request) {
	notice := ""
	if r.URL.Query().Has("welcome") { // after a sign-in link
		notice = "You are signed in. Set a password or add a passkey below now: the link you used works only once."
	}
	if r.URL.Query().Has("reset") {
		notice = "You are signed in, and every other session of yours has ended. Choose a new password below."
	}
	if id := r.URL.Query().Get("linked"); id != "" {
		if p, ok := s.cfg().ProviderByID(id); ok {
			notice = "Linked: you can sign in with " + cmpName(p) + " from now on."
		}
	}
	s.renderAccount(w, r, http.StatusOK, notice, "")
}

func (s *Server) renderAccount(w http.ResponseWriter, r *http.Request, status int, notice, errMsg string) {
	p := s.current(r)
	if p == nil {
		http.Redirect(w, r, LoginURL("", "/account"), http.StatusFound)
		return
	}
	ctx := r.Context()
	v := accountView{CurrentID: p.SessionID}
	_, _, err := s.Store.TOTP(ctx, p.UserID)
	v.TOTP = err == nil
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		s.loginError(w, err)
		return
	}
	u, err := s.Store.UserByID(ctx, p.UserID)
	if err == nil {
		v.Password = u.PasswordHash != ""
		v.Recent = time.Since(p.AuthenticatedAt) < RecentAuth
		v.NeedPassword = v.Password && !v.Recent
		v.RecoveryLeft, err = s.Store.UnusedRecoveryCodes(ctx, p.UserID)
	}
	if err == nil {
		v.Sessions, err = s.Store.ListSessions(ctx, p.UserID)
	}
	if err == nil {
		v.Passkeys, err = s.Store.Passkeys(ctx, p.UserID)
	}
	if err == nil && len(s.cfg().LoginProviders) > 0 {
		v.Providers = s.cfg().LoginProviders
		v.Linked, err = s.Store.UpstreamIdentities(ctx, p.UserID)
	}
	if v.AppPasswordHosts = appPasswordHosts(s.cfg().Access); err == nil && v.AppPasswordHosts != nil {
		v.AppPasswords, err = s.Store.AppPasswords(ctx, p.UserID)
	}
	if err == nil {
		if v.AddPasskey, err = s.registrationCeremony(r, u); err != nil {
			s.Log.Warn("adding passkeys is off", "error", err.Error())
			err = nil
		}
	}
	if err != nil {
		s.loginError(w, err)
		return
	}
	s.render(w, status, "account.html", page{Title: "Your account", User: p, CSRF: s.csrfToken(w, r), Notice: notice, Error: errMsg, Extra: v})
}

// accountPost runs one change from the account page for the signed-in user.
func (s *Server) accountPost(change func(w http.ResponseWriter, r *http.Request, p *session.Principal, u store.User) (notice string, err error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !s.parseForm(w, r) {
			return
		}
		p := s.current(r)
		if p == nil {
			http.Redirect(w, r, "/login", http.StatusSeeOther)
			return
		}
		u, err := s.Store.UserByID(r.Context(), p.UserID)
		if err != nil {
			s.loginError(w, err)
			return
		}
		notice, err := change(w, r, p, u)
		var bad userError
		switch {
		case errors.Is(err, errAnswered):
		case errors.As(err, &bad):
			s.renderAccount(w, r, http.StatusBadRequest, "", bad.msg)
		case err != nil:
			s.loginError(w, err)
		default:
			s.renderAccount(w, r, http.StatusOK, notice, "")
		}
	}
}

// errAnswered tells accountPost that the change wrote its own page.
var errAnswered = errors.New("answered")

// userError is a refusal to show on the page, not a server failure.
type userError struct{ msg string }

func (e userError) Error() string { return e.msg }

// RecentAuth is how long after signing in a user may remove credentials without
// proving who they are again.
const RecentAuth = 5 * time.Minute

// reauthenticate allows a sensitive change when the user signed in within RecentAuth,
// or typed their current password correctly just now.
func (s *Server) reauthenticate(r *http.Request, p *session.Principal, u store.User) error {
	given := r.PostFormValue("current_password")
	if given == "" && time.Since(p.AuthenticatedAt) < RecentAuth {
		return nil
	}
	if given == "" {
		if u.PasswordHash == "" {
			return userError{"You signed in more than 5 minutes ago. Sign out and in again with your passkey, then do this within 5 minutes."}
		}
		return userError{"Confirm with your current password (or sign in again and do this within 5 minutes): nothing was changed."}
	}
	// A borrowed session gets a few guesses at the owner's password, throttled like
	// sign-ins and counted in the database, not a free oracle.
	limits := authn.ReauthLimits(p.SessionID)
	if wait, err := s.Regulator.Wait(r.Context(), limits...); err != nil {
		return err
	} else if wait > 0 {
		s.throttled("current password", u.Username, s.clientIP(r))
		return userError{"Too many wrong current passwords in this session. Sign out and in again, or wait " + minutes(wait) + ": nothing was changed."}
	}
	err := s.Hasher.Verify(r.Context(), u.PasswordHash, given)
	if errors.Is(err, identity.ErrPasswordMismatch) {
		if err := s.Regulator.Fail(r.Context(), limits...); err != nil {
			return err
		}
		return userError{"Your current password is wrong: nothing was changed."}
	}
	return err
}

func (s *Server) changeProfile(w http.ResponseWriter, r *http.Request, p *session.Principal, u store.User) (string, error) {
	email, name := r.PostFormValue("email"), r.PostFormValue("display_name")
	if err := errors.Join(identity.CheckEmail(email), identity.CheckDisplayName(name)); err != nil {
		return "", userError{err.Error()}
	}
	pending, err := s.Directory.ChangeOwnProfile(r.Context(), u.ID, email, name)
	if err != nil {
		return "", err
	}
	if pending {
		shown := u.Email
		if shown == "" {
			shown = "no address"
		}
		sent, err := s.Directory.RequestEmailConfirmation(r.Context(), u.ID)
		if err != nil {
			return "", err
		}
		how := "ask an admin"
		if sent {
			how = "open the link just mailed to it"
		}
		return fmt.Sprintf("Profile saved. Your new email address %s is used once it is confirmed (%s); until then apps see %s.", email, how, shown), nil
	}
	return "Profile saved.", nil
}

func (s *Server) changePassword(w http.ResponseWriter, r *http.Request, p *session.Principal, u store.User) (string, error) {
	// Changing a password always takes the current one (when there is one), however
	// recent the sign-in: it is what password managers expect.
	if u.PasswordHash != "" && r.PostFormValue("current_password") == "" {
		return "", userError{"Type your current password: nothing was changed."}
	}
	if err := s.reauthenticate(r, p, u); err != nil {
		return "", err
	}
	next := r.PostFormValue("new_password")
	if err := identity.CheckPassword(next); err != nil {
		return "", userError{err.Error()}
	}
	if next != r.PostFormValue("new_password_confirm") {
		return "", userError{"The two new passwords differ."}
	}
	// The Directory drops the ended sessions from this replica's cache as it commits;
	// the feed tells the others.
	if _, err := s.Directory.ChangeOwnPassword(r.Context(), u.ID, p.SessionID, next); err != nil {
		return "", err
	}
	return "Password changed; your other sessions were signed out, and apps signed in with your account must sign in again.", nil
}

func (s *Server) removeTOTP(w http.ResponseWriter, r *http.Request, p *session.Principal, u store.User) (string, error) {
	if err := s.removeCredential(r, p, u, identity.CredentialTOTP); err != nil {
		return "", err
	}
	return "Authenticator app and its recovery codes removed.", nil
}

// newRecoveryCodes replaces the user's recovery codes and shows the new ones, once.
func (s *Server) newRecoveryCodes(w http.ResponseWriter, r *http.Request, p *session.Principal, u store.User) (string, error) {
	if err := s.reauthenticate(r, p, u); err != nil {
		return "", err
	}
	codes, hashes := mfa.NewRecoveryCodes()
	if err := s.Directory.ReplaceRecoveryCodes(r.Context(), p.UserID, hashes); err != nil {
		return "", err
	}
	s.showRecoveryCodes(w, p, codes)
	return "", errAnswered
}

// showRecoveryCodes shows fresh recovery codes, once: only their hashes are kept.
func (s *Server) showRecoveryCodes(w http.ResponseWriter, p *session.Principal, codes []string) {
	s.render(w, http.StatusOK, "recovery.html", page{Title: "Recovery codes", User: p, Extra: codes})
}

func (s *Server) revokeSessions(w http.ResponseWriter, r *http.Request, p *session.Principal, u store.User) (string, error) {
	if r.PostFormValue("session") == "others" {
		return "Signed out everywhere else.", s.endOtherSessions(r, p)
	}
	ss, err := s.Store.SessionByID(r.Context(), r.PostFormValue("session"))
	if errors.Is(err, store.ErrNotFound) || (err == nil && ss.UserID != u.ID) {
		return "", userError{"That session no longer exists."}
	}
	if err == nil {
		err = s.endSession(r, u.Username, ss)
	}
	return "Session signed out.", err
}

func (s *Server) endOtherSessions(r *http.Request, p *session.Principal) error {
	all, err := s.Store.ListSessions(r.Context(), p.UserID)
	for _, ss := range all {
		if err == nil && ss.ID != p.SessionID {
			err = s.endSession(r, p.Username, ss)
		}
	}
	return err
}

// endSession revokes a session everywhere (the Directory drops it from this replica's
// cache as it commits; the feed tells the others).
func (s *Server) endSession(r *http.Request, actor string, ss store.Session) error {
	return s.Directory.RevokeSession(r.Context(), actor, ss)
}

// appPasswordHosts lists the hosts of the rules that take app passwords.
func appPasswordHosts(a config.Access) []string {
	var hosts []string
	for _, r := range a.Rules {
		if r.AllowAppPasswords {
			hosts = append(hosts, r.Hosts...)
		}
	}
	return slices.Compact(hosts)
}

// appPasswordShown is what the page showing a new app password needs.
type appPasswordShown struct{ Name, Hosts, Secret string }

// createAppPassword makes an app password for the signed-in user and shows it once.
// Like adding a passkey, it takes a recent sign-in or the current password: a
// borrowed session must not mint a credential that outlives it.
func (s *Server) createAppPassword(w http.ResponseWriter, r *http.Request, p *session.Principal, u store.User) (string, error) {
	if err := s.reauthenticate(r, p, u); err != nil {
		return "", err
	}
	var bad *identity.FieldError
	secret, made, err := s.Directory.CreateAppPassword(r.Context(), u.Username, u.Username, r.PostFormValue("name"),
		strings.FieldsFunc(r.PostFormValue("hosts"), func(c rune) bool { return c == ' ' || c == ',' || c == '\n' || c == '\r' || c == '\t' }), 0)
	switch {
	case errors.Is(err, store.ErrConflict):
		return "", userError{fmt.Sprintf("You already have an app password named %q: choose another name, or revoke that one first.", r.PostFormValue("name"))}
	case errors.As(err, &bad):
		return "", userError{bad.Detail + ": nothing was made."}
	case err != nil:
		return "", err
	}
	s.render(w, http.StatusOK, "app_password.html", page{Title: "Your new app password", User: p, Extra: appPasswordShown{made.Name, made.Hosts, secret}})
	return "", errAnswered
}

// revokeAppPassword revokes one of the signed-in user's app passwords by its id.
func (s *Server) revokeAppPassword(w http.ResponseWriter, r *http.Request, p *session.Principal, u store.User) (string, error) {
	gone, err := s.Directory.RevokeAppPassword(r.Context(), u.Username, u.Username, r.PostFormValue("id"))
	if errors.Is(err, store.ErrNotFound) {
		return "", userError{"That app password no longer exists."}
	}
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("App password %q revoked: the app using it is refused from now on.", gone.Name), nil
}
