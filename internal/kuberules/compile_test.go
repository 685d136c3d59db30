package kuberules

import (
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/klog/v2"

	"github.com/gatehouse-id/gatehouse/internal/access"
	"github.com/gatehouse-id/gatehouse/internal/config"
	"github.com/gatehouse-id/gatehouse/internal/testenv"
)

func ingress(name string, hosts []string, annotations ...string) *Object {
	a := map[string]string{}
	for i := 0; i+1 < len(annotations); i += 2 {
		a[annotations[i]] = annotations[i+1]
	}
	return &Object{Kind: "Ingress", APIVersion: "networking.k8s.io/v1", Namespace: "apps", Name: name, UID: "uid-" + name, Annotations: a, Hosts: hosts}
}

var opts = Options{Prefix: "gatehouse.io/", Groups: []string{"Family", "Admins", "Media", "Allow Login Users"}, CookieDomain: "example.com"}

// decide compiles objects into a policy (after config rules, as the server does) and
// decides host+path for someone in groups (nil: nobody signed in).
func decide(t *testing.T, c Compiled, host, path string, groups ...string) access.Decision {
	t.Helper()
	p := access.NewPolicy(config.Access{AdminGroups: []string{"Admins"}}, c.Rules...)
	var who *access.Identity
	if groups != nil {
		who = &access.Identity{Username: "u", Groups: groups}
	}
	return p.Decide(access.Request{Host: host, Path: path}, who)
}

func TestAnnotationsBecomeRules(t *testing.T) {
	c := Compile([]*Object{
		ingress("photos", []string{"photos.example.com"}, "gatehouse.io/groups", " Family , Media", "gatehouse.io/public-paths", "/api/,/.well-known/"),
		ingress("vault", []string{"vault.example.com"}, "gatehouse.io/groups", "Family", "gatehouse.io/two-factor", "true"),
		ingress("blog", []string{"blog.example.com"}, "gatehouse.io/public", "true", "gatehouse.io/paths", "/"),
		ingress("other", []string{"other.example.com"}, "nginx.ingress.kubernetes.io/rewrite-target", "/"),
	}, opts)
	if len(c.Problems) != 0 || c.Objects != 3 {
		t.Fatalf("problems %v, objects %d", c.Problems, c.Objects)
	}
	for _, tc := range []struct {
		host, path string
		groups     []string
		want       access.Result
		id         string
	}{
		{"photos.example.com", "/", []string{"Media"}, access.Allow, "kubernetes:photos.example.com/*"},
		{"photos.example.com", "/", []string{"Other"}, access.Deny, "kubernetes:photos.example.com/*"},
		{"photos.example.com", "/", nil, access.NeedLogin, "kubernetes:photos.example.com/*"},
		{"photos.example.com", "/api/albums", nil, access.Allow, "kubernetes:photos.example.com/api/"},
		{"photos.example.com", "/apiary", nil, access.NeedLogin, "kubernetes:photos.example.com/*"},
		{"vault.example.com", "/", []string{"Family"}, access.NeedSecondFactor, "kubernetes:vault.example.com/*"},
		{"blog.example.com", "/post", nil, access.Allow, "kubernetes:blog.example.com/"},
		{"other.example.com", "/", []string{"Family"}, access.Deny, ""},
	} {
		d := decide(t, c, tc.host, tc.path, tc.groups...)
		if d.Result != tc.want || d.Origin.ID != tc.id {
			t.Errorf("%s%s for %v: %v by %q (%s), want %v by %q", tc.host, tc.path, tc.groups, d.Result, d.Origin.ID, d.Reason, tc.want, tc.id)
		}
		if tc.id != "" && (d.Origin.From != access.FromKubernetes || !strings.HasPrefix(d.Origin.Source, "apps/Ingress/")) {
			t.Errorf("%s: origin %+v", tc.host, d.Origin)
		}
	}
}

func TestConfigRulesComeFirst(t *testing.T) {
	c := Compile([]*Object{ingress("photos", []string{"photos.example.com"}, "gatehouse.io/public", "true")}, opts)
	p := access.NewPolicy(config.Access{AdminGroups: []string{"Admins"}, Rules: []config.Rule{{Hosts: []string{"*.example.com"}, Groups: []string{"Family"}}}}, c.Rules...)
	d := p.Decide(access.Request{Host: "photos.example.com", Path: "/"}, nil)
	if d.Result != access.NeedLogin || d.Origin.ID != "access.rules[0]" || d.Origin.Source != "config" {
		t.Fatalf("config rule should decide first: %+v", d)
	}
}

