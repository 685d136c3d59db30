// Package kuberules owns the access rules that come from Kubernetes: it reads
// annotations on Ingress and Gateway API HTTPRoute objects and compiles them into
// rules that follow the config file's (compile.go), and it keeps them current from the
// API server with informers, never handing on an empty or half-read table (source.go).
//
// Compiling is a pure function of the objects, so every replica that has seen the
// same objects holds the same rules in the same order, whatever order the API server
// listed them in.
package kuberules

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/gatehouse-id/gatehouse/internal/access"
	"github.com/gatehouse-id/gatehouse/internal/config"
)

// The annotations read, after the prefix (gatehouse.io/ by default).
const (
	AnnotationGroups            = "groups"              // "Family, Admins": members pass
	AnnotationPublic            = "public"              // "true": everyone passes
	AnnotationDeny              = "deny"                // "true": only admin groups pass
	AnnotationTwoFactor         = "two-factor"          // "true": with groups, a second factor too
	AnnotationAllowAppPasswords = "allow-app-passwords" // "true": with groups, app passwords pass too
	AnnotationPaths             = "paths"               // "/admin/,/api": the rule covers only these paths
	AnnotationPublicPaths       = "public-paths"        // "/api/,/.well-known/": these paths are public
)

var known = []string{AnnotationGroups, AnnotationPublic, AnnotationDeny, AnnotationTwoFactor, AnnotationAllowAppPasswords,
	AnnotationPaths, AnnotationPublicPaths}

// The reasons of problems, as Kubernetes Events and the metric's label name them.
const (
	ReasonInvalidAnnotation = "InvalidAnnotation"       // a value that cannot be read, or an unknown name under the prefix
	ReasonUnknownGroup      = "UnknownGroup"            // a group nobody has created
	ReasonOutsideCookie     = "HostOutsideCookieDomain" // the sign-in cookie never reaches the host
	ReasonNoHost            = "NoHost"                  // a rule of the object names no host Gatehouse could match
	ReasonConflict          = "Conflict"                // another object says something else for the same host and path
)

// Object is an Ingress or an HTTPRoute, as much of it as the rules need.
type Object struct {
	Kind            string // Ingress or HTTPRoute
	APIVersion      string // networking.k8s.io/v1 or gateway.networking.k8s.io/v1
	Namespace, Name string
	UID             string
	ResourceVersion string
	Annotations     map[string]string
	// Hosts are the object's host names (spec.rules[].host, spec.hostnames); "" for a
	// rule that names none.
	Hosts []string
}

// Ref names the object as rule sources and messages do: namespace/Kind/name.
func (o *Object) Ref() string { return o.Namespace + "/" + o.Kind + "/" + o.Name }

// Problem is something wrong with an object's annotations. Every problem but a
// conflict makes the object's rules deny (admins still pass): an annotation that
// cannot be read is never guessed at.
type Problem struct {
	Object  *Object
	Reason  string // one of the Reason constants
	Message string // what is wrong and what to do
}

func (p Problem) String() string { return p.Object.Ref() + ": " + p.Reason + ": " + p.Message }

// Options say how to read annotations.
type Options struct {
	// Prefix is access.kubernetes.annotation_prefix, "gatehouse.io/".
	Prefix string
	// Groups are the group names that exist; nil skips the check (the database could
	// not be read), rather than refusing every object.
	Groups []string
	// CookieDomain is session.cookie_domain: a host outside it can never be signed in
	// to.
	CookieDomain string
}

// OptionsFor reads annotations as cfg says, against the groups that exist (nil: not
// checked).
func OptionsFor(cfg *config.Config, groups []string) Options {
	return Options{Prefix: cfg.Access.Kubernetes.AnnotationPrefix, Groups: groups, CookieDomain: cfg.Session.CookieDomain}
}

// Compiled is the outcome of Compile.
type Compiled struct {
	Rules    []access.Sourced
	Problems []Problem
	Objects  int // objects carrying annotations under the prefix
}

// spec is one rule for one host and path, before merging.
type spec struct {
	host, path string // path "" is every path
	rule       config.Rule
	from       []string // object refs
}

