package forwardauth

import (
	"context"
	"errors"
	"iter"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gatehouse-id/gatehouse/internal/access"
	"github.com/gatehouse-id/gatehouse/internal/metrics"
	"github.com/gatehouse-id/gatehouse/internal/session"
	"github.com/gatehouse-id/gatehouse/internal/store"
)

// Sessions resolves a cookie value to who is logged in; (nil, nil) means nobody.
type Sessions interface {
	Lookup(ctx context.Context, token string) (*session.Principal, error)
}

// Handler answers forward-auth checks. Its fields are read on every request; the
// functions return the live (reloadable) config.
type Handler struct {
	Policy     func() *access.Policy
	Sessions   Sessions
	CookieName string
	// LoginURL returns the login page URL that brings the user back to returnTo.
	LoginURL func(returnTo string) string
	// StepUpURL returns the page that asks a signed-in user for a second factor.
	StepUpURL func(returnTo string) string
	Metrics   *metrics.Metrics
	Audit     func(store.Event)
	Log       *slog.Logger

	denials denialLimiter
}

// Serve returns the http.Handler for one dialect.
func (h *Handler) Serve(d Dialect) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		result := h.serve(w, r, d)
		h.Metrics.Decisions.WithLabelValues(result).Inc()
		h.Metrics.DecisionSeconds.Observe(time.Since(start).Seconds())
	})
}

func (h *Handler) serve(w http.ResponseWriter, r *http.Request, d Dialect) string {
	w.Header().Set("Cache-Control", "no-store")
	orig, err := ParseOriginal(r, d)
	var refused *access.PathError
	switch {
	case errors.As(err, &refused):
		// nginx turns any auth answer but 2xx, 401 and 403 into a 500 of its own, which
		// would look like Gatehouse failing; a refused target is the client's doing.
		status := http.StatusBadRequest
		if d == AuthRequest {
			status = http.StatusForbidden
		}
		http.Error(w, "gatehouse: "+refused.Error(), status)
		return "refused_target"
	case err != nil:
		// A header the proxy did not send is its operator's to fix (400, in nginx's
		// error log as such); a malformed one came from the client through the proxy,
		// and behind nginx gets 403 for the same reason as a refused target.
		status := http.StatusBadRequest
		var he *HeaderError
		if d == AuthRequest && errors.As(err, &he) && he.Reason != reasonMissing {
			status = http.StatusForbidden
		}
		http.Error(w, "gatehouse: bad forward-auth request: "+err.Error(), status)
		return "bad_request"
	}
	who, err := h.principal(r)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			h.Metrics.RequestTimeouts.Inc()
		}
		h.Log.Error("forward auth: checking the session failed", "host", orig.Host, "error", err.Error())
		http.Error(w, "gatehouse: could not check the session right now; try again shortly", http.StatusServiceUnavailable)
		return "error"
	}
	var id *access.Identity
	if who != nil {
		id = &access.Identity{Username: who.Username, Groups: who.Groups, TwoFactor: who.TwoFactor}
	}
	dec := h.Policy().Decide(access.Request{Host: orig.HostName(), Path: orig.Path}, id)
	switch dec.Result {
	case access.Allow:
		writeIdentityHeaders(w.Header(), who)
		w.WriteHeader(http.StatusOK)
	case access.NeedLogin:
		h.sendTo(w, r, d, orig, h.LoginURL(orig.URL()), "login required")
	case access.NeedSecondFactor:
		h.sendTo(w, r, d, orig, h.StepUpURL(orig.URL()), "a second factor is required")
	default:
		if record, before := h.denials.record(who.Username, orig.HostName()); record {
			h.Audit(store.Event{Kind: "access.denied", Actor: who.Username, Target: orig.Host + orig.Path,
				Detail: dec.Reason + suppressedNote(before)})
		}
		http.Error(w, "gatehouse: "+who.Username+" may not open "+orig.Host+": "+dec.Reason, http.StatusForbidden)
	}
	return dec.Result.String()
}

// principal reads the session cookie. Several cookies of the same name can reach us
// (one per domain level); the first valid one wins.
func (h *Handler) principal(r *http.Request) (*session.Principal, error) {
	for value := range CookieValues(r.Header, h.CookieName) {
		p, err := h.Sessions.Lookup(r.Context(), value)
		if p != nil || err != nil {
			return p, err
		}
	}
	return nil, nil
}

