package forwardauth

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"iter"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gatehouse-id/gatehouse/internal/access"
	"github.com/gatehouse-id/gatehouse/internal/authn"
	"github.com/gatehouse-id/gatehouse/internal/identity"
	"github.com/gatehouse-id/gatehouse/internal/metrics"
	"github.com/gatehouse-id/gatehouse/internal/session"
	"github.com/gatehouse-id/gatehouse/internal/store"
)

// Handler answers forward-auth checks. Its fields are read on every request; the
// functions return the live (reloadable) config.
type Handler struct {
	Policy func() *access.Policy
	// Sessions resolves a cookie value, or an app password, to who is asking. A
	// concrete type, not an interface: the app password a Basic header carries is
	// decoded into a buffer on the stack, which passing it through an interface would
	// move to the heap on every check.
	Sessions   *session.Manager
	CookieName string
	// LoginURL returns the login page URL that brings the user back to returnTo.
	LoginURL func(returnTo string) string
	// StepUpURL returns the page that asks a signed-in user for a second factor.
	StepUpURL func(returnTo string) string
	// RefusedURL returns Gatehouse's page explaining a refusal of returnTo to the person
	// signed in; RefusalPage writes that page as a 403 answer. Without them browsers get
	// the one line of text API clients get.
	RefusedURL  func(returnTo string) string
	RefusalPage func(w http.ResponseWriter, r Report)
	Metrics     *metrics.Metrics
	Audit       func(store.Event)
	Log         *slog.Logger
	// Regulator counts wrong app passwords per client network; ClientAddress says
	// which address the original request came from.
	Regulator     *authn.Regulator
	ClientAddress func(*http.Request) string

	denials   denialLimiter
	decisions metrics.Counters[string]  // Metrics.Decisions, resolved once per result
	byRule    metrics.Counters[ruleKey] // Metrics.RuleDecisions
	initOnce  sync.Once
}

// Serve returns the http.Handler for one dialect.
func (h *Handler) Serve(d Dialect) http.Handler {
	h.initOnce.Do(func() {
		h.decisions = metrics.Counters[string]{Vec: h.Metrics.Decisions, Labels: func(r string) []string { return []string{r} }}
		h.byRule = metrics.Counters[ruleKey]{Vec: h.Metrics.RuleDecisions, Labels: func(k ruleKey) []string { return []string{k.result, k.from, k.rule} }}
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		var o outcome
		result := h.serve(w, r, d, &o)
		h.decisions.Inc(result)
		if o.decided {
			h.byRule.Inc(ruleKey{result: result, from: cmp.Or(o.origin.From, "none"), rule: cmp.Or(o.origin.ID, "none")})
		}
		h.Metrics.DecisionSeconds.Observe(time.Since(start).Seconds())
	})
}

// ruleKey is the labels of Metrics.RuleDecisions.
type ruleKey struct{ result, from, rule string }

// outcome says whether the policy decided a check, and on which rule.
type outcome struct {
	decided bool
	origin  access.Origin
}

