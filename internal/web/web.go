// Package web owns the pages people see: login (password, passkey, second step),
// logout, the first-admin setup link, the home page with the apps each person may
// open, the account page, the refusal page forward auth answers with, the admin pages
// (read-only views of people and the audit log), and the pages of the OpenID Connect
// flows (consent, device code). Pages are server-rendered
// from embedded templates with a small stylesheet, work with JavaScript off (passkeys
// aside, which need the small passkey.js), and protect every form against CSRF.
package web

import (
	"cmp"
	"crypto/rand"
	"embed"
	"encoding/base64"
	"html/template"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/gatehouse-id/gatehouse/internal/access"
	"github.com/gatehouse-id/gatehouse/internal/authn"
	"github.com/gatehouse-id/gatehouse/internal/config"
	"github.com/gatehouse-id/gatehouse/internal/identity"
	"github.com/gatehouse-id/gatehouse/internal/metrics"
	"github.com/gatehouse-id/gatehouse/internal/serverkey"
	"github.com/gatehouse-id/gatehouse/internal/session"
	"github.com/gatehouse-id/gatehouse/internal/store"
	"github.com/gatehouse-id/gatehouse/internal/upstream"
)

//go:embed templates/*.html
var templateFiles embed.FS

//go:embed static
var staticFiles embed.FS

// maxFormBytes bounds a posted form: a login form is well under 1 KiB, and a 10 MB
// "password" is refused before it is read, let alone hashed.
const maxFormBytes = 16 << 10

var pages = template.Must(template.New("").Funcs(template.FuncMap{"passkeyForm": passkeyForm,
	"join": func(items []string) string { return strings.Join(items, ", ") },
	"list": func(items ...string) []string { return items },
	"has":  slices.Contains[[]string],
	// siteOf shows where a URL points without its path: a webhook's path can be its
	// secret (Slack's are).
	"siteOf": func(raw string) string {
		u, err := url.Parse(raw)
		if err != nil {
			return ""
		}
		return u.Scheme + "://" + u.Host + "/…"
	},
	// reauthFor is what the "reauth" field needs: whether to ask, and its id's prefix.
	"reauthFor": func(p page, id string) page { return page{NeedPassword: p.NeedPassword, Extra: id} },
	"adminPath": func(section string) string {
		return map[string]string{"People": "/admin/users", "Groups": "/admin/groups", "Invitations": "/admin/invitations", "Audit log": "/admin/audit", "Why": "/admin/explain", "Webhooks": "/admin/webhooks", "Config": "/admin/config"}[section]
	}}).ParseFS(templateFiles, "templates/*.html"))

// passkeyFormData is what the shared passkey sign-in form needs from its page.
type passkeyFormData struct {
	CSRF, RD, Pending string
	Ceremony          *ceremony
}

func passkeyForm(p page, c *ceremony, pending string) passkeyFormData {
	return passkeyFormData{CSRF: p.CSRF, RD: p.RD, Pending: pending, Ceremony: c}
}

// Server serves Gatehouse's own pages.
type Server struct {
	Store     store.AccountReader // read only: every change goes through Directory
	Sessions  *session.Manager
	Hasher    *identity.Hasher
	Directory *identity.Directory
	Config    func() *config.Config // the live config
	Metrics   *metrics.Metrics
	Audit     func(store.Event)
	Log       *slog.Logger
	// Regulator throttles every guess made on these pages, in the database.
	Regulator *authn.Regulator
	// Policy is the access rules in force, for the refusal page.
	Policy func() *access.Policy
	// Upstream signs people in with the config's login_providers.
	Upstream *upstream.Client
	// Kubernetes says how the watch of Ingresses and HTTPRoutes stands, for the admin
	// config page; nil when access.kubernetes is off.
	Kubernetes func() KubernetesStatus

	secret []byte           // signs CSRF tokens and the values pages carry (package signed)
	totp   serverkey.Sealer // seals authenticator-app secrets in the database
	rpCache
}

// KubernetesStatus is what the admin config page shows of the rules from Kubernetes,
// besides the rules themselves (which the policy holds).
type KubernetesStatus struct {
	Synced   bool
	Reason   string   // why not synced
	Problems []string // "namespace/Kind/name: Reason: message"
}

