package kuberules

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"

	"github.com/gatehouse-id/gatehouse/internal/access"
	"github.com/gatehouse-id/gatehouse/internal/config"
	"github.com/gatehouse-id/gatehouse/internal/testenv"
	"github.com/gatehouse-id/gatehouse/internal/testenv/kubeenv"
)

// running is a Source under test: what it applied last, and its metrics.
type running struct {
	*Source
	reg     *prometheus.Registry
	applied atomic.Pointer[Compiled]
	applies atomic.Int64
	log     *testenv.LogBuffer
}

func run(t *testing.T, kubeconfig string, namespaces ...string) *running {
	t.Helper()
	k := config.Default().Access.Kubernetes
	k.Enabled, k.Kubeconfig, k.Namespaces = true, kubeconfig, namespaces
	r := &running{reg: prometheus.NewRegistry(), log: &testenv.LogBuffer{}}
	s, err := NewSource(k, slog.New(slog.NewTextHandler(r.log, nil)), r.reg)
	if err != nil {
		t.Fatal(err)
	}
	r.Source = s
	s.Instance = "test-replica"
	s.ProbeEvery = 100 * time.Millisecond
	s.Options = func() Options { return opts }
	s.Apply = func(c Compiled) { r.applied.Store(&c); r.applies.Add(1) }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return r
}

func (r *running) ids() []string {
	c := r.applied.Load()
	if c == nil {
		return nil
	}
	var out []string
	for _, rule := range c.Rules {
		out = append(out, rule.Origin.ID+" "+rule.Origin.Source)
	}
	return out
}

func (r *running) has(id string) bool {
	return slices.ContainsFunc(r.ids(), func(s string) bool { return strings.HasPrefix(s, id+" ") })
}

func (r *running) gauge(name string) float64 {
	families, _ := r.reg.Gather()
	for _, f := range families {
		if f.GetName() == name {
			return f.GetMetric()[0].GetGauge().GetValue()
		}
	}
	return -1
}

const wait = 2 * time.Minute

