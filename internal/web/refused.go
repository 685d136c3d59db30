package web

import (
	"net/http"
	"net/url"
	"slices"

	"github.com/gatehouse-id/gatehouse/internal/forwardauth"
)

// RefusedURL is Gatehouse's page explaining to the person signed in why they may not
// open returnTo; the README's nginx snippet sends a refused browser there.
func RefusedURL(publicURL, returnTo string) string {
	return publicURL + "/refused?rd=" + url.QueryEscape(returnTo)
}

// refusal is what the refusal page shows: the decision for the person, the groups the
// rule lets in besides the admins', and where to sign in as someone else.
type refusal struct {
	forwardauth.Report
	Open      []string // the deciding rule's groups, the admin groups aside
	Base      string   // Gatehouse's address for links: its public URL on an app's address
	SwitchURL string
}

// RefusalPage writes the 403 page forward auth answers a refused browser with, on the
// app's own address: its links and stylesheet are on Gatehouse's public URL.
func (s *Server) RefusalPage(w http.ResponseWriter, r forwardauth.Report) {
	base := s.cfg().Server.PublicURL
	origin := base
	if u, err := url.Parse(base); err == nil {
		origin = u.Scheme + "://" + u.Host
	}
	s.renderRefusal(w, r, base, origin)
}

func (s *Server) renderRefusal(w http.ResponseWriter, r forwardauth.Report, base, origin string) {
	open := []string{}
	for _, g := range r.Passing {
		if !slices.Contains(r.AdminGroups, g) {
			open = append(open, g)
		}
	}
	data := refusal{Report: r, Open: open, Base: base, SwitchURL: base + "/logout?rd=" + url.QueryEscape(r.URL)}
	imgSrc := "'self' data:" // the favicon, on the app's address from Gatehouse's
	if origin != "'self'" {
		imgSrc = origin + " " + imgSrc
	}
	s.renderStyled(w, http.StatusForbidden, "refused.html", page{Title: "You can't open this page", Extra: data, Base: base}, origin, imgSrc)
}

// refusedPage is the refusal explained on Gatehouse's own address (where nginx sends
// a refused browser), decided afresh: someone who may pass by now goes on to the app,
// someone signed out signs in first.
func (s *Server) refusedPage(w http.ResponseWriter, r *http.Request) {
	rd := s.safeRD(r.URL.Query().Get("rd"))
	if rd == "" {
		s.message(w, http.StatusBadRequest, "Nothing to explain", "This link does not name a page behind Gatehouse.")
		return
	}
	p, err := s.currentOrErr(r)
	switch {
	case err != nil:
		s.unavailable(w, "the refusal page", "your session", err)
		return
	case p == nil:
		http.Redirect(w, r, LoginURL("", rd), http.StatusFound)
		return
	}
	report, err := forwardauth.ExplainFor(s.Policy(), p, rd)
	if err != nil { // only ErrBadURL: the person is known
		s.message(w, http.StatusBadRequest, "Not a page Gatehouse decides on", err.Error())
		return
	}
	switch report.Result {
	case "allow":
		http.Redirect(w, r, rd, http.StatusFound)
	case "step_up":
		http.Redirect(w, r, StepUpURL("", rd), http.StatusFound)
	case "login":
		http.Redirect(w, r, LoginURL("", rd), http.StatusFound)
	default:
		s.renderRefusal(w, report, "", "'self'")
	}
}