// Compile turns objects into rules for access.NewPolicy. Objects without annotations
// under the prefix are not Gatehouse's: they make no rule, so their hosts stay denied
// by default. The same objects in any order give the same rules in the same order.
func Compile(objects []*Object, opt Options) Compiled {
	var out Compiled
	sorted := slices.Clone(objects)
	slices.SortFunc(sorted, func(a, b *Object) int { return cmp.Compare(a.Ref(), b.Ref()) })
	type read struct {
		o     *Object
		specs []*spec
	}
	var all []read
	byHost := map[string][]int{} // host → indexes into all of the objects naming it
	for _, o := range sorted {
		specs, problems, ours := readObject(o, opt)
		if !ours {
			continue
		}
		out.Objects++
		out.Problems = append(out.Problems, problems...)
		all = append(all, read{o, specs})
		for _, s := range specs {
			if l := byHost[s.host]; len(l) == 0 || l[len(l)-1] != len(all)-1 {
				byHost[s.host] = append(l, len(all)-1)
			}
		}
	}
	// Objects that share a host must not weaken one another through paths: a request
	// one object's rule decides gets, besides, what every other object on the host
	// says for that path (its most specific rule covering it), the stricter of the
	// two. Otherwise a second Ingress with public-paths "/" would open a host that
	// the first one keeps for a group.
	reported := map[string]bool{}
	conflict := func(on, other *Object, host, path string, r config.Rule) {
		msg := fmt.Sprintf("%s also sets a rule for %s%s, differently; the stricter applies there: %s. Put a host's rules on one object", other.Ref(), host, pathWords(path), describe(r))
		if !reported[on.Ref()+"\x00"+msg] {
			reported[on.Ref()+"\x00"+msg] = true
			out.Problems = append(out.Problems, Problem{Object: on, Reason: ReasonConflict, Message: msg})
		}
	}
	original := map[*spec]config.Rule{}
	for _, r := range all {
		for _, s := range r.specs {
			original[s] = s.rule
		}
	}
	for host, objs := range byHost {
		for _, i := range objs {
			for _, s := range all[i].specs {
				if s.host != host {
					continue
				}
				for _, j := range objs {
					if j == i {
						continue
					}
					c := covering(all[j].specs, host, s.path)
					if c == nil || same(original[c], original[s]) {
						continue
					}
					s.rule = stricter(s.rule, original[c])
					conflict(all[i].o, all[j].o, host, s.path, s.rule)
					conflict(all[j].o, all[i].o, host, s.path, s.rule)
				}
			}
		}
	}
	merged := map[[2]string]*spec{}
	for _, r := range all {
		for _, s := range r.specs {
			k := [2]string{s.host, s.path}
			have := merged[k]
			if have == nil {
				merged[k] = s
				continue
			}
			have.rule = stricter(have.rule, s.rule)
			if !slices.Contains(have.from, r.o.Ref()) {
				have.from = append(have.from, r.o.Ref())
			}
		}
	}
	// Problems in a stable order too: the CLI's listing and the Events do not shuffle.
	slices.SortStableFunc(out.Problems, func(a, b Problem) int {
		return cmp.Or(cmp.Compare(a.Object.Ref(), b.Object.Ref()), cmp.Compare(a.Reason, b.Reason), cmp.Compare(a.Message, b.Message))
	})
	specs := make([]*spec, 0, len(merged))
	for _, s := range merged {
		specs = append(specs, s)
	}
	slices.SortFunc(specs, order)
	for _, s := range specs {
		id := "kubernetes:" + s.host + cmp.Or(s.path, "/*")
		out.Rules = append(out.Rules, access.Sourced{Rule: s.rule,
			Origin: access.Origin{From: access.FromKubernetes, ID: id, Source: strings.Join(s.from, ", ")}})
	}
	return out
}

// order puts the rules a request should meet first first: exact hosts before
// wildcards (longer, more specific suffixes first), then per host longer paths first
// and every path last. Policy only weighs rules against requests for the same host, so
// this is all the order that matters; the rest is for determinism.
func order(a, b *spec) int {
	aw, bw := strings.HasPrefix(a.host, "*."), strings.HasPrefix(b.host, "*.")
	switch {
	case aw != bw:
		if aw {
			return 1
		}
		return -1
	case len(a.host) != len(b.host):
		return cmp.Compare(len(b.host), len(a.host))
	case a.host != b.host:
		return cmp.Compare(a.host, b.host)
	case (a.path == "") != (b.path == ""):
		if a.path == "" {
			return 1
		}
		return -1
	case len(a.path) != len(b.path):
		return cmp.Compare(len(b.path), len(a.path))
	}
	return cmp.Compare(a.path, b.path)
}