// Every problem is reported on its object, named, and makes the object's hosts deny:
// an annotation that cannot be read is never guessed at.
func TestProblemsDeny(t *testing.T) {
	for _, tc := range []struct {
		name        string
		hosts       []string
		annotations []string
		reason      string
		inMessage   string
	}{
		{"typo'd group", []string{"a.example.com"}, []string{"gatehouse.io/groups", "Famliy"}, ReasonUnknownGroup, `did you mean "Family"`},
		{"typo'd annotation", []string{"a.example.com"}, []string{"gatehouse.io/group", "Family"}, ReasonInvalidAnnotation, "did you mean gatehouse.io/groups"},
		{"bad boolean", []string{"a.example.com"}, []string{"gatehouse.io/public", "yes"}, ReasonInvalidAnnotation, `write "true" or "false"`},
		{"bad path", []string{"a.example.com"}, []string{"gatehouse.io/groups", "Family", "gatehouse.io/public-paths", "/api/%2e%2e/"}, ReasonInvalidAnnotation, "public-paths"},
		{"relative path", []string{"a.example.com"}, []string{"gatehouse.io/groups", "Family", "gatehouse.io/paths", "admin"}, ReasonInvalidAnnotation, `must start with "/"`},
		{"two kinds", []string{"a.example.com"}, []string{"gatehouse.io/groups", "Family", "gatehouse.io/public", "true"}, ReasonInvalidAnnotation, "exactly one"},
		{"none", []string{"a.example.com"}, []string{"gatehouse.io/two-factor", "true"}, ReasonInvalidAnnotation, "exactly one"},
		{"empty groups", []string{"a.example.com"}, []string{"gatehouse.io/groups", " , "}, ReasonInvalidAnnotation, "is empty"},
		{"outside cookie domain", []string{"a.example.com", "a.example.org"}, []string{"gatehouse.io/public", "true"}, ReasonOutsideCookie, "a.example.org"},
		{"rule without host", []string{"a.example.com", ""}, []string{"gatehouse.io/public", "true"}, ReasonNoHost, "names no host"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Compile([]*Object{ingress("x", tc.hosts, tc.annotations...)}, opts)
			if len(c.Problems) == 0 || c.Problems[0].Reason != tc.reason || !strings.Contains(c.Problems[0].Message, tc.inMessage) || c.Problems[0].Object.Ref() != "apps/Ingress/x" {
				t.Fatalf("problems %v, want %s mentioning %q", c.Problems, tc.reason, tc.inMessage)
			}
			for _, who := range [][]string{nil, {"Family"}, {"Media"}} {
				if d := decide(t, c, "a.example.com", "/api/x", who...); d.Result == access.Allow || d.Origin.ID != "kubernetes:a.example.com/*" {
					t.Errorf("%v: %v by %q, want refused by the object's deny rule", who, d.Result, d.Origin.ID)
				}
			}
			if d := decide(t, c, "a.example.com", "/", "Admins"); d.Result != access.Allow {
				t.Errorf("admins must still pass to fix it: %v", d.Result)
			}
		})
	}
}

func TestGroupsUnknownWhenTheDatabaseCannotBeRead(t *testing.T) {
	o := opts
	o.Groups = nil
	c := Compile([]*Object{ingress("x", []string{"a.example.com"}, "gatehouse.io/groups", "Anything")}, o)
	if len(c.Problems) != 0 || decide(t, c, "a.example.com", "/", "Anything").Result != access.Allow {
		t.Fatalf("without a group list nothing is refused for its groups: %v", c.Problems)
	}
}

