package web

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gatehouse-id/gatehouse/internal/authn"
	"github.com/gatehouse-id/gatehouse/internal/identity"
	"github.com/gatehouse-id/gatehouse/internal/store"
)

// LoginURL is the login page that brings the user back to returnTo afterwards.
func LoginURL(publicURL, returnTo string) string {
	return publicURL + "/login?rd=" + url.QueryEscape(returnTo)
}

// StepUpURL is the page that asks a signed-in user for a second factor, then returns
// them to returnTo.
func StepUpURL(publicURL, returnTo string) string {
	return publicURL + "/login/step-up?rd=" + url.QueryEscape(returnTo)
}

func (s *Server) home(w http.ResponseWriter, r *http.Request) {
	p := s.current(r)
	rd := s.safeRD(r.URL.Query().Get("rd")) // the portal's root takes rd, as Authelia's does
	switch {
	case p == nil && rd != "":
		http.Redirect(w, r, LoginURL("", rd), http.StatusFound)
		return
	case p == nil:
		http.Redirect(w, r, "/login", http.StatusFound)
		return
	case rd != "":
		http.Redirect(w, r, rd, http.StatusFound)
		return
	}
	// App icons come from the apps' own sites (apps[].icon, https only).
	s.renderStyled(w, http.StatusOK, "home.html", page{Title: "Signed in", User: p, CSRF: s.csrfToken(w, r), Extra: s.appsFor(p)}, "'self'", "'self' data: https:")
}

func (s *Server) loginPage(w http.ResponseWriter, r *http.Request) {
	rd := s.safeRD(r.URL.Query().Get("rd"))
	again := r.URL.Query().Get("prompt") == "login" // an app asked for a fresh sign-in
	if p := s.current(r); p != nil && rd != "" && !again {
		http.Redirect(w, r, rd, http.StatusFound)
		return
	}
	pg := page{Title: "Sign in", CSRF: s.csrfToken(w, r), RD: rd, Extra: s.loginCeremony()}
	if again {
		pg.Notice = "The app you are signing in to asks you to confirm who you are: sign in again."
	}
	if r.URL.Query().Get("rd") != "" && rd == "" {
		pg.Notice = "The link you followed asked to return to an address outside this site; you will land on Gatehouse after signing in."
	}
	if r.URL.Query().Has("logged_out") {
		pg.Notice = "You are signed out."
	}
	s.render(w, http.StatusOK, "login.html", pg)
}

func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	if !s.parseForm(w, r) {
		return
	}
	username, password := r.PostFormValue("username"), r.PostFormValue("password")
	rd := s.safeRD(r.PostFormValue("rd"))
	fail := func(status int, msg string) {
		s.render(w, status, "login.html", page{Title: "Sign in", CSRF: s.csrfToken(w, r), RD: rd, Error: msg,
			Form: map[string]string{"username": username}, Extra: s.loginCeremony()})
	}
	if username == "" || password == "" {
		fail(http.StatusBadRequest, "Enter your username and password.")
		return
	}
	if identity.CheckUsername(username) != nil {
		username = "" // never echo a hostile name back
	}
	ip := s.clientIP(r)
	u, err := s.Store.UserByUsername(r.Context(), username)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		s.loginError(w, err)
		return
	}
	network, device, key := authn.Network(ip), s.knownDevice(r, u.ID), strings.ToLower(username)
	limits := authn.PasswordLimits(network, key, device)
	if wait, err := s.Regulator.Wait(r.Context(), limits...); err != nil {
		s.loginError(w, err)
		return
	} else if wait > 0 {
		s.throttled("password", username, ip)
		fail(http.StatusTooManyRequests, "Too many failed sign-ins for this account or from your address. Try again in "+minutes(wait)+".")
		return
	}
	// Verify even when the user is missing, so timing does not reveal who exists.
	verr := s.Hasher.Verify(r.Context(), u.PasswordHash, password)
	if verr != nil && !errors.Is(verr, identity.ErrPasswordMismatch) && u.PasswordHash != "" {
		s.loginError(w, verr)
		return
	}
	if verr != nil || u.ID == "" || u.Disabled {
		if err := s.Regulator.Fail(r.Context(), limits...); err != nil {
			s.loginError(w, err)
			return
		}
		s.Metrics.Logins.WithLabelValues("failure").Inc()
		s.Audit(store.Event{Kind: "login.failed", Actor: "anonymous", Target: username, Detail: "from " + ip})
		fail(http.StatusUnauthorized, "Wrong username or password.")
		return
	}
	if err := s.Regulator.Forget(r.Context(), authn.PasswordSuccess(network, key, device)...); err != nil {
		s.loginError(w, err)
		return
	}
	if f, err := s.factorsOf(r, u); err != nil {
		s.loginError(w, err)
		return
	} else if f.any() {
		s.secondFactorPage(w, r, http.StatusOK, f, s.sign("login-pending", pendingLoginTTL, u.ID, rd), "")
		return
	}
	s.finishLogin(w, r, u, "password", rd)
}