// Against a real API server: nothing applies before the first full list; objects
// created, changed and deleted are followed; an HTTPRoute counts like an Ingress; an
// unknown group gets a Warning Event on its object; when the API server goes away the
// last rules stay and their age grows.
func TestSourceFollowsARealAPIServer(t *testing.T) {
	kube := kubeenv.New(t)
	kube.Apply(kubeenv.Ingress("apps", "photos", []string{"photos.example.com"}, "gatehouse.io/groups", "Family"))
	r := run(t, kube.AdminKubeconfig())
	if ok, why := r.Synced(); ok && r.applied.Load() == nil {
		t.Fatal("synced without applying rules")
	} else if !ok && !strings.Contains(why, "first full list") && !strings.Contains(why, "cannot be reached") {
		t.Fatalf("reason before the first sync: %q", why)
	}
	testenv.WaitFor(t, wait, "the first sync", func() bool { ok, _ := r.Synced(); return ok })
	if !r.has("kubernetes:photos.example.com/*") || r.gauge("gatehouse_kubernetes_synced") != 1 {
		t.Fatalf("rules after the first sync: %v", r.ids())
	}

	start := time.Now()
	kube.Apply(kubeenv.Ingress("apps", "wiki", []string{"wiki.example.com"}, "gatehouse.io/public", "true"))
	testenv.WaitFor(t, wait, "a new Ingress's rule", func() bool { return r.has("kubernetes:wiki.example.com/*") })
	t.Logf("a new Ingress's rule applied %s after it was created", time.Since(start).Round(time.Millisecond))

	route := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
		"metadata": map[string]any{"name": "music", "namespace": "media", "annotations": map[string]any{"gatehouse.io/groups": "Media", "gatehouse.io/public-paths": "/share/"}},
		"spec":     map[string]any{"hostnames": []any{"music.example.com"}, "rules": []any{map[string]any{}}},
	}}
	kube.Apply(route)
	testenv.WaitFor(t, wait, "an HTTPRoute's rules", func() bool {
		return slices.Contains(r.ids(), "kubernetes:music.example.com/share/ media/HTTPRoute/music") && r.has("kubernetes:music.example.com/*")
	})

	kube.Apply(kubeenv.Ingress("apps", "wiki", []string{"wiki.example.com"}, "gatehouse.io/groups", "Media"))
	testenv.WaitFor(t, wait, "a changed annotation", func() bool {
		rule := r.rule("kubernetes:wiki.example.com/*")
		return rule != nil && slices.Equal(rule.Rule.Groups, []string{"Media"}) && !rule.Rule.Public
	})

	// A typo'd group: an Event on the object, a log line, the metric, and the
	// object's hosts deny.
	kube.Apply(kubeenv.Ingress("apps", "vault", []string{"vault.example.com"}, "gatehouse.io/groups", "Famliy"))
	testenv.WaitFor(t, wait, "the unknown group's Event", func() bool {
		for _, e := range kube.Events("apps", "vault") {
			reason, _, _ := unstructured.NestedString(e.Object, "reason")
			kind, _, _ := unstructured.NestedString(e.Object, "involvedObject", "kind")
			msg, _, _ := unstructured.NestedString(e.Object, "message")
			typ, _, _ := unstructured.NestedString(e.Object, "type")
			if reason == ReasonUnknownGroup && kind == "Ingress" && typ == "Warning" && strings.Contains(msg, `did you mean "Family"`) {
				return true
			}
		}
		return false
	})
	testenv.WaitFor(t, wait, "the object with an unknown group to deny", func() bool {
		rule := r.rule("kubernetes:vault.example.com/*")
		return rule != nil && rule.Rule.Deny
	})
	if !strings.Contains(r.log.String(), "Famliy") || testutil.ToFloat64(r.problems.WithLabelValues(ReasonUnknownGroup)) != 1 {
		t.Fatalf("the problem is not in the log or the metric:\n%s", r.log.String())
	}

	// The README's Traefik example puts its host behind Gatehouse in one step.
	example, err := os.ReadFile("../../deploy/examples/traefik-kubernetes.yaml")
	if err != nil {
		t.Fatal(err)
	}
	kube.Apply(kubeenv.Objects(t, example, "Ingress")...)
	testenv.WaitFor(t, wait, "the Traefik example's Ingress rules", func() bool {
		rule, public := r.rule("kubernetes:immich.example.com/*"), r.rule("kubernetes:immich.example.com/api/")
		return rule != nil && slices.Equal(rule.Rule.Groups, []string{"Allow Login Users"}) && public != nil && public.Rule.Public &&
			r.rule("kubernetes:immich.example.com/.well-known/") != nil
	})

	kube.Delete("Ingress", "apps", "photos")
	testenv.WaitFor(t, wait, "a deleted Ingress's rule to go", func() bool { return !r.has("kubernetes:photos.example.com/*") })

	// The API server goes away: the rules stay, the replica stays synced, and the
	// age of the rules grows past the probe interval.
	before := r.ids()
	kube.StopAPIServer()
	testenv.WaitFor(t, wait, "the API server to be missed", func() bool {
		return r.gauge("gatehouse_kubernetes_api_reachable") == 0 && r.gauge("gatehouse_kubernetes_rules_age_seconds") > 1
	})
	if ok, _ := r.Synced(); !ok || !slices.Equal(r.ids(), before) {
		t.Fatalf("without the API server the rules changed: synced %v, %v, was %v", ok, r.ids(), before)
	}
}

func (r *running) rule(id string) *access.Sourced {
	c := r.applied.Load()
	if c == nil {
		return nil
	}
	for i := range c.Rules {
		if c.Rules[i].Origin.ID == id {
			return &c.Rules[i]
		}
	}
	return nil
}

