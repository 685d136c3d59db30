// Package access decides whether a request may pass: one pure function over the request
// (host and path), who is asking (their groups, if logged in) and the configured rules.
// This file is the answer to "how is a forward-auth request decided"; the HTTP dialects
// in package forwardauth only translate to and from it.
package access

import (
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
)

func (r Result) String() string {
	switch r {
	case Allow:
		return "allow"
	case NeedLogin:
		return "login"
	default:
		return "deny"
	}
}

// Request is what a decision looks at. Host is lower case without a port; Path is
// already decoded and cleaned (see forwardauth), so "/api/../admin" cannot pass as "/api/".
type Request struct {
	Host string
	Path string
}

// Identity is who is asking; nil means not logged in.
type Identity struct {
	Username string
	Groups   []string // effective groups, parents included
}

// Decision is a Result with the rule that produced it (-1 when no rule matched), for
// logs, metrics and audit events.
type Decision struct {
	Result Result
	Rule   int
	Reason string
}

// Policy is a compiled, immutable set of rules. Swap a new one in to reload.
type Policy struct {
	rules       []rule
	adminGroups map[string]bool
}

type rule struct {
	exact    map[string]bool
	suffixes []string // ".example.com" for "*.example.com"
	paths    []string
	groups   map[string]bool
	public   bool
	deny     bool
}

// NewPolicy compiles validated access config.
func NewPolicy(a config.Access) *Policy {
	p := &Policy{adminGroups: set(a.AdminGroups)}
	for _, r := range a.Rules {
		cr := rule{exact: map[string]bool{}, paths: r.Paths, groups: set(r.Groups), public: r.Public, deny: r.Deny}
		for _, h := range r.Hosts {
			h = strings.ToLower(h)
			if suffix, ok := strings.CutPrefix(h, "*"); ok {
				cr.suffixes = append(cr.suffixes, suffix)
			} else {
				cr.exact[h] = true
			}
		}
		p.rules = append(p.rules, cr)
	}
	return p
}

func set(items []string) map[string]bool {
	m := make(map[string]bool, len(items))
	for _, s := range items {
		m[s] = true
	}
	return m
}

// Decide applies the first rule whose hosts and paths match. Public rules pass everyone;
// otherwise a login is needed; admin groups then pass every rule (break-glass), and
// others pass only through one of the rule's groups. No matching rule means deny.
func (p *Policy) Decide(req Request, who *Identity) Decision {
	idx := -1
	for i := range p.rules {
		if p.rules[i].matches(req) {
			idx = i
			break
		}
	}
	switch {
	case idx >= 0 && p.rules[idx].public:
		return Decision{Allow, idx, "public rule"}
	case who == nil:
		return Decision{NeedLogin, idx, "not logged in"}
	case p.inAny(who.Groups, p.adminGroups):
		return Decision{Allow, idx, "admin group"}
	case idx < 0:
		return Decision{Deny, idx, "no rule matches this host and path (default deny)"}
	case p.rules[idx].deny:
		return Decision{Deny, idx, "deny rule"}
	case p.inAny(who.Groups, p.rules[idx].groups):
		return Decision{Allow, idx, "group member"}
	default:
		return Decision{Deny, idx, "not in any of the rule's groups"}
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

func (r *rule) matches(req Request) bool {
	return r.matchesHost(req.Host) && r.matchesPath(req.Path)
}

func (r *rule) matchesHost(host string) bool {
	if r.exact[host] {
		return true
	}
	for _, s := range r.suffixes {
		if len(host) > len(s) && strings.HasSuffix(host, s) {
			return true
		}
	}
	return false
}

// matchesPath treats a prefix ending in "/" as a folder ("/api/" covers "/api/x") and
// any other prefix as a path segment boundary ("/api" covers "/api" and "/api/x", not
// "/apiary").
func (r *rule) matchesPath(path string) bool {
	if len(r.paths) == 0 {
		return true
	}
	for _, p := range r.paths {
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