// SetKey sets the server key, from which the pages derive the key that signs CSRF
// tokens, pending sign-ins and device cookies, and the one that seals authenticator-app
// secrets.
func (s *Server) SetKey(k serverkey.Key) {
	s.secret = k.Derive("gatehouse web: csrf, signed pages, device cookies")
	s.totp = k.Sealer(TOTPSealPurpose)
}

// TOTPSealPurpose names the server key's sealer for authenticator-app secrets.
const TOTPSealPurpose = "gatehouse totp secrets"

func (s *Server) cfg() *config.Config { return s.Config() }

// Routes registers the pages on mux.
func (s *Server) Routes(mux *http.ServeMux) {
	mux.HandleFunc("GET /{$}", s.home)
	mux.HandleFunc("GET /login", s.loginPage)
	mux.HandleFunc("POST /login", s.login)
	mux.HandleFunc("POST /login/second-factor", s.secondFactor)
	mux.HandleFunc("POST /login/passkey", s.passkeyLogin)
	mux.HandleFunc("GET /login/step-up", s.stepUp)
	mux.HandleFunc("GET /account", s.account)
	mux.Handle("POST /account/profile", s.accountPost(s.changeProfile))
	mux.Handle("POST /account/password", s.accountPost(s.changePassword))
	mux.Handle("POST /account/totp/remove", s.accountPost(s.removeTOTP))
	mux.Handle("POST /account/sessions/revoke", s.accountPost(s.revokeSessions))
	mux.Handle("POST /account/passkeys", s.accountPost(s.addPasskey))
	mux.Handle("POST /account/passkeys/rename", s.accountPost(s.renamePasskey))
	mux.Handle("POST /account/passkeys/remove", s.accountPost(s.removePasskey))
	mux.Handle("POST /account/recovery-codes", s.accountPost(s.newRecoveryCodes))
	mux.Handle("POST /account/app-passwords", s.accountPost(s.createAppPassword))
	mux.Handle("POST /account/app-passwords/revoke", s.accountPost(s.revokeAppPassword))
	mux.HandleFunc("GET /account/totp", s.totpPage)
	mux.Handle("POST /account/totp", s.accountPost(s.totpConfirm))
	mux.HandleFunc("GET /logout", s.logoutPage)
	mux.HandleFunc("GET /refused", s.refusedPage)
	s.adminRoutes(mux)
	s.upstreamRoutes(mux)
	mux.HandleFunc("POST /logout", s.logout)
	mux.HandleFunc("GET /setup", s.setupPage)
	mux.HandleFunc("POST /setup", s.setup)
	mux.HandleFunc("GET "+identity.InvitationPath, s.invitePage)
	mux.HandleFunc("POST "+identity.InvitationPath, s.acceptInvite)
	mux.HandleFunc("GET /reset", s.resetPage)
	mux.HandleFunc("POST /reset", s.requestReset)
	mux.HandleFunc("GET "+identity.VerifyEmailPath, s.verifyEmailPage)
	mux.HandleFunc("POST "+identity.VerifyEmailPath, s.verifyEmail)
	mux.HandleFunc("GET "+identity.SignInLinkPath, s.signInLinkPage)
	mux.HandleFunc("POST "+identity.SignInLinkPath, s.useSignInLink)
	mux.Handle("GET /static/", http.FileServerFS(staticFiles))
	mux.HandleFunc("GET /favicon.ico", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=86400")
		http.ServeFileFS(w, r, staticFiles, "static/favicon.svg")
	})
	mux.HandleFunc("GET /brand.css", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/css; charset=utf-8")
		w.Header().Set("Cache-Control", "public, max-age=300")
		if a := s.cfg().Branding.Accent; a != "" { // validated: #rrggbb
			io.WriteString(w, ":root{--accent:"+a+"}\n")
		}
	})
	mux.HandleFunc("/", s.notFound)
	s.dropInRoutes(mux)
}

// notFound answers what no route serves: a page for a browser, a line for the rest.
func (s *Server) notFound(w http.ResponseWriter, r *http.Request) {
	if !strings.Contains(r.Header.Get("Accept"), "text/html") {
		http.Error(w, "404 page not found", http.StatusNotFound)
		return
	}
	s.render(w, http.StatusNotFound, "not_found.html", page{Title: "Page not found"})
}