// readObject reads one object's annotations into rules per host and path. ours says
// the object has annotations under the prefix at all.
func readObject(o *Object, opt Options) (specs []*spec, problems []Problem, ours bool) {
	values := map[string]string{}
	problem := func(reason, format string, args ...any) {
		problems = append(problems, Problem{Object: o, Reason: reason, Message: fmt.Sprintf(format, args...)})
	}
	for name, v := range o.Annotations {
		short, ok := strings.CutPrefix(name, opt.Prefix)
		if !ok {
			continue
		}
		ours = true
		if !slices.Contains(known, short) {
			hint := ""
			if near := config.Nearest(short, known); near != "" {
				hint = fmt.Sprintf(" (did you mean %s%s?)", opt.Prefix, near)
			}
			problem(ReasonInvalidAnnotation, "unknown annotation %s%s; the ones read are %s%s", name, hint, opt.Prefix, strings.Join(known, ", "+opt.Prefix))
			continue
		}
		values[short] = strings.TrimSpace(v)
	}
	if !ours {
		return nil, nil, false
	}
	flag := func(name string) bool {
		v, set := values[name]
		switch strings.ToLower(v) {
		case "true":
			return true
		case "false":
			return false
		}
		if set {
			problem(ReasonInvalidAnnotation, "%s%s is %q; write \"true\" or \"false\"", opt.Prefix, name, v)
		}
		return false
	}
	main := config.Rule{Public: flag(AnnotationPublic), Deny: flag(AnnotationDeny), TwoFactor: flag(AnnotationTwoFactor),
		AllowAppPasswords: flag(AnnotationAllowAppPasswords)}
	if v, set := values[AnnotationGroups]; set {
		main.Groups = list(v)
		if len(main.Groups) == 0 {
			problem(ReasonInvalidAnnotation, "%s%s is empty; name the groups whose members pass, separated by commas", opt.Prefix, AnnotationGroups)
		}
	}
	n := 0
	for _, set := range []bool{len(main.Groups) > 0, main.Public, main.Deny} {
		if set {
			n++
		}
	}
	if n != 1 && len(problems) == 0 {
		problem(ReasonInvalidAnnotation, "say exactly one of %sgroups: \"A, B\", %spublic: \"true\" or %sdeny: \"true\"", opt.Prefix, opt.Prefix, opt.Prefix)
	}
	if (main.TwoFactor || main.AllowAppPasswords) && len(main.Groups) == 0 && len(problems) == 0 {
		problem(ReasonInvalidAnnotation, "%stwo-factor and %sallow-app-passwords go with %sgroups", opt.Prefix, opt.Prefix, opt.Prefix)
	}
	if main.TwoFactor && main.AllowAppPasswords {
		problem(ReasonInvalidAnnotation, "%sallow-app-passwords cannot go with %stwo-factor: an app password is one factor", opt.Prefix, opt.Prefix)
	}
	for _, g := range main.Groups {
		if err := config.CheckGroupName(g); err != nil {
			problem(ReasonInvalidAnnotation, "%s%s: %v", opt.Prefix, AnnotationGroups, err)
		} else if opt.Groups != nil && !slices.Contains(opt.Groups, g) {
			hint := ""
			if near := config.Nearest(g, opt.Groups); near != "" {
				hint = fmt.Sprintf(" (did you mean %q?)", near)
			}
			problem(ReasonUnknownGroup, "group %q does not exist%s; create it (gatehouse group add) or fix the name. Until then only admins pass", g, hint)
		}
	}
	paths := func(name string) []string {
		v, set := values[name]
		ps := list(v)
		if set && len(ps) == 0 {
			problem(ReasonInvalidAnnotation, "%s%s is empty; list path prefixes separated by commas, or remove it", opt.Prefix, name)
		}
		for _, p := range ps {
			if err := config.CheckRulePath(p); err != nil {
				problem(ReasonInvalidAnnotation, "%s%s: %q %v", opt.Prefix, name, p, err)
			}
		}
		return ps
	}
	onlyPaths, publicPaths := paths(AnnotationPaths), paths(AnnotationPublicPaths)

	var hosts []string
	for _, h := range o.Hosts {
		h = strings.ToLower(strings.TrimSuffix(h, "."))
		switch {
		case h == "":
			problem(ReasonNoHost, "a rule of the %s names no host, so Gatehouse cannot tell which requests it covers; give every rule a host", o.Kind)
		case config.CheckHostPattern(h) != nil:
			problem(ReasonInvalidAnnotation, "host %q: %v", h, config.CheckHostPattern(h))
		case config.OutsideCookieDomain(h, opt.CookieDomain):
			problem(ReasonOutsideCookie, "host %q is outside session.cookie_domain %q: the sign-in cookie never reaches it, so nobody could sign in there; only admins pass", h, opt.CookieDomain)
			hosts = append(hosts, h)
		case !slices.Contains(hosts, h):
			hosts = append(hosts, h)
		}
	}
	if len(o.Hosts) == 0 {
		problem(ReasonNoHost, "the %s names no host, so Gatehouse cannot tell which requests it covers", o.Kind)
	}
	slices.Sort(hosts)
	hosts = slices.Compact(hosts)
	ref := []string{o.Ref()}
	if len(problems) > 0 {
		// Never guess: what cannot be read denies (admins pass, and can fix it).
		for _, h := range hosts {
			specs = append(specs, &spec{host: h, rule: config.Rule{Hosts: []string{h}, Deny: true}, from: ref})
		}
		return specs, problems, true
	}
	for _, h := range hosts {
		for _, p := range publicPaths {
			specs = append(specs, &spec{host: h, path: p, rule: config.Rule{Hosts: []string{h}, Paths: []string{p}, Public: true}, from: ref})
		}
		if len(onlyPaths) == 0 {
			r := main
			r.Hosts = []string{h}
			specs = append(specs, &spec{host: h, rule: r, from: ref})
		}
		for _, p := range onlyPaths {
			r := main
			r.Hosts, r.Paths = []string{h}, []string{p}
			specs = append(specs, &spec{host: h, path: p, rule: r, from: ref})
		}
	}
	return specs, nil, true
}

