package web

import (
	"crypto/subtle"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gatehouse-id/gatehouse/internal/config"
	"github.com/gatehouse-id/gatehouse/internal/identity"
	"github.com/gatehouse-id/gatehouse/internal/session"
	"github.com/gatehouse-id/gatehouse/internal/store"
	"github.com/gatehouse-id/gatehouse/internal/upstream"
)

// Signing in with another provider. The flow — what it is for (sign in, link to the
// signed-in account, join with an invitation), its nonce and PKCE verifier, where to
// go after — is held in the database under the hash of its state, so it survives any
// redirect and any replica; the browser holds the state in a cookie too, so a
// callback that did not start in this browser (a login CSRF) is refused.

// upstreamCookie holds the state of the browser's sign-in through a provider.
const upstreamCookie = "gatehouse_upstream"

// upstreamFlowLifetime is how long a person has at the provider.
const upstreamFlowLifetime = 10 * time.Minute

func (s *Server) upstreamRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /login/provider/{id}", s.upstreamSignIn)
	mux.HandleFunc("POST /login/provider/{id}", s.upstreamStart)
	mux.HandleFunc("GET /login/provider/{id}/callback", s.upstreamCallback)
	mux.Handle("POST /account/upstream/remove", s.accountPost(s.removeUpstream))
}

// redirectURI is a provider's callback on Gatehouse.
func (s *Server) redirectURI(id string) string {
	return s.cfg().Server.PublicURL + "/login/provider/" + url.PathEscape(id) + "/callback"
}

func (s *Server) provider(w http.ResponseWriter, r *http.Request) (config.LoginProvider, bool) {
	p, ok := s.cfg().ProviderByID(r.PathValue("id"))
	if !ok {
		s.message(w, http.StatusNotFound, "No such sign-in", "Gatehouse has no sign-in provider called "+r.PathValue("id")+".")
	}
	return p, ok
}

// upstreamSignIn starts a plain sign-in: the sign-in page's buttons are links.
func (s *Server) upstreamSignIn(w http.ResponseWriter, r *http.Request) {
	p, ok := s.provider(w, r)
	if !ok {
		return
	}
	s.startFlow(w, r, p, store.UpstreamFlow{Intent: store.UpstreamSignIn, ReturnTo: s.safeRD(r.URL.Query().Get("rd"))})
}

// upstreamStart starts a flow from a form: joining with an invitation's code, or
// linking the provider's account to the signed-in one (which takes a recent sign-in
// or the current password, like adding a passkey).
func (s *Server) upstreamStart(w http.ResponseWriter, r *http.Request) {
	if !s.parseForm(w, r) {
		return
	}
	p, ok := s.provider(w, r)
	if !ok {
		return
	}
	switch r.PostFormValue("intent") {
	case store.UpstreamJoin:
		inv, err := s.checkInvitation(r, r.PostFormValue("code"))
		if msg, status, ok := s.invitationRefused(w, err); !ok {
			if status != 0 {
				s.renderInvite(w, r, status, inviteView{Code: r.PostFormValue("code")}, nil, msg)
			}
			return
		}
		s.startFlow(w, r, p, store.UpstreamFlow{Intent: store.UpstreamJoin, Invitation: inv.CodeHash, ReturnTo: "/"})
	case store.UpstreamLink:
		pr := s.current(r)
		if pr == nil {
			http.Redirect(w, r, "/login", http.StatusSeeOther)
			return
		}
		u, err := s.Store.UserByID(r.Context(), pr.UserID)
		if err == nil {
			err = s.reauthenticate(r, pr, u)
		}
		var bad userError
		if errors.As(err, &bad) {
			s.renderAccount(w, r, http.StatusBadRequest, "", bad.msg)
			return
		} else if err != nil {
			s.loginError(w, err)
			return
		}
		s.startFlow(w, r, p, store.UpstreamFlow{Intent: store.UpstreamLink, UserID: pr.UserID, ReturnTo: "/account"})
	default:
		s.message(w, http.StatusBadRequest, "Unknown request", "This form asks for nothing Gatehouse knows. Go back and try again.")
	}
}

