package server

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/gatehouse-id/gatehouse/internal/access"
	"github.com/gatehouse-id/gatehouse/internal/config"
	"github.com/gatehouse-id/gatehouse/internal/testenv"
	"github.com/gatehouse-id/gatehouse/internal/testenv/kubeenv"
)

// kubeConfig is the operator's config with rules from Kubernetes, whose config file
// has no wildcard (it would come first and decide every host).
func kubeConfig(dbURL, kubeconfig string) config.Config {
	cfg := testConfig(dbURL)
	cfg.Access.Rules = cfg.Access.Rules[:1] // grafana only
	cfg.Access.Kubernetes = config.Default().Access.Kubernetes
	cfg.Access.Kubernetes.Enabled, cfg.Access.Kubernetes.Kubeconfig = true, kubeconfig
	cfg.Groups = append(cfg.Groups, config.GroupDecl{Name: "Family"}, config.GroupDecl{Name: "Media"})
	return cfg
}

// fastProbe shortens how often a replica asks the API server whether it is there.
func fastProbe(a *App) { a.kube.ProbeEvery = 100 * time.Millisecond }

// End to end on two replicas sharing PostgreSQL, against a real API server: an
// Ingress's annotations become the rule forward auth decides by on both, within
// seconds of being created, changed and deleted; decisions name the rule in the
// metrics and the audit log; a replica that has not synced is not ready, says why,
// and denies the hosts only Kubernetes names.
func TestForwardAuthFollowsIngressesOnEveryReplica(t *testing.T) {
	kube := kubeenv.New(t)
	admin := kube.AdminKubeconfig()
	dbURL := testenv.PostgresURL(t)
	one := start(t, kubeConfig(dbURL, admin), fastProbe)
	two := start(t, kubeConfig(dbURL, admin), fastProbe)
	one.addUser("alice", "Family")
	one.addUser("root", "Home Server Admins")
	caughtUp(t, one, two)
	_, alice := one.login("alice", "correct horse alice", "")
	_, root := one.login("root", "correct horse root", "")
	adminConfig := func(h *harness) string {
		resp, body := h.do(req{path: "/admin/config", cookies: []*http.Cookie{root}})
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("/admin/config: %d", resp.StatusCode)
		}
		return body
	}
	const photos = "https://photos.example.com/albums"
	check := func(h *harness) int {
		resp, _ := h.do(req{path: "/api/authz/forward-auth", header: traefik(photos), cookies: []*http.Cookie{alice}})
		return resp.StatusCode
	}
	every := func(what string, want int) {
		t.Helper()
		start := time.Now()
		testenv.WaitFor(t, 2*time.Minute, what, func() bool { return check(one) == want && check(two) == want })
		t.Logf("%s: %s on both replicas", what, time.Since(start).Round(time.Millisecond))
	}
	for _, h := range []*harness{one, two} {
		testenv.WaitFor(t, 2*time.Minute, "the replica to be ready", func() bool {
			resp, _ := h.do(req{path: "/-/health/ready/"})
			return resp.StatusCode == http.StatusOK
		})
	}
	if code := check(one); code != http.StatusForbidden {
		t.Fatalf("before any Ingress: %d, want 403 (default deny)", code)
	}

	kube.Apply(kubeenv.Ingress("apps", "photos", []string{"photos.example.com"}, "gatehouse.io/groups", "Family"))
	every("an Ingress created", http.StatusOK)
	if m := one.metrics(); !strings.Contains(m, `gatehouse_forward_auth_rule_decisions_total{from="kubernetes",result="allow",rule="kubernetes:photos.example.com/*"}`) {
		t.Errorf("the decision is not counted under its rule:\n%s", grepLines(m, "rule_decisions"))
	}

	// An attack from another namespace: an Ingress for the same host that makes every
	// path public. The stricter rule still applies on both replicas (nobody passes
	// unsigned), and the intruder gets a Conflict Event.
	kube.Apply(kubeenv.Ingress("tenant", "photos-open", []string{"photos.example.com"}, "gatehouse.io/public", "true", "gatehouse.io/paths", "/"))
	testenv.WaitFor(t, time.Minute, "the Conflict Event on the intruding Ingress", func() bool {
		for _, e := range kube.Events("tenant", "photos-open") {
			if reason, _, _ := unstructured.NestedString(e.Object, "reason"); reason == "Conflict" {
				return true
			}
		}
		return false
	})
	for _, h := range []*harness{one, two} {
		testenv.WaitFor(t, time.Minute, "the replica to weigh the intruding Ingress", func() bool {
			for _, r := range h.app.policy.Load().From(access.FromKubernetes) {
				if strings.Contains(r.Origin.Source, "tenant/Ingress/photos-open") {
					return true
				}
			}
			return false
		})
		for _, path := range []string{"/", "/albums", "/api/x"} {
			resp, _ := h.do(req{path: "/api/authz/forward-auth", header: traefik("https://photos.example.com" + path)})
			if resp.StatusCode != http.StatusFound || !strings.Contains(resp.Header.Get("Location"), "/login") {
				t.Fatalf("%s with another namespace's public Ingress: %d, want the login page", path, resp.StatusCode)
			}
		}
	}
	if code := check(one); code != http.StatusOK {
		t.Fatalf("the group's member lost access to the intruder: %d", code)
	}
	kube.Delete("Ingress", "tenant", "photos-open")

	// The admin config page lists the rules from Kubernetes after the file's, and the
	// problems, on every replica.
	kube.Apply(kubeenv.Ingress("apps", "typo", []string{"typo.example.com"}, "gatehouse.io/groups", "Famliy"))
	testenv.WaitFor(t, time.Minute, "the admin config page to show the Kubernetes rules and the problem", func() bool {
		body := adminConfig(two)
		return strings.Contains(body, "<code>kubernetes:photos.example.com/*</code></td><td>apps/Ingress/photos</td><td>Family</td>") &&
			strings.Contains(body, "Read live from") && strings.Contains(body, "apps/Ingress/typo: UnknownGroup: group &#34;Famliy&#34; does not exist")
	})
	kube.Delete("Ingress", "apps", "typo")

	kube.Apply(kubeenv.Ingress("apps", "photos", []string{"photos.example.com"}, "gatehouse.io/groups", "Media"))
	every("its annotation changed", http.StatusForbidden)
	testenv.WaitFor(t, time.Minute, "the refusal in the audit log, naming its rule", func() bool {
		events, err := one.app.Store.ListEvents(context.Background(), 100)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range events {
			if e.Kind == "access.denied" && strings.Contains(e.Detail, "rule kubernetes:photos.example.com/* from apps/Ingress/photos") {
				return true
			}
		}
		return false
	})

	kube.Apply(kubeenv.Ingress("apps", "photos", []string{"photos.example.com"}, "gatehouse.io/groups", "Family"))
	every("changed back", http.StatusOK)
	kube.Delete("Ingress", "apps", "photos")
	every("the Ingress deleted", http.StatusForbidden)

	// A replica whose credentials may not list Ingresses never syncs: it is not
	// ready, says why, and denies the host while the others follow the cluster.
	kube.Apply(kubeenv.Ingress("apps", "photos", []string{"photos.example.com"}, "gatehouse.io/groups", "Family"))
	every("the Ingress created again", http.StatusOK)
	nobody, _ := kube.User("nobody")
	fresh := start(t, kubeConfig(dbURL, nobody), fastProbe)
	testenv.WaitFor(t, 2*time.Minute, "the unsynced replica to say why it is not ready", func() bool {
		resp, body := fresh.do(req{path: "/-/health/ready/"})
		return resp.StatusCode == http.StatusServiceUnavailable && strings.Contains(body, "first full list") && strings.Contains(body, "forbidden")
	})
	if body := adminConfig(fresh); !strings.Contains(body, "Not applied yet: waiting for the first full list") {
		t.Errorf("the unsynced replica's admin config page does not say why:\n%s", grepLines(body, "Kubernetes"))
	}
	if code := check(fresh); code != http.StatusForbidden {
		t.Fatalf("a replica before its first sync answered %d for a Kubernetes host, want 403", code)
	}

	// The API server goes away: both replicas keep deciding by the last rules and stay
	// ready, and the age of their rules grows.
	kube.StopAPIServer()
	for _, h := range []*harness{one, two} {
		testenv.WaitFor(t, 2*time.Minute, "the replica to miss the API server", func() bool {
			m := h.metrics()
			return metricValue(m, "gatehouse_kubernetes_api_reachable") == 0 && metricValue(m, "gatehouse_kubernetes_rules_age_seconds") > 1
		})
		resp, _ := h.do(req{path: "/-/health/ready/"})
		if code := check(h); code != http.StatusOK || resp.StatusCode != http.StatusOK {
			t.Fatalf("without the API server: forward auth %d, readiness %d; want the last rules kept and ready", code, resp.StatusCode)
		}
	}
}

// metricValue is the value of an unlabelled metric in Prometheus' text format, -1 when
// it is missing.
func metricValue(text, name string) float64 {
	for _, l := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(l, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err == nil {
				return f
			}
		}
	}
	return -1
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