// page is what every template gets.
type page struct {
	Title   string
	CSRF    string
	Error   string
	Notice  string
	RD      string
	User    *session.Principal
	Form    map[string]string
	Token   string
	Extra   any
	AppName string
	// Wide lays the page out for tables (the admin pages); Admin shows their link.
	Wide, Admin bool
	// NeedPassword asks for the current password in the forms of dangerous changes:
	// the sign-in is older than RecentAuth.
	NeedPassword bool
	// Logo and Accent are branding.logo and whether branding.accent is set.
	Logo   string
	Accent bool
	// Providers are the login_providers, for their buttons.
	Providers []config.LoginProvider
	// Base prefixes the stylesheet's address: "" on Gatehouse's own pages, its public
	// URL on a page answered on an app's address (a refusal from forward auth).
	Base string
}

func (s *Server) render(w http.ResponseWriter, status int, name string, p page) {
	s.renderStyled(w, status, name, p, "'self'", "'self' data:")
}

// renderStyled is render with the sources of the page's stylesheet and images for its
// content security policy.
func (s *Server) renderStyled(w http.ResponseWriter, status int, name string, p page, styleSrc, imgSrc string) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	// No form-action: browsers apply it to every redirect after a form is sent, and a
	// sign-in ends at the app's redirect URI, which for a native app is a custom scheme
	// (com.example.app:/cb) that no source list can name in advance.
	brand := s.cfg().Branding
	p.AppName, p.Logo, p.Accent = cmp.Or(brand.Name, "Gatehouse"), brand.Logo, brand.Accent != ""
	p.Admin = s.isAdmin(p.User)
	p.Providers = s.cfg().LoginProviders
	if u, err := url.Parse(brand.Logo); brand.Logo != "" && err == nil {
		imgSrc += " " + u.Scheme + "://" + u.Host
	}
	h.Set("Content-Security-Policy", "default-src 'self'; style-src "+styleSrc+"; img-src "+imgSrc+"; frame-ancestors 'none'")
	w.WriteHeader(status)
	if err := pages.ExecuteTemplate(w, name, p); err != nil {
		s.Log.Error("rendering page failed", "page", name, "error", err.Error())
	}
}

// message shows a page with one sentence: errors people can act on.
func (s *Server) message(w http.ResponseWriter, status int, title, text string) {
	s.render(w, status, "message.html", page{Title: title, Error: text})
}

// current returns who is logged in on this request, or nil.
func (s *Server) current(r *http.Request) *session.Principal {
	p, _ := s.currentOrErr(r)
	return p
}

// currentOrErr is current, telling "nobody is signed in" (nil, nil) from "the session
// could not be checked" (nil, err): a page that would say "you are signed out" must
// not say so when it does not know.
func (s *Server) currentOrErr(r *http.Request) (*session.Principal, error) {
	var firstErr error
	for _, c := range r.CookiesNamed(s.cfg().Session.CookieName) {
		p, err := s.Sessions.Lookup(r.Context(), c.Value)
		if p != nil {
			return p, nil
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	return nil, firstErr
}

func (s *Server) sessionCookie(value string, maxAge int) *http.Cookie {
	c := s.cfg()
	return &http.Cookie{
		Name: c.Session.CookieName, Value: value, Path: "/", Domain: c.Session.CookieDomain,
		MaxAge: maxAge, HttpOnly: true, Secure: c.SecureCookies(), SameSite: http.SameSiteLaxMode,
	}
}

// parseForm reads a posted form of bounded size and checks its CSRF token. It answers
// the request itself and returns false when the form cannot be used.
func (s *Server) parseForm(w http.ResponseWriter, r *http.Request) bool {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		s.message(w, http.StatusRequestEntityTooLarge, "Form too large",
			"The form sent more than 16 KiB. Passwords are limited to 1024 bytes; shorten it and try again.")
		return false
	}
	if !s.csrfValid(r) {
		s.message(w, http.StatusForbidden, "Form expired",
			"This form expired or was sent from another site. Go back, reload the page and try again.")
		return false
	}
	return true
}

// clientIP is the address a request came from (see authn.Proxies).
func (s *Server) clientIP(r *http.Request) string {
	return authn.ParseProxies(s.cfg().Server.TrustedProxies).ClientAddress(r)
}

func (s *Server) safeRD(raw string) string {
	rd, ok := SafeReturnURL(raw, s.cfg().RedirectDomains())
	if !ok {
		return ""
	}
	return rd
}

func randomToken() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}