func (s *Server) startFlow(w http.ResponseWriter, r *http.Request, p config.LoginProvider, f store.UpstreamFlow) {
	state, nonce, verifier := randomToken(), randomToken(), randomToken()
	target, err := s.Upstream.AuthURL(r.Context(), p, s.redirectURI(p.ID), state, nonce, verifier)
	if err != nil {
		s.Log.Error("sign-in through a provider cannot start", "provider", p.ID, "error", err.Error())
		s.message(w, http.StatusBadGateway, p.Button()+" is unavailable", "Gatehouse cannot reach "+cmpName(p)+" right now. Try again in a moment, or sign in another way.")
		return
	}
	f.StateHash, f.Provider, f.Nonce, f.Verifier, f.ExpiresAt = session.HashToken(state), p.ID, nonce, verifier, time.Now().Add(upstreamFlowLifetime)
	if err := s.Directory.StartUpstreamFlow(r.Context(), f); err != nil {
		s.loginError(w, err)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: upstreamCookie, Value: state, Path: "/login/provider/", MaxAge: int(upstreamFlowLifetime.Seconds()),
		HttpOnly: true, Secure: s.cfg().SecureCookies(), SameSite: http.SameSiteLaxMode})
	http.Redirect(w, r, target, http.StatusFound)
}

func cmpName(p config.LoginProvider) string {
	if p.Name != "" {
		return p.Name
	}
	return p.ID
}