func TestConflictsResolveToTheStricter(t *testing.T) {
	for _, tc := range []struct {
		name   string
		a, b   []string
		groups []string
		want   access.Result
	}{
		{"public and groups", []string{"gatehouse.io/public", "true"}, []string{"gatehouse.io/groups", "Family"}, nil, access.NeedLogin},
		{"shared groups", []string{"gatehouse.io/groups", "Family, Media"}, []string{"gatehouse.io/groups", "Media"}, []string{"Family"}, access.Deny},
		{"shared group passes", []string{"gatehouse.io/groups", "Family, Media"}, []string{"gatehouse.io/groups", "Media"}, []string{"Media"}, access.Allow},
		{"no shared group", []string{"gatehouse.io/groups", "Family"}, []string{"gatehouse.io/groups", "Media"}, []string{"Media"}, access.Deny},
		{"deny wins", []string{"gatehouse.io/deny", "true"}, []string{"gatehouse.io/public", "true"}, nil, access.NeedLogin},
		{"two factor if any", []string{"gatehouse.io/groups", "Family", "gatehouse.io/two-factor", "true"}, []string{"gatehouse.io/groups", "Family"}, []string{"Family"}, access.NeedSecondFactor},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, objs := range [][]*Object{
				{ingress("a", []string{"a.example.com"}, tc.a...), ingress("b", []string{"a.example.com"}, tc.b...)},
				{ingress("b", []string{"a.example.com"}, tc.b...), ingress("a", []string{"a.example.com"}, tc.a...)},
			} {
				c := Compile(objs, opts)
				if d := decide(t, c, "a.example.com", "/", tc.groups...); d.Result != tc.want || d.Origin.Source != "apps/Ingress/a, apps/Ingress/b" {
					t.Errorf("%v by %+v, want %v", d.Result, d.Origin, tc.want)
				}
				var on []string
				for _, p := range c.Problems {
					if p.Reason == ReasonConflict {
						on = append(on, p.Object.Name)
					}
				}
				slices.Sort(on)
				if !slices.Equal(on, []string{"a", "b"}) {
					t.Errorf("conflict reported on %v, want both objects: %v", on, c.Problems)
				}
			}
		})
	}
	// A second object cannot open a path of a host the first keeps for a group.
	c := Compile([]*Object{ingress("a", []string{"a.example.com"}, "gatehouse.io/groups", "Family"),
		ingress("b", []string{"a.example.com"}, "gatehouse.io/public", "true", "gatehouse.io/paths", "/"),
		ingress("c", []string{"a.example.com"}, "gatehouse.io/groups", "Family", "gatehouse.io/public-paths", "/api/")}, opts)
	for _, path := range []string{"/", "/x", "/api/list"} {
		if d := decide(t, c, "a.example.com", path); d.Result != access.NeedLogin {
			t.Errorf("%s opened by another object's public path: %v by %s", path, d.Result, d.Origin.ID)
		}
	}
	var conflicts []string
	for _, p := range c.Problems {
		if p.Reason == ReasonConflict {
			conflicts = append(conflicts, p.Object.Name)
		}
	}
	if !slices.Contains(conflicts, "a") || !slices.Contains(conflicts, "b") || !slices.Contains(conflicts, "c") {
		t.Errorf("conflicts reported on %v, want a, b and c: %v", conflicts, c.Problems)
	}
	// Paths another object says nothing about are its own business.
	c = Compile([]*Object{ingress("a", []string{"a.example.com"}, "gatehouse.io/groups", "Family", "gatehouse.io/paths", "/admin/"),
		ingress("b", []string{"a.example.com"}, "gatehouse.io/public", "true", "gatehouse.io/paths", "/blog/")}, opts)
	if len(c.Problems) != 0 || decide(t, c, "a.example.com", "/blog/post").Result != access.Allow || decide(t, c, "a.example.com", "/admin/x").Result != access.NeedLogin {
		t.Errorf("disjoint paths: %v", c.Problems)
	}

	// Two objects that agree are no conflict (a host split over several Ingresses).
	c = Compile([]*Object{ingress("a", []string{"a.example.com"}, "gatehouse.io/groups", "Family, Media"),
		ingress("b", []string{"a.example.com"}, "gatehouse.io/groups", "Media,Family")}, opts)
	if len(c.Problems) != 0 || len(c.Rules) != 1 {
		t.Fatalf("agreeing objects: %v, %d rules", c.Problems, len(c.Rules))
	}
}

func TestOrder(t *testing.T) {
	c := Compile([]*Object{
		ingress("wild", []string{"*.example.com"}, "gatehouse.io/groups", "Family"),
		ingress("deep", []string{"*.media.example.com"}, "gatehouse.io/groups", "Media"),
		ingress("one", []string{"jelly.media.example.com"}, "gatehouse.io/public", "true", "gatehouse.io/paths", "/api/,/api/v2/"),
	}, opts)
	var ids []string
	for _, r := range c.Rules {
		ids = append(ids, r.Origin.ID)
	}
	want := []string{"kubernetes:jelly.media.example.com/api/v2/", "kubernetes:jelly.media.example.com/api/",
		"kubernetes:*.media.example.com/*", "kubernetes:*.example.com/*"}
	if !slices.Equal(ids, want) {
		t.Fatalf("order %v, want %v", ids, want)
	}
	if d := decide(t, c, "jelly.media.example.com", "/", "Media"); d.Result != access.Allow || d.Origin.ID != "kubernetes:*.media.example.com/*" {
		t.Fatalf("the more specific wildcard decides: %+v", d)
	}
}