// finishLogin ends every successful sign-in the same way: the session this browser
// had (a step-up, or signing in again) is ended, a new one for method starts, and the
// browser goes on to rd.
func (s *Server) finishLogin(w http.ResponseWriter, r *http.Request, u store.User, method, rd string) {
	if prev := s.current(r); prev != nil && prev.UserID == u.ID {
		// The same person again (a step-up): the new session carries on the sign-in,
		// and starts before the old one ends, so that at no moment has the sign-in
		// ended for the apps that hold grants of it.
		if err := s.startSession(w, r, u, method, prev.SID); err != nil {
			s.loginError(w, err)
			return
		}
		if err := s.endBrowserSessions(r); err != nil {
			s.Log.Warn("ending the session a step-up replaced failed; it lasts until it expires or is revoked", "user", u.Username, "error", err.Error())
		}
	} else {
		// Someone else, or nobody, was signed in here: their sign-in ends first.
		if err := s.endBrowserSessions(r); err != nil {
			s.loginError(w, err)
			return
		}
		if err := s.startSession(w, r, u, method, ""); err != nil {
			s.loginError(w, err)
			return
		}
	}
	if s.knownDevice(r, u.ID) == "" {
		// Webhooks, the audit log and the person (by mail) hear of it: "was that you?"
		// is asked of these.
		s.Audit(store.Event{Kind: "login.new_device", Actor: u.Username, Target: u.Username, TargetID: u.ID,
			Detail: method + " from " + s.clientIP(r), Fields: map[string]string{"method": method, "ip": s.clientIP(r), "user_agent": clip(r.UserAgent(), 200)}})
		if err := s.Directory.NotifyNewSignIn(r.Context(), u, method+" from "+s.clientIP(r)+", "+clip(r.UserAgent(), 120)); err != nil {
			s.Log.Warn("the new sign-in mail was not queued", "user", u.Username, "error", err.Error())
		}
	}
	s.rememberDevice(w, r, u.ID)
	s.Metrics.Logins.WithLabelValues("success").Inc()
	http.Redirect(w, r, orDefault(rd, "/"), http.StatusSeeOther)
}

func (s *Server) startSession(w http.ResponseWriter, r *http.Request, u store.User, method, sid string) error {
	token, sess, err := s.Sessions.Create(r.Context(), u, method, s.clientIP(r), r.UserAgent(), sid)
	if err != nil {
		return err
	}
	http.SetCookie(w, s.sessionCookie(token, int(time.Until(sess.ExpiresAt).Seconds())))
	s.Audit(store.Event{Kind: "login.succeeded", Actor: u.Username, Target: u.Username, Detail: method + " from " + sess.IP})
	return nil
}

func (s *Server) loginError(w http.ResponseWriter, err error) {
	s.Metrics.Logins.WithLabelValues("error").Inc()
	s.Log.Error("login failed on a server error", "error", err.Error())
	s.message(w, http.StatusServiceUnavailable, "Sign-in unavailable",
		"Gatehouse cannot reach its database right now. Wait a moment and try again.")
}

func (s *Server) logoutPage(w http.ResponseWriter, r *http.Request) {
	p, err := s.currentOrErr(r)
	if err != nil {
		s.Log.Error("logout page: checking the session failed", "error", err.Error())
		s.message(w, http.StatusServiceUnavailable, "Sign-out unavailable",
			"Gatehouse cannot reach its database right now, so it cannot sign you out: you are still signed in. Try again in a moment.")
		return
	}
	if p == nil {
		http.Redirect(w, r, "/login?logged_out", http.StatusFound)
		return
	}
	s.render(w, http.StatusOK, "logout.html", page{Title: "Sign out", User: p, CSRF: s.csrfToken(w, r), RD: s.safeRD(r.URL.Query().Get("rd"))})
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	if !s.parseForm(w, r) {
		return
	}
	who := s.current(r)
	if err := s.endBrowserSessions(r); err != nil {
		s.Log.Error("logout: revoking the session failed", "error", err.Error())
		s.message(w, http.StatusServiceUnavailable, "Sign-out failed",
			"Gatehouse cannot reach its database right now, so you are still signed in, everywhere. Try again in a moment.")
		return
	}
	http.SetCookie(w, s.sessionCookie("", -1))
	if who != nil {
		s.Audit(store.Event{Kind: "logout", Actor: who.Username, Target: who.Username, Detail: "from " + s.clientIP(r)})
	}
	if rd := s.safeRD(r.PostFormValue("rd")); rd != "" {
		http.Redirect(w, r, rd, http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, "/login?logged_out", http.StatusSeeOther)
}

// endBrowserSessions ends every session whose cookie this browser sent, on every
// replica. Signing out also clears the cookie; a sign-in replaces it.
func (s *Server) endBrowserSessions(r *http.Request) error {
	for _, c := range r.CookiesNamed(s.cfg().Session.CookieName) {
		if err := s.Sessions.Revoke(r.Context(), c.Value); err != nil {
			return err
		}
	}
	return nil
}

func urlQueryEscape(s string) string { return url.QueryEscape(s) }
