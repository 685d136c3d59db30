// Package access decides whether a request may pass: one pure function over the request
// (host and path), who is asking (their groups, if logged in) and the configured rules.
// This file is the answer to "how is a forward-auth request decided"; the HTTP dialects
// in package forwardauth only translate to and from it.
package access

import (
	"fmt"
	"strings"

	"github.com/gatehouse-id/gatehouse/internal/config"
)

// Result is the outcome of a decision.
type Result int

// The outcomes of Decide.
const (
	// Deny: the user is logged in but not allowed (403).
	Deny Result = iota
	// Allow: pass the request (200), with identity headers when logged in.
	Allow
	// NeedLogin: nobody is logged in and the request is not public (302 or 401).
	NeedLogin
	// NeedSecondFactor: the user may pass, but the rule wants a session signed in with
	// a second factor and this one was not: step up, do not start over.
	NeedSecondFactor
)

func (r Result) String() string {
	switch r {
	case Allow:
		return "allow"
	case NeedLogin:
		return "login"
	case NeedSecondFactor:
		return "step_up"
	default:
		return "deny"
	}
}

// Request is what a decision looks at. Host is lower case without a port. Path is the
// request path exactly as the app will receive it (still %-encoded, without the
// query), and must have passed CheckPath: Decide reads it every way an app might (see
// path.go), so "/api/%2e%2e/admin" or "/api/..;/admin" cannot pass as "/api/".
type Request struct {
	Host string
	Path string
}

// Identity is who is asking; nil means not logged in.
type Identity struct {
	Username  string
	Groups    []string // effective groups, parents included
	TwoFactor bool     // the session was signed in with a second factor
	// AppPasswordHosts is set when the request presented an app password instead of
	// a session: the host patterns it was made for (see HostMatches).
	AppPasswordHosts []string
}

// Decision is a Result with the rule that produced it (-1 when no rule matched) and
// the reading of the path it was decided on, for logs, metrics, audit events and
// explanations.
type Decision struct {
	Result Result
	Rule   int
	Reason string
	// Reading is the reading of the request path that gave the strictest decision.
	Reading Reading
	// AppPasswords says the deciding rule accepts app passwords, so a client without
	// credentials may be asked for HTTP Basic ones.
	AppPasswords bool
	// Origin says where the deciding rule was defined; zero when no rule matched.
	Origin Origin
}

// Where rules come from (Origin.From).
const (
	FromConfig     = "config"     // access.rules in the config file
	FromKubernetes = "kubernetes" // annotations on Ingress and HTTPRoute objects
)

// Origin says where a rule was defined, for decisions, audit events, metrics and
// explanations: an operator reading "denied" must be able to find the rule to change.
type Origin struct {
	// From is FromConfig or FromKubernetes.
	From string
	// ID names the rule: "access.rules[2]", or "kubernetes:host/path" ("/*" for every
	// path of the host).
	ID string
	// Source is the definition's place: "config", or the Kubernetes objects the rule
	// was made from, as "namespace/Kind/name", comma-separated.
	Source string
}

// Sourced is a rule defined outside the config file, with its origin.
type Sourced struct {
	Rule   config.Rule
	Origin Origin
}

// Policy is a compiled, immutable set of rules. Swap a new one in to reload.
//
// Rules are indexed by host so that a decision looks at only the rules that name the
// request's host or one of its parent domains, not all of them: with 100 rules that is
// the difference between a hundred map lookups and two or three.
type Policy struct {
	rules       []rule
	config      []config.Rule // as configured, for explanations
	origins     []Origin      // where each rule was defined
	admins      []string
	exact       map[string][]int // host → indexes of rules naming it, ascending
	wildcard    map[string][]int // ".example.com" → indexes of rules with "*.example.com"
	adminGroups map[string]bool
	// foldAlways is set when some rule path has upper case: then even a lower-case
	// request path gets a case-folded reading (a case-insensitive app serves
	// "/Admin" for "/admin").
	foldAlways bool
}