// serve answers one check and returns its result for the metrics; o says whether the
// policy decided it, and by which rule.
func (h *Handler) serve(w http.ResponseWriter, r *http.Request, d Dialect, o *outcome) string {
	w.Header()["Cache-Control"] = noStore
	orig, err := ParseOriginal(r, d)
	if err != nil {
		return badOriginal(w, d, err)
	}
	who, err := h.principal(r)
	var wait time.Duration
	if who == nil && err == nil {
		who, wait, err = h.appPassword(r)
	}
	if wait > 0 {
		h.tooManyWrong(w, d, wait)
		return "throttled"
	}
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			h.Metrics.RequestTimeouts.Inc()
		}
		h.Log.Error("forward auth: checking the session failed", "host", orig.Host, "error", err.Error())
		http.Error(w, "gatehouse: could not check the session right now; try again shortly", http.StatusServiceUnavailable)
		return "error"
	}
	dec := h.Policy().Decide(access.Request{Host: orig.HostName(), Path: orig.Path}, identityOf(who))
	o.decided, o.origin = true, dec.Origin
	switch dec.Result {
	case access.Allow:
		writeIdentityHeaders(w.Header(), who)
		w.WriteHeader(http.StatusOK)
	case access.NeedLogin:
		if dec.AppPasswords {
			// A CalDAV app or a script cannot follow a login page: offer it Basic too.
			w.Header().Add("WWW-Authenticate", `Basic realm="gatehouse", charset="UTF-8"`)
		}
		why := "login required"
		if who != nil { // an app password where the rule takes none
			why = dec.Reason
		}
		h.sendTo(w, r, d, orig, h.LoginURL(orig.URL()), why)
	case access.NeedSecondFactor:
		h.sendTo(w, r, d, orig, h.StepUpURL(orig.URL()), "a second factor is required")
	default:
		if record, before := h.denials.record(who.Username, orig.HostName()); record {
			h.Audit(store.Event{Kind: "access.denied", Actor: who.Username, Target: orig.Host + orig.Path,
				Detail: dec.Reason + ruleNote(dec.Origin) + suppressedNote(before)})
		}
		h.refuse(w, r, d, orig, who, dec)
	}
	return dec.Result.String()
}

// ruleNote names the deciding rule and where it is defined, for an audit event.
func ruleNote(o access.Origin) string {
	if o.ID == "" {
		return ""
	}
	if o.From == access.FromConfig {
		return " (rule " + o.ID + " in the config file)"
	}
	return " (rule " + o.ID + " from " + o.Source + ")"
}

// identityOf is who a principal is to the access rules; nil for nil.
func identityOf(p *session.Principal) *access.Identity {
	if p == nil {
		return nil
	}
	return &access.Identity{Username: p.Username, Groups: p.Groups, TwoFactor: p.TwoFactor, AppPasswordHosts: p.AppPasswordHosts}
}

// refuse answers 403. A browser's page load gets a page saying who is signed in, why
// they may not pass and how to sign in as someone else (RefusalPage), and on the
// nginx endpoint, whose body nginx drops, also the address of the same page on
// Gatehouse (RedirectHeader), where the README's snippet sends it; everything else
// gets one line of text.
func (h *Handler) refuse(w http.ResponseWriter, r *http.Request, d Dialect, orig Original, who *session.Principal, dec access.Decision) {
	pageLoad := IsBrowser(r) && (orig.Method == http.MethodGet || orig.Method == http.MethodHead)
	if !pageLoad || h.RefusalPage == nil || who.AppPasswordHosts != nil {
		http.Error(w, Refusal(who.Username, orig.Host, dec.Reason), http.StatusForbidden)
		return
	}
	if d == AuthRequest && h.RefusedURL != nil {
		w.Header().Set(RedirectHeader, h.RefusedURL(orig.URL()))
	}
	h.RefusalPage(w, reportFor(h.Policy(), orig, who))
}

// Refusal is the text of a 403: who was refused which host, and why.
func Refusal(username, host, reason string) string {
	return "gatehouse: " + username + " may not open " + host + ": " + reason
}

// Outcome says what forward auth answers a browser's page load decided so, in words
// for `gatehouse access explain`: the same cases, and the same refusal text, as serve.
func Outcome(dec access.Decision, username, host string) string {
	switch dec.Result {
	case access.Allow:
		if username == "" {
			return "passes (200) without identity headers"
		}
		return "passes (200) with the identity headers of " + username
	case access.NeedLogin:
		return "is sent to sign in (302 to the login page; 401 naming it on the nginx endpoint)"
	case access.NeedSecondFactor:
		return "is asked for a second factor (302 to the step-up page; 401 naming it on the nginx endpoint)"
	default:
		return "is refused (403): " + Refusal(username, host, dec.Reason)
	}
}

