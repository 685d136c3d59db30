package web

import (
	"context"
	"html/template"
	"net/http"

	"github.com/gatehouse-id/gatehouse/internal/oidc"
	"github.com/gatehouse-id/gatehouse/internal/session"
	"github.com/gatehouse-id/gatehouse/internal/store"
)

// OIDCPages draws the OpenID Connect provider's pages with Gatehouse's templates.
func (s *Server) OIDCPages() oidc.Pages { return oidcPages{s} }

type oidcPages struct{ s *Server }

func (o oidcPages) Current(r *http.Request) *session.Principal { return o.s.current(r) }

func (o oidcPages) LoginURL(returnTo string) string { return LoginURL("", returnTo) }

func (o oidcPages) StepUpURL(returnTo string) string { return StepUpURL("", returnTo) }

func (o oidcPages) ReauthURL(returnTo string) string { return LoginURL("", returnTo) + "&prompt=login" }

func (o oidcPages) Message(w http.ResponseWriter, r *http.Request, status int, title, text string) {
	o.s.message(w, status, title, text)
}

func (o oidcPages) Consent(w http.ResponseWriter, r *http.Request, v oidc.ConsentView) {
	o.s.render(w, http.StatusOK, "consent.html", page{Title: "Allow " + v.Client + "?", User: o.s.current(r), CSRF: o.s.csrfToken(w, r), Extra: v})
}

func (o oidcPages) Device(w http.ResponseWriter, r *http.Request, v oidc.DeviceView) {
	status := v.Status
	switch {
	case status != 0:
	case v.Error != "":
		status = http.StatusBadRequest
	default:
		status = http.StatusOK
	}
	o.s.render(w, status, "device.html", page{Title: "Sign in a device", User: o.s.current(r), CSRF: o.s.csrfToken(w, r), Error: v.Error, Extra: v})
}

func (o oidcPages) ClientAddress(r *http.Request) string { return o.s.clientIP(r) }

func (o oidcPages) CheckForm(w http.ResponseWriter, r *http.Request) bool { return o.s.parseForm(w, r) }

func (o oidcPages) EndSession(w http.ResponseWriter, r *http.Request) error {
	if err := o.s.endBrowserSessions(r); err != nil {
		return err
	}
	http.SetCookie(w, o.s.sessionCookie("", -1))
	return nil
}

func (o oidcPages) RevokeSession(ctx context.Context, actor string, s store.Session) error {
	return o.s.Directory.RevokeSession(ctx, actor, s) // applied here as it commits; elsewhere by the feed
}

func (o oidcPages) ConfirmLogout(w http.ResponseWriter, r *http.Request, v oidc.LogoutView) {
	o.s.render(w, http.StatusOK, "oidc_logout.html", page{Title: "Sign out?", User: o.s.current(r), CSRF: o.s.csrfToken(w, r), Extra: v})
}

func (o oidcPages) NotAllowed(w http.ResponseWriter, r *http.Request, v oidc.NotAllowedView) {
	o.s.render(w, http.StatusForbidden, "oidc_denied.html", page{Title: "Not allowed", User: o.s.current(r), Error: v.Text, Extra: oidcDenied{v.Client, template.URL(v.Return)}})
}

// oidcDenied feeds oidc_denied.html; Return was matched against the client's
// registered redirect URIs, so a custom scheme (com.example.app:/cb) is trusted.
type oidcDenied struct {
	Client string
	Return template.URL
}