// CookieValues yields the values of the cookies called name, in order, without
// parsing the others: on the hot path net/http's Cookies would allocate every cookie
// the browser sends for every app on the domain. Values are returned as sent; session
// tokens are checked for their exact shape before any lookup.
func CookieValues(h http.Header, name string) iter.Seq[string] {
	return func(yield func(string) bool) {
		for _, line := range h["Cookie"] {
			for part := range strings.SplitSeq(line, ";") {
				k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
				if ok && k == name && !yield(v) {
					return
				}
			}
		}
	}
}

// sendTo sends browsers to a Gatehouse page (login, step-up) and tells API clients 401.
// nginx cannot forward a redirect from auth_request, so its dialect always answers 401
// and carries the page's URL in Location for `auth_request_set`.
func (h *Handler) sendTo(w http.ResponseWriter, r *http.Request, d Dialect, orig Original, login, why string) {
	switch {
	case d == AuthRequest:
		w.Header().Set("Location", login)
		http.Error(w, "gatehouse: "+why, http.StatusUnauthorized)
	case IsBrowser(r) && (orig.Method == http.MethodGet || orig.Method == http.MethodHead):
		// Not http.Redirect: its HTML body costs a tenth of an anonymous check's CPU,
		// and the proxy hands the browser our Location, not our body.
		w.Header().Set("Location", login)
		w.WriteHeader(http.StatusFound)
	default:
		w.Header().Set("WWW-Authenticate", `Cookie realm="gatehouse"`)
		http.Error(w, "gatehouse: "+why, http.StatusUnauthorized)
	}
}

// IsBrowser reports whether the original request came from a person's browser page
// load, which can follow a redirect to a login page, rather than from an API client or
// script, which needs a plain 401.
func IsBrowser(r *http.Request) bool {
	if strings.EqualFold(r.Header.Get("X-Requested-With"), "XMLHttpRequest") {
		return false
	}
	return strings.Contains(r.Header.Get("Accept"), "text/html")
}

// IdentityHeaders is a principal's identity headers, built once when its session is
// loaded (session.Options.Prepare) and copied into every answer: the hot path then
// neither joins group names nor allocates header values.
type IdentityHeaders http.Header

// PrepareIdentityHeaders builds a principal's identity headers; wire it as
// session.Options.Prepare.
func PrepareIdentityHeaders(p *session.Principal) any {
	h := http.Header{}
	SetIdentityHeaders(h, p)
	return IdentityHeaders(h)
}

// anonymousHeaders is every identity header Gatehouse owns, empty: a public path
// answers them too, so a proxy that copies them replaces whatever the client sent
// instead of passing the client's own "Remote-User: admin" to the app.
var anonymousHeaders = func() http.Header {
	h := http.Header{}
	SetIdentityHeaders(h, &session.Principal{})
	for k := range h {
		h[k] = []string{""}
	}
	return h
}()

// IdentityHeaderNames lists every identity header Gatehouse answers, in canonical
// form: what a proxy snippet must strip from the client's request.
func IdentityHeaderNames() []string {
	names := make([]string, 0, len(anonymousHeaders))
	for k := range anonymousHeaders {
		names = append(names, k)
	}
	slices.Sort(names)
	return names
}

func writeIdentityHeaders(dst http.Header, p *session.Principal) {
	if p == nil {
		for k, v := range anonymousHeaders {
			dst[k] = v
		}
		return
	}
	prepared, ok := p.Prepared.(IdentityHeaders)
	if !ok {
		SetIdentityHeaders(dst, p)
		return
	}
	for k, v := range prepared {
		dst[k] = v // shared, never modified: net/http only reads header values
	}
}

// SetIdentityHeaders writes who is logged in, in the headers apps already read:
// Authelia's Remote-* (groups joined with ",") and Authentik's X-authentik-* (groups
// joined with "|"). Values come from validated names, so they hold no line breaks.
func SetIdentityHeaders(h http.Header, p *session.Principal) {
	name := p.DisplayName
	if name == "" {
		name = p.Username
	}
	h["Remote-User"] = []string{p.Username}
	h["Remote-Groups"] = []string{strings.Join(p.Groups, ",")}
	h["Remote-Email"] = []string{p.Email}
	h["Remote-Name"] = []string{name}
	h["X-Authentik-Username"] = []string{p.Username}
	h["X-Authentik-Groups"] = []string{strings.Join(p.Groups, "|")}
	h["X-Authentik-Email"] = []string{p.Email}
	h["X-Authentik-Name"] = []string{name}
	h["X-Authentik-Uid"] = []string{p.UserID}
}