// upstreamCallback is where the provider sends the browser back.
func (s *Server) upstreamCallback(w http.ResponseWriter, r *http.Request) {
	p, ok := s.provider(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	c, err := r.Cookie(upstreamCookie)
	if err != nil || subtle.ConstantTimeCompare([]byte(c.Value), []byte(q.Get("state"))) != 1 || q.Get("state") == "" {
		s.message(w, http.StatusBadRequest, "Sign-in not started here", "This sign-in with "+cmpName(p)+" did not start in this browser, or took longer than 10 minutes. Start again from the sign-in page.")
		return
	}
	http.SetCookie(w, &http.Cookie{Name: upstreamCookie, Path: "/login/provider/", MaxAge: -1, HttpOnly: true, Secure: s.cfg().SecureCookies(), SameSite: http.SameSiteLaxMode})
	f, err := s.Directory.TakeUpstreamFlow(r.Context(), session.HashToken(q.Get("state")))
	if errors.Is(err, store.ErrNotFound) || err == nil && f.Provider != p.ID {
		s.message(w, http.StatusBadRequest, "Sign-in not started here", "This sign-in with "+cmpName(p)+" was used already or took longer than 10 minutes. Start again from the sign-in page.")
		return
	} else if err != nil {
		s.loginError(w, err)
		return
	}
	if e := q.Get("error"); e != "" {
		s.message(w, http.StatusUnauthorized, "Sign-in cancelled", cmpName(p)+" did not sign you in ("+clip(e, 60)+"). Start again, or sign in another way.")
		return
	}
	res, err := s.Upstream.Exchange(r.Context(), p, s.redirectURI(p.ID), q.Get("code"), f.Verifier, f.Nonce)
	if errors.Is(err, upstream.ErrNotAllowed) {
		s.Audit(store.Event{Kind: "login.failed", Actor: "anonymous", Target: p.ID, Detail: clip(err.Error(), 200)})
		s.message(w, http.StatusForbidden, "Not allowed", "Signing in with "+cmpName(p)+" is open to members of "+strings.Join(p.AllowedOrgs, ", ")+" only.")
		return
	}
	if err != nil {
		s.Log.Warn("sign-in through a provider refused", "provider", p.ID, "error", err.Error())
		s.Audit(store.Event{Kind: "login.failed", Actor: "anonymous", Target: p.ID, Detail: clip(err.Error(), 200)})
		s.message(w, http.StatusBadGateway, "Sign-in failed", "Gatehouse could not confirm your sign-in with "+cmpName(p)+". Start again, or sign in another way.")
		return
	}
	// Google's hd claim names the Workspace an account belongs to: the domain of its
	// address alone would let a personal account with an alias at the domain in.
	googleOutside := p.Type == "google" && len(p.AllowedDomains) > 0 && !allowedDomain("@"+res.HostedDomain, res.HostedDomain != "", p.AllowedDomains)
	if len(p.AllowedDomains) > 0 && (!allowedDomain(res.Email, res.EmailVerified, p.AllowedDomains) || googleOutside) {
		s.Audit(store.Event{Kind: "login.failed", Actor: "anonymous", Target: p.ID, Detail: "address " + clip(res.Email, 100) + " not in allowed_domains"})
		s.message(w, http.StatusForbidden, "Not allowed", "Signing in with "+cmpName(p)+" is open to verified addresses at "+strings.Join(p.AllowedDomains, ", ")+" only.")
		return
	}
	method := "upstream:" + p.ID
	if p.EnforcesMFA && upstream.MFA(res.AMR) {
		method += "+mfa"
	}
	switch f.Intent {
	case store.UpstreamLink:
		if pr := s.current(r); pr == nil || pr.UserID != f.UserID {
			s.message(w, http.StatusForbidden, "Not linked", "You are no longer signed in to the account this link was for. Sign in and link again from your account page.")
			return
		}
		if err := s.Directory.LinkUpstream(r.Context(), s.current(r).Username, f.UserID, res.UpstreamClaims); err != nil {
			s.upstreamRefused(w, p, err)
			return
		}
		http.Redirect(w, r, "/account?linked="+url.QueryEscape(p.ID), http.StatusSeeOther)
		return
	case store.UpstreamJoin:
		if u, err := s.Directory.UpstreamUser(r.Context(), p.ID, res.Subject); err == nil {
			s.upstreamSession(w, r, u, method, "/") // joined before: no use is spent
			return
		}
		u, err := s.Directory.JoinUpstream(r.Context(), f.Invitation, res.UpstreamClaims)
		if err != nil {
			s.upstreamRefused(w, p, err)
			return
		}
		s.upstreamSession(w, r, u, method, "/")
		return
	}
	u, err := s.Directory.UpstreamUser(r.Context(), p.ID, res.Subject)
	if errors.Is(err, identity.ErrNotLinked) && p.LinkByEmail {
		u, err = s.Directory.LinkByEmail(r.Context(), res.UpstreamClaims)
	}
	if errors.Is(err, identity.ErrNotLinked) && s.cfg().SignUp.Open {
		u, err = s.Directory.JoinUpstream(r.Context(), identity.OpenSignUp, res.UpstreamClaims)
	}
	if err != nil {
		s.upstreamRefused(w, p, err)
		return
	}
	s.upstreamSession(w, r, u, method, f.ReturnTo)
}

// upstreamSession signs u in as any sign-in does, unless u is disabled.
func (s *Server) upstreamSession(w http.ResponseWriter, r *http.Request, u store.User, method, next string) {
	if u.Disabled {
		s.Audit(store.Event{Kind: "login.failed", Actor: u.Username, Target: u.Username, Detail: method + ": account disabled"})
		s.message(w, http.StatusForbidden, "Account disabled", "Your account is disabled. Ask an admin.")
		return
	}
	s.finishLogin(w, r, u, method, next)
}

// upstreamRefused explains why a provider's account could not be used.
func (s *Server) upstreamRefused(w http.ResponseWriter, p config.LoginProvider, err error) {
	name := cmpName(p)
	var field *identity.FieldError
	switch {
	case errors.Is(err, identity.ErrNotLinked):
		s.render(w, http.StatusForbidden, "not_linked.html", page{Title: "No account for this " + name + " sign-in", Extra: name})
	case errors.Is(err, identity.ErrLinkedElsewhere):
		s.message(w, http.StatusConflict, "Linked elsewhere", "This "+name+" account is linked to another Gatehouse account already.")
	case errors.Is(err, identity.ErrInvitationNotValid):
		s.message(w, http.StatusNotFound, "Invitation not valid", upper(err.Error())+".")
	case errors.As(err, &field):
		s.message(w, http.StatusBadRequest, "Not joined", upper(field.Detail)+". Nothing was made.")
	case errors.Is(err, store.ErrConflict):
		s.message(w, http.StatusConflict, "Not joined", upper(err.Error())+". Nothing was made: join with a password and choose a username.")
	default:
		s.loginError(w, err)
	}
}

// allowedDomain says whether a verified email is at one of domains.
func allowedDomain(email string, verified bool, domains []string) bool {
	at := strings.LastIndex(email, "@")
	if !verified || at < 0 {
		return false
	}
	host := strings.ToLower(email[at+1:])
	for _, d := range domains {
		if host == strings.ToLower(d) {
			return true
		}
	}
	return false
}

// removeUpstream unlinks one of the signed-in person's provider accounts; the last
// way to sign in stays.
func (s *Server) removeUpstream(w http.ResponseWriter, r *http.Request, p *session.Principal, u store.User) (string, error) {
	if err := s.reauthenticate(r, p, u); err != nil {
		return "", err
	}
	err := s.Directory.RemoveCredential(r.Context(), u.Username, u.Username, r.PostFormValue("id"), false)
	switch {
	case errors.Is(err, identity.ErrLastCredential):
		return "", userError{"This is the only way you can sign in, so it stays. Add a passkey or set a password first."}
	case errors.Is(err, store.ErrNotFound):
		return "", userError{"That account is not linked to yours."}
	}
	return "Unlinked it: it no longer signs you in.", err
}