var strictness = map[access.Result]int{access.Allow: 0, access.NeedSecondFactor: 1, access.NeedLogin: 2, access.Deny: 3}

func coveredByWildcard(objs []*Object, host string) bool {
	for _, o := range objs {
		for _, h := range o.Hosts {
			if suffix, ok := strings.CutPrefix(strings.ToLower(h), "*"); ok && strings.HasSuffix(host, suffix) {
				return true
			}
		}
	}
	return false
}

// FuzzCompile: whatever the annotations say, compiling never panics, gives the same
// rules for the objects in any order, every rule passes the config file's own checks,
// and an object with a problem other than a conflict lets nobody but admins through.
func FuzzCompile(f *testing.F) {
	f.Add("Family, Media", "true", "/api/,/x", "/.well-known/", "a.example.com", "*.example.com", uint64(1))
	f.Add("", "maybe", "admin", "/%2e/", "", "a.example.org", uint64(2))
	f.Add("Family", "true", "/", "/", "a.example.com", "a.example.com", uint64(3))
	f.Fuzz(func(t *testing.T, groups, flag, paths, publicPaths, host1, host2 string, seed uint64) {
		objs := []*Object{
			ingress("a", []string{host1, host2}, "gatehouse.io/groups", groups, "gatehouse.io/two-factor", flag, "gatehouse.io/public-paths", publicPaths),
			ingress("b", []string{host2}, "gatehouse.io/public", flag, "gatehouse.io/paths", paths),
			ingress("c", []string{host1}, "gatehouse.io/deny", flag, "gatehouse.io/"+groups, "x"),
		}
		first := Compile(objs, opts)
		r := rand.New(rand.NewPCG(seed, seed))
		r.Shuffle(len(objs), func(i, j int) { objs[i], objs[j] = objs[j], objs[i] })
		second := Compile(objs, opts)
		if len(first.Problems) != len(second.Problems) {
			t.Fatalf("order changed the problems: %v vs %v", first.Problems, second.Problems)
		}
		for i := range first.Problems {
			if first.Problems[i].String() != second.Problems[i].String() {
				t.Fatalf("problem %d differs by order: %s vs %s", i, first.Problems[i], second.Problems[i])
			}
		}
		if len(first.Rules) != len(second.Rules) {
			t.Fatalf("order changed the rules: %d vs %d", len(first.Rules), len(second.Rules))
		}
		for i := range first.Rules {
			a, b := first.Rules[i], second.Rules[i]
			if a.Origin != b.Origin || !same(a.Rule, b.Rule) {
				t.Fatalf("rule %d differs by order: %+v vs %+v", i, a, b)
			}
			var errs []string
			config.CheckRule(a.Rule, a.Origin.ID, func(key, format string, args ...any) { errs = append(errs, key) })
			if len(errs) > 0 {
				t.Fatalf("rule %+v fails the config checks at %v", a, errs)
			}
		}
		// No object is weakened by the others: on a host no wildcard covers, every
		// request is decided at least as strictly as the object alone decides it.
		for _, o := range objs {
			alone := Compile([]*Object{o}, opts)
			for _, h := range o.Hosts {
				h = strings.ToLower(h)
				if config.CheckHostPattern(h) != nil || strings.Contains(h, "*") || coveredByWildcard(objs, h) {
					continue
				}
				for _, path := range []string{"/", "/x", "/api/x", "/.well-known/a", paths, publicPaths, paths + "/y"} {
					if access.CheckPath(path) != nil {
						continue
					}
					for _, who := range [][]string{nil, {"Family"}, {"Media"}} {
						together, single := decide(t, first, h, path, who...), decide(t, alone, h, path, who...)
						if strictness[together.Result] < strictness[single.Result] {
							t.Fatalf("%s%s for %v: %v together (%s) but %v from %s alone (%s)", h, path, who, together.Result, together.Origin.ID, single.Result, o.Ref(), single.Origin.ID)
						}
					}
				}
			}
		}
		bad := map[string]bool{}
		for _, p := range first.Problems {
			if p.Reason != ReasonConflict {
				bad[p.Object.Ref()] = true
			}
		}
		for _, rule := range first.Rules {
			for ref := range bad {
				if strings.Contains(rule.Origin.Source, ref) && !rule.Rule.Deny {
					t.Fatalf("%s has a problem but rule %s lets people through: %+v", ref, rule.Origin.ID, rule.Rule)
				}
			}
		}
	})
}