type rule struct {
	paths        []string
	lowerPaths   []string // paths in lower case, for folded readings
	groups       map[string]bool
	public       bool
	deny         bool
	twoFactor    bool
	appPasswords bool
}

// NewPolicy compiles validated access config, followed by rules from other sources
// (Kubernetes): the config file's rules come first, so an operator's rule overrides
// any annotation.
func NewPolicy(a config.Access, more ...Sourced) *Policy {
	p := &Policy{adminGroups: set(a.AdminGroups), exact: map[string][]int{}, wildcard: map[string][]int{},
		admins: a.AdminGroups}
	p.config = append(make([]config.Rule, 0, len(a.Rules)+len(more)), a.Rules...)
	for i := range a.Rules {
		p.origins = append(p.origins, Origin{From: FromConfig, ID: fmt.Sprintf("access.rules[%d]", i), Source: FromConfig})
	}
	for _, s := range more {
		p.config, p.origins = append(p.config, s.Rule), append(p.origins, s.Origin)
	}
	for i, r := range p.config {
		compiled := rule{paths: r.Paths, groups: set(r.Groups), public: r.Public, deny: r.Deny, twoFactor: r.TwoFactor, appPasswords: r.AllowAppPasswords}
		for _, path := range r.Paths {
			lower := strings.ToLower(path)
			compiled.lowerPaths = append(compiled.lowerPaths, lower)
			p.foldAlways = p.foldAlways || lower != path
		}
		p.rules = append(p.rules, compiled)
		for _, h := range r.Hosts {
			h = strings.ToLower(h)
			index := p.exact
			if suffix, ok := strings.CutPrefix(h, "*"); ok {
				h, index = suffix, p.wildcard
			}
			if l := index[h]; len(l) == 0 || l[len(l)-1] != i {
				index[h] = append(l, i)
			}
		}
	}
	return p
}

// From lists the rules from one source (FromKubernetes), in the order they are
// weighed, for the admin pages.
func (p *Policy) From(from string) []Sourced {
	var out []Sourced
	for i, o := range p.origins {
		if o.From == from {
			out = append(out, Sourced{Rule: p.config[i], Origin: o})
		}
	}
	return out
}

func set(items []string) map[string]bool {
	m := make(map[string]bool, len(items))
	for _, s := range items {
		m[s] = true
	}
	return m
}

// Decide applies, for every reading of the request path (see path.go), the first rule
// whose hosts and paths match, and returns the strictest of those decisions: a rule
// that protects less applies only when every reading falls under it. For one reading:
// public rules pass everyone; otherwise a login is needed; admin groups then pass
// every rule (break-glass), and others pass only through one of the rule's groups. A
// rule with two_factor lets through only sessions signed in with a second factor —
// admins' too: break-glass is about groups, not about factors. No matching rule means
// deny.
func (p *Policy) Decide(req Request, who *Identity) Decision {
	if !p.foldAlways && plainPath(req.Path) { // the common case: one reading, no buffer
		return p.decideReading(req.Host, Reading{Path: req.Path}, who)
	}
	var buf [maxReadings]Reading
	var strictest Decision
	for i, reading := range appendReadings(buf[:0], req.Path, p.foldAlways) {
		d := p.decideReading(req.Host, reading, who)
		if i == 0 || d.Result.strictness() > strictest.Result.strictness() {
			strictest = d
		}
	}
	return strictest
}

// strictness orders results from the most permissive to the strictest. For one
// identity the results of two readings are always comparable: anonymous requests get
// Allow or NeedLogin, signed-in ones Allow, NeedSecondFactor or Deny.
func (r Result) strictness() int {
	switch r {
	case Allow:
		return 0
	case NeedSecondFactor:
		return 1
	case NeedLogin:
		return 2
	default:
		return 3
	}
}