// covering is the most specific of specs for host that covers path ("" for every
// path, which only an every-path rule covers), or nil.
func covering(specs []*spec, host, path string) *spec {
	var best *spec
	for _, s := range specs {
		if s.host != host {
			continue
		}
		ok := s.path == "" || path != "" && (path == s.path || strings.HasPrefix(path, s.path) && (strings.HasSuffix(s.path, "/") || path[len(s.path)] == '/'))
		if ok && (best == nil || best.path == "" || len(s.path) > len(best.path)) {
			best = s
		}
	}
	return best
}

// list splits a comma-separated annotation value, trimming spaces and dropping empty
// items and repeats.
func list(v string) []string {
	var out []string
	for item := range strings.SplitSeq(v, ",") {
		if item = strings.TrimSpace(item); item != "" && !slices.Contains(out, item) {
			out = append(out, item)
		}
	}
	return out
}

// stricter merges two rules for the same host and path into one that lets through
// only whom both let through: any deny wins, public only if both are, otherwise the
// groups they share (none shared: deny); a second factor if either asks, app
// passwords only if both take them.
func stricter(a, b config.Rule) config.Rule {
	out := config.Rule{Hosts: a.Hosts, Paths: a.Paths}
	switch {
	case a.Deny || b.Deny:
		out.Deny = true
	case a.Public && b.Public:
		out.Public = true
	case a.Public:
		out.Groups, out.TwoFactor, out.AllowAppPasswords = b.Groups, b.TwoFactor, b.AllowAppPasswords
	case b.Public:
		out.Groups, out.TwoFactor, out.AllowAppPasswords = a.Groups, a.TwoFactor, a.AllowAppPasswords
	default:
		for _, g := range a.Groups {
			if slices.Contains(b.Groups, g) {
				out.Groups = append(out.Groups, g)
			}
		}
		if len(out.Groups) == 0 {
			out.Deny = true
		} else {
			out.TwoFactor, out.AllowAppPasswords = a.TwoFactor || b.TwoFactor, a.AllowAppPasswords && b.AllowAppPasswords
		}
	}
	return out
}

func same(a, b config.Rule) bool {
	return a.Public == b.Public && a.Deny == b.Deny && a.TwoFactor == b.TwoFactor && a.AllowAppPasswords == b.AllowAppPasswords &&
		slices.Equal(sortedCopy(a.Groups), sortedCopy(b.Groups))
}

func sortedCopy(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

func pathWords(p string) string {
	if p == "" {
		return " (every path)"
	}
	return p
}

// describe says in words whom a rule lets through.
func describe(r config.Rule) string {
	switch {
	case r.Deny:
		return "deny (only admins pass)"
	case r.Public:
		return "public"
	}
	s := "groups " + strings.Join(r.Groups, ", ")
	if r.TwoFactor {
		s += ", with a second factor"
	}
	return s
}