// The RBAC the Helm chart renders is enough, and no more: as its ServiceAccount
// (RBAC matches the user name system:serviceaccount:NS:NAME), Gatehouse syncs and
// writes Events, while everything else is refused. With namespaces, the Roles allow
// exactly those namespaces and a watch of all of them is refused, so the replica
// stays unready and says why.
func TestChartRBACIsEnoughAndNoMore(t *testing.T) {
	kube := kubeenv.New(t)
	kube.Namespace("gatehouse")
	bad := kubeenv.Ingress("apps", "typo", []string{"typo.example.com"}, "gatehouse.io/grups", "Family")
	kube.Apply(bad, kubeenv.Ingress("media", "music", []string{"music.example.com"}, "gatehouse.io/groups", "Media"))
	kubeconfig, rc := kube.User("system:serviceaccount:gatehouse:gatehouse")

	read := func(path string, kinds ...string) []*unstructured.Unstructured {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		objs := kubeenv.Objects(t, b, kinds...)
		for _, o := range objs {
			if o.GetKind() == "ServiceAccount" || o.GetKind() == "RoleBinding" && o.GetNamespace() == "" {
				o.SetNamespace("gatehouse") // helm install --namespace gatehouse
			}
		}
		return objs
	}

	kube.Apply(read("../../deploy/manifests/rbac-namespaced.yaml")...)
	everywhere := run(t, kubeconfig)
	perNamespace := run(t, kubeconfig, "apps", "media")
	testenv.WaitFor(t, wait, "the per-namespace replica to sync", func() bool { ok, _ := perNamespace.Synced(); return ok })
	if !perNamespace.has("kubernetes:music.example.com/*") {
		t.Fatalf("rules: %v", perNamespace.ids())
	}
	testenv.WaitFor(t, wait, "the Event on the typo'd Ingress", func() bool { return len(kube.Events("apps", "typo")) > 0 })
	testenv.WaitFor(t, wait, "the replica watching every namespace to say why it is not ready", func() bool {
		_, why := everywhere.Synced()
		return strings.Contains(why, "forbidden")
	})
	if ok, _ := everywhere.Synced(); ok {
		t.Fatal("a watch of every namespace synced with Roles only")
	}

	kube.Apply(read("../../deploy/manifests/gatehouse.yaml", "ServiceAccount", "ClusterRole", "ClusterRoleBinding")...)
	testenv.WaitFor(t, wait, "the replica watching every namespace to sync with the ClusterRole", func() bool { ok, _ := everywhere.Synced(); return ok })
	if !everywhere.has("kubernetes:music.example.com/*") || !everywhere.has("kubernetes:typo.example.com/*") {
		t.Fatalf("rules: %v", everywhere.ids())
	}

	// Nothing more: every other verb and resource is refused.
	dyn := dynamic.NewForConfigOrDie(rest.CopyConfig(rc))
	ctx := context.Background()
	gvr := func(group, version, resource string) schema.GroupVersionResource {
		return schema.GroupVersionResource{Group: group, Version: version, Resource: resource}
	}
	for name, try := range map[string]func() error{
		"list secrets": func() error {
			_, err := dyn.Resource(gvr("", "v1", "secrets")).List(ctx, metav1.ListOptions{})
			return err
		},
		"list configmaps": func() error {
			_, err := dyn.Resource(gvr("", "v1", "configmaps")).Namespace("apps").List(ctx, metav1.ListOptions{})
			return err
		},
		"get pods": func() error {
			_, err := dyn.Resource(gvr("", "v1", "pods")).Namespace("apps").Get(ctx, "x", metav1.GetOptions{})
			return err
		},
		"get an ingress": func() error {
			_, err := dyn.Resource(Ingresses).Namespace("apps").Get(ctx, "typo", metav1.GetOptions{})
			return err
		},
		"update an ingress": func() error {
			_, err := dyn.Resource(Ingresses).Namespace("apps").Update(ctx, bad, metav1.UpdateOptions{})
			return err
		},
		"delete an ingress": func() error {
			return dyn.Resource(Ingresses).Namespace("apps").Delete(ctx, "typo", metav1.DeleteOptions{})
		},
		"list events": func() error {
			_, err := dyn.Resource(events).Namespace("apps").List(ctx, metav1.ListOptions{})
			return err
		},
		"delete events": func() error {
			return dyn.Resource(events).Namespace("apps").DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{})
		},
		"create an ingress": func() error {
			_, err := dyn.Resource(Ingresses).Namespace("apps").Create(ctx, kubeenv.Ingress("apps", "new", []string{"n.example.com"}), metav1.CreateOptions{})
			return err
		},
	} {
		if err := try(); !apierrors.IsForbidden(err) {
			t.Errorf("%s as Gatehouse's ServiceAccount: %v, want forbidden", name, err)
		}
	}
}

// An API server that cannot be reached at start: nothing applies, and Synced says why.
func TestUnreachableAPIServer(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kubeconfig")
	kubeconfig := "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: \"https://127.0.0.1:1\"}}]\n" +
		"users: [{name: u, user: {token: x}}]\ncontexts: [{name: c, context: {cluster: c, user: u}}]\ncurrent-context: c\n"
	if err := os.WriteFile(path, []byte(kubeconfig), 0o600); err != nil {
		t.Fatal(err)
	}
	r := run(t, path)
	testenv.WaitFor(t, wait, "the reason", func() bool {
		_, why := r.Synced()
		return strings.Contains(why, "the Kubernetes API server cannot be reached") && strings.Contains(why, "127.0.0.1:1")
	})
	if r.applied.Load() != nil || r.gauge("gatehouse_kubernetes_synced") != 0 || r.gauge("gatehouse_kubernetes_api_reachable") != 0 {
		t.Fatalf("rules applied without an API server: %v", r.ids())
	}
}