// noStore is every answer's Cache-Control, shared: net/http only reads header values.
var noStore = []string{"no-store"}

// badOriginal answers a request whose original request could not be read.
func badOriginal(w http.ResponseWriter, d Dialect, err error) string {
	var refused *access.PathError
	if errors.As(err, &refused) {
		// nginx turns any auth answer but 2xx, 401 and 403 into a 500 of its own, which
		// would look like Gatehouse failing; a refused target is the client's doing.
		status := http.StatusBadRequest
		if d == AuthRequest {
			status = http.StatusForbidden
		}
		http.Error(w, "gatehouse: "+refused.Error(), status)
		return "refused_target"
	}
	// A header the proxy did not send is its operator's to fix (400, in nginx's error
	// log as such); a malformed one came from the client through the proxy, and behind
	// nginx gets 403 for the same reason as a refused target.
	status := http.StatusBadRequest
	var he *HeaderError
	if d == AuthRequest && errors.As(err, &he) && he.Reason != reasonMissing {
		status = http.StatusForbidden
	}
	http.Error(w, "gatehouse: bad forward-auth request: "+err.Error(), status)
	return "bad_request"
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

// RedirectHeader is set, on the nginx endpoint's 401, only when the original request
// was a browser's page load: the README's snippet redirects to it and passes any other
// 401 (and its challenge) on to the API client, CalDAV app or script that asked.
// Location carries the same URL on every 401, as snippets written for Authelia expect.
const RedirectHeader = "X-Gatehouse-Redirect"

// sendTo sends browsers' page loads to a Gatehouse page (login, step-up) and tells
// everything else 401. nginx cannot forward a redirect from auth_request, so its
// dialect always answers 401 with the page's URL for `auth_request_set`.
func (h *Handler) sendTo(w http.ResponseWriter, r *http.Request, d Dialect, orig Original, login, why string) {
	pageLoad := IsBrowser(r) && (orig.Method == http.MethodGet || orig.Method == http.MethodHead)
	switch {
	case d == AuthRequest:
		w.Header().Set("Location", login)
		if pageLoad {
			w.Header().Set(RedirectHeader, login)
		} else {
			w.Header().Add("WWW-Authenticate", `Cookie realm="gatehouse"`)
		}
		http.Error(w, "gatehouse: "+why, http.StatusUnauthorized)
	case pageLoad:
		// Not http.Redirect: its HTML body costs a tenth of an anonymous check's CPU,
		// and the proxy hands the browser our Location, not our body.
		w.Header().Set("Location", login)
		w.WriteHeader(http.StatusFound)
	default:
		w.Header().Add("WWW-Authenticate", `Cookie realm="gatehouse"`)
		http.Error(w, "gatehouse: "+why, http.StatusUnauthorized)
	}
}

// appPassword resolves the app password a request carries, if any. Only wrong ones
// are throttled, per client network: a valid one always passes, so a phone still
// syncing with a revoked password does not lock its household's other devices out.
// wait > 0 means this network sent too many wrong ones and must wait that long.
func (h *Handler) appPassword(r *http.Request) (p *session.Principal, wait time.Duration, err error) {
	var buf [basicMax]byte
	user, secret, ok := appPasswordIn(r.Header, &buf)
	if !ok {
		return nil, 0, nil
	}
	p, err = h.Sessions.LookupAppPassword(r.Context(), secret)
	if p != nil && (len(user) == 0 || strings.EqualFold(string(user), p.Username)) || err != nil {
		return p, 0, err
	}
	if h.Regulator == nil {
		return nil, 0, nil
	}
	limits := authn.AppPasswordLimits(authn.Network(h.ClientAddress(r)))
	if wait, err = h.Regulator.Wait(r.Context(), limits...); err != nil || wait > 0 {
		return nil, wait, err
	}
	return nil, 0, h.Regulator.Fail(r.Context(), limits...)
}

// tooManyWrong answers a network that sent too many wrong app passwords. nginx turns
// any auth answer but 2xx, 401 and 403 into a 500 of its own, so its dialect gets 401.
func (h *Handler) tooManyWrong(w http.ResponseWriter, d Dialect, wait time.Duration) {
	w.Header().Set("Retry-After", strconv.Itoa(int(wait.Seconds())+1))
	status := http.StatusTooManyRequests
	if d == AuthRequest {
		status = http.StatusUnauthorized
	}
	http.Error(w, "gatehouse: too many wrong app passwords from this network; wait and check the client's password", status)
}

// basicMax bounds a decoded Basic credential: a username and an app password fit
// with room to spare, and anything longer is not an app password.
const basicMax = 192

// AppPasswordOf returns the app password in an Authorization header: HTTP Basic
// (with the username it was given with) or Bearer (user ""). ok is false when there
// is none — no header, another scheme, or credentials that are not an app password
// (the app's own Basic login, say), which forward auth leaves to the app.
func AppPasswordOf(h http.Header) (user, secret string, ok bool) {
	var buf [basicMax]byte
	u, s, ok := appPasswordIn(h, &buf)
	return string(u), string(s), ok
}

// appPasswordIn is AppPasswordOf decoding into buf, so that the hot path copies
// nothing onto the heap; user and secret point into buf or the header.
func appPasswordIn(h http.Header, buf *[basicMax]byte) (user, secret []byte, ok bool) {
	v := h.Get("Authorization")
	scheme, rest, _ := strings.Cut(v, " ")
	rest = strings.TrimSpace(rest)
	switch {
	case strings.EqualFold(scheme, "Bearer"):
		if !identity.AppPasswordShape(rest) {
			return nil, nil, false
		}
		n := copy(buf[:], rest)
		return nil, buf[:n], true
	case strings.EqualFold(scheme, "Basic"):
		n, ok := decodeBase64(buf[:], rest)
		if !ok {
			return nil, nil, false
		}
		i := bytes.IndexByte(buf[:n], ':')
		if i <= 0 || !identity.AppPasswordShape(buf[i+1:n]) {
			return nil, nil, false
		}
		return buf[:i], buf[i+1 : n], true
	}
	return nil, nil, false
}

// decodeBase64 decodes standard, padded base64 from s into dst, reporting false for
// anything malformed or too long for dst. encoding/base64 would need s as a []byte,
// a copy on the heap for every check.
func decodeBase64(dst []byte, s string) (int, bool) {
	if len(s) == 0 || len(s)%4 != 0 || len(s)/4*3 > len(dst) {
		return 0, len(s) == 0
	}
	n := 0
	// Every quad but the last has no padding: four table lookups, and one test of
	// their high bits for a character outside the alphabet (0xff).
	for i := 0; i < len(s)-4; i += 4 {
		a, b, c, d := base64Values[s[i]], base64Values[s[i+1]], base64Values[s[i+2]], base64Values[s[i+3]]
		if (a|b|c|d)&0xc0 != 0 {
			return 0, false
		}
		dst[n], dst[n+1], dst[n+2] = a<<2|b>>4, b<<4|c>>2, c<<6|d
		n += 3
	}
	tail := s[len(s)-4:]
	a, b := base64Values[tail[0]], base64Values[tail[1]]
	c, d := base64Values[tail[2]], base64Values[tail[3]]
	pad := 0
	switch {
	case tail[2] == '=' && tail[3] == '=':
		c, d, pad = 0, 0, 2
	case tail[3] == '=':
		d, pad = 0, 1
	}
	if (a|b|c|d)&0xc0 != 0 {
		return 0, false
	}
	dst[n], dst[n+1], dst[n+2] = a<<2|b>>4, b<<4|c>>2, c<<6|d
	return n + 3 - pad, true
}

// base64Values maps a character of the standard alphabet to its value, others to 0xff.
var base64Values = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	for i, c := range "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/" {
		t[c] = byte(i)
	}
	return t
}()

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