// The informers' cache keeps only what the rules read: kubectl's last applied copy
// and the field managers' bookkeeping go, the annotations under the prefix stay.
func TestSlimDropsWhatRulesNeverRead(t *testing.T) {
	u := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
		"metadata": map[string]any{"name": "a", "namespace": "apps",
			"annotations":   map[string]any{"gatehouse.io/groups": "Family", "kubectl.kubernetes.io/last-applied-configuration": strings.Repeat("x", 10000)},
			"managedFields": []any{map[string]any{"manager": "kubectl"}}},
		"spec": map[string]any{"rules": []any{map[string]any{"host": "a.example.com"}}}}}
	if _, err := slim(u); err != nil {
		t.Fatal(err)
	}
	o := ObjectOf(u, nil)
	if len(u.GetManagedFields()) != 0 || len(o.Annotations) != 1 || o.Annotations["gatehouse.io/groups"] != "Family" || !slices.Equal(o.Hosts, []string{"a.example.com"}) {
		t.Fatalf("slimmed: %+v", u.Object)
	}
}

// An Ingress is Gatehouse's only when its class is listed (spec.ingressClassName, or
// the older annotation), or when no class is; an HTTPRoute has no class.
func TestIngressClasses(t *testing.T) {
	obj := func(kind string, spec map[string]any, annotations map[string]any) *unstructured.Unstructured {
		return &unstructured.Unstructured{Object: map[string]any{"apiVersion": "networking.k8s.io/v1", "kind": kind,
			"metadata": map[string]any{"name": "a", "namespace": "apps", "annotations": annotations}, "spec": spec}}
	}
	named := obj("Ingress", map[string]any{"ingressClassName": "traefik", "rules": []any{map[string]any{"host": "a.example.com"}}}, nil)
	legacy := obj("Ingress", map[string]any{"rules": []any{map[string]any{"host": "b.example.com"}}}, map[string]any{"kubernetes.io/ingress.class": "traefik"})
	other := obj("Ingress", map[string]any{"ingressClassName": "nginx", "rules": []any{map[string]any{"host": "c.example.com"}}}, nil)
	route := obj("HTTPRoute", map[string]any{"hostnames": []any{"d.example.com"}}, nil)
	for _, tc := range []struct {
		u       *unstructured.Unstructured
		classes []string
		want    bool
	}{
		{named, []string{"traefik"}, true}, {legacy, []string{"traefik"}, true}, {other, []string{"traefik"}, false},
		{other, nil, true}, {route, []string{"traefik"}, true},
	} {
		if got := ObjectOf(tc.u, tc.classes) != nil; got != tc.want {
			t.Errorf("%s %v with classes %v: read %v, want %v", tc.u.GetKind(), tc.u.Object["spec"], tc.classes, got, tc.want)
		}
	}
	if o := ObjectOf(route, nil); !slices.Equal(o.Hosts, []string{"d.example.com"}) || o.Ref() != "apps/HTTPRoute/a" {
		t.Errorf("HTTPRoute read as %+v", o)
	}
}

// A kubeconfig that cannot be read is named with its key and the fix, at start.
func TestKubeconfigErrorsNameTheKey(t *testing.T) {
	k := config.Default().Access.Kubernetes
	k.Enabled, k.Kubeconfig = true, "/nonexistent/kubeconfig"
	_, err := RESTConfig(k)
	if err == nil || !strings.Contains(err.Error(), `access.kubernetes.kubeconfig "/nonexistent/kubeconfig"`) || !strings.Contains(err.Error(), "readable kubeconfig") {
		t.Fatalf("missing kubeconfig: %v", err)
	}
	k.Kubeconfig = ""
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	t.Setenv("KUBECONFIG", "")
	if _, err := RESTConfig(k); err == nil || !strings.Contains(err.Error(), "set access.kubernetes.kubeconfig or $KUBECONFIG") {
		t.Fatalf("outside a pod without a kubeconfig: %v", err)
	}
}

// client-go's errors reach the Source's log, its chatter does not (klog's warnings
// arrive as logr's info level, which has no warning).
func TestClientGoLogs(t *testing.T) {
	var logs testenv.LogBuffer
	clientGoLog.Store(slog.New(slog.NewTextHandler(&logs, nil)))
	defer clientGoLog.Store(nil)
	klog.Error("watch of ingresses failed")
	klog.Info("caches populated")
	klog.Flush()
	if out := logs.String(); !strings.Contains(out, "watch of ingresses failed") || strings.Contains(out, "caches populated") {
		t.Fatalf("client-go's log lines: %q", out)
	}
}
