package web

import (
	"net/http"
	"net/url"
	"strings"
)

// Drop-in endpoints: the sign-in, callback and sign-out paths that Authentik's proxy
// outpost answers, and `rd` on the portal's root as Authelia's portal takes it, so an
// nginx or Traefik config written for those works against Gatehouse unchanged but for
// the address. Gatehouse's cookie covers the whole cookie domain, so there is no
// per-app cookie to set: each ends at Gatehouse's own pages.

// dropInRoutes registers the drop-in endpoints.
func (s *Server) dropInRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /outpost.goauthentik.io/start", s.outpostStart)
	mux.HandleFunc("GET /outpost.goauthentik.io/callback", s.outpostCallback)
	mux.HandleFunc("GET /outpost.goauthentik.io/sign_out", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, s.cfg().Server.PublicURL+"/logout", http.StatusFound)
	})
}

// outpostStart begins a sign-in that returns to rd. Authentik's nginx template sends
// the browser here on the app's own host with rd a path ("/photos?x=1"), proxied to
// Gatehouse with the app's address in X-Original-URL; rd may also be a whole URL.
func (s *Server) outpostStart(w http.ResponseWriter, r *http.Request) {
	rd := s.safeRD(s.absoluteRD(r, outpostRD(r)))
	if s.current(r) != nil && rd != "" {
		http.Redirect(w, r, rd, http.StatusFound)
		return
	}
	http.Redirect(w, r, LoginURL(s.cfg().Server.PublicURL, rd), http.StatusFound)
}

// outpostCallback is where Authentik's outpost finishes a per-app sign-in; with
// Gatehouse's domain-wide cookie there is nothing to finish but the way back.
func (s *Server) outpostCallback(w http.ResponseWriter, r *http.Request) {
	rd := s.safeRD(s.absoluteRD(r, outpostRD(r)))
	if rd == "" {
		rd = "/"
	}
	http.Redirect(w, r, rd, http.StatusFound)
}

// outpostRD reads rd. The template appends $request_uri unencoded ("rd=/a?x=1&y=2"),
// so a raw rd that is a path is everything after "rd=", its own query included.
func outpostRD(r *http.Request) string {
	if raw, ok := strings.CutPrefix(r.URL.RawQuery, "rd=/"); ok {
		return "/" + raw
	}
	return r.URL.Query().Get("rd")
}

// absoluteRD makes a path-only rd whole with the origin the proxy says the browser
// used (X-Original-URL, else X-Forwarded-Proto and -Host, else the Host header). The
// result is still checked against the redirect domains by the caller, so a made-up
// origin leads nowhere but Gatehouse.
func (s *Server) absoluteRD(r *http.Request, rd string) string {
	if !strings.HasPrefix(rd, "/") || strings.HasPrefix(rd, "//") {
		return rd
	}
	scheme, host := "http", r.Host
	if s.cfg().SecureCookies() {
		scheme = "https"
	}
	if u, err := url.Parse(r.Header.Get("X-Original-URL")); err == nil && u.Host != "" {
		scheme, host = u.Scheme, u.Host
	} else if fh := r.Header.Get("X-Forwarded-Host"); fh != "" {
		host = fh
		if fp := r.Header.Get("X-Forwarded-Proto"); fp == "http" || fp == "https" {
			scheme = fp
		}
	}
	return scheme + "://" + host + rd
}