func (p *Policy) decideReading(host string, reading Reading, who *Identity) Decision {
	idx := p.firstMatch(host, reading)
	d := p.decide(idx, who)
	d.Reading = reading
	if idx >= 0 {
		d.Origin = p.origins[idx]
	}
	d.AppPasswords = idx >= 0 && p.rules[idx].appPasswords
	switch {
	case d.Result != Allow || idx >= 0 && p.rules[idx].public:
	case who.AppPasswordHosts != nil && !d.AppPasswords:
		// Not a session: an app password opens only what opted in, admins' included.
		d.Result, d.Reason = NeedLogin, "this rule does not accept app passwords (allow_app_passwords)"
	case who.AppPasswordHosts != nil && !HostMatches(who.AppPasswordHosts, host):
		d.Result, d.Reason = Deny, "the app password was not made for this host"
	case who.AppPasswordHosts != nil && p.rules[idx].twoFactor:
		d.Result, d.Reason = Deny, "the rule requires a second factor, which an app password is not"
	case idx >= 0 && p.rules[idx].twoFactor && !who.TwoFactor:
		d.Result, d.Reason = NeedSecondFactor, "the rule requires a second factor"
	}
	return d
}

func (p *Policy) decide(idx int, who *Identity) Decision {
	switch {
	case idx >= 0 && p.rules[idx].public:
		return Decision{Result: Allow, Rule: idx, Reason: "public rule"}
	case who == nil:
		return Decision{Result: NeedLogin, Rule: idx, Reason: "not logged in"}
	case p.inAny(who.Groups, p.adminGroups):
		return Decision{Result: Allow, Rule: idx, Reason: "admin group"}
	case idx < 0:
		return Decision{Result: Deny, Rule: idx, Reason: "no rule matches this host and path (default deny)"}
	case p.rules[idx].deny:
		return Decision{Result: Deny, Rule: idx, Reason: "deny rule"}
	case p.inAny(who.Groups, p.rules[idx].groups):
		return Decision{Result: Allow, Rule: idx, Reason: "group member"}
	default:
		return Decision{Result: Deny, Rule: idx, Reason: "not in any of the rule's groups"}
	}
}

func (p *Policy) inAny(groups []string, allowed map[string]bool) bool {
	for _, g := range groups {
		if allowed[g] {
			return true
		}
	}
	return false
}

// firstMatch returns the index of the first rule matching the host and this reading of
// the path, or -1. Each index list is ascending, so the first path match in a list is
// that list's best; the answer is the lowest of those across the host's exact list and
// its parent domains' wildcards.
func (p *Policy) firstMatch(host string, reading Reading) int {
	best := -1
	consider := func(list []int) {
		for _, i := range list {
			if best >= 0 && i >= best {
				return
			}
			if p.rules[i].matchesPath(reading) {
				best = i
				return
			}
		}
	}
	consider(p.exact[host])
	for i := 1; i < len(host); i++ { // from 1: "*.example.com" needs a label before the dot
		if host[i] == '.' {
			consider(p.wildcard[host[i:]])
		}
	}
	return best
}

// matchesPath treats a prefix ending in "/" as a folder ("/api/" covers "/api/x") and
// any other prefix as a path segment boundary ("/api" covers "/api" and "/api/x", not
// "/apiary"). A folded reading is matched against the lower-cased rule paths.
func (r *rule) matchesPath(reading Reading) bool {
	if len(r.paths) == 0 {
		return true
	}
	paths, path := r.paths, reading.Path
	if reading.Folded {
		paths = r.lowerPaths
	}
	for _, p := range paths {
		if strings.HasSuffix(p, "/") {
			if strings.HasPrefix(path, p) {
				return true
			}
		} else if path == p || strings.HasPrefix(path, p+"/") {
			return true
		}
	}
	return false
}

// HostMatches reports whether host (lower case, no port) is one of patterns: exact
// names, or "*.example.com" for every subdomain (not the bare domain), as in rules.
func HostMatches(patterns []string, host string) bool {
	for _, p := range patterns {
		if suffix, ok := strings.CutPrefix(p, "*"); ok {
			if len(host) > len(suffix) && strings.HasSuffix(host, suffix) {
				return true
			}
		} else if p == host {
			return true
		}
	}
	return false
}
