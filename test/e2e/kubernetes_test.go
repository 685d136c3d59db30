package e2e

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gatehouse-id/gatehouse/internal/testenv/kubeenv"
)

// `gatehouse access kubernetes` reads a real API server once, as the server does, and
// lists the rules and problems, failing on a problem as a pipeline needs; `access
// explain` decides with the Kubernetes rules and names the object a rule came from.
func TestAccessKubernetesCLI(t *testing.T) {
	kube := kubeenv.New(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "gatehouse.yaml")
	writeFile(t, cfg, fmt.Sprintf(`database:
  url: %q
server:
  public_url: "https://auth.example.com"
session:
  cookie_domain: example.com
access:
  admin_groups: [admins]
  kubernetes:
    enabled: true
    kubeconfig: %q
`, "sqlite:"+filepath.Join(dir, "gatehouse.db"), kube.AdminKubeconfig()))
	ok(t, dir, cleanEnv(), "", "migrate", "--config", cfg)
	ok(t, dir, cleanEnv(), "", "group", "add", "Family", "--config", cfg)
	ok(t, dir, cleanEnv(), "", "user", "add", "alice", "--no-password", "--group", "Family", "--config", cfg)
	if out := ok(t, dir, cleanEnv(), "", "serve", "--check-config", "--config", cfg); strings.Contains(out, "warning: access.kubernetes") || !strings.Contains(out, "gatehouse access kubernetes") {
		t.Errorf("serve --check-config with access.kubernetes:\n%s", out)
	}
	env := append(cleanEnv(), "GATEHOUSE_ACCESS_KUBERNETES_KUBECONFIG="+filepath.Join(dir, "missing"))
	if out := ok(t, dir, env, "", "serve", "--check-config", "--config", cfg); !strings.Contains(out, "warning: access.kubernetes.kubeconfig") {
		t.Errorf("serve --check-config with a missing kubeconfig:\n%s", out)
	}
	if r := gh(t, dir, env, "", "serve", "--config", cfg); r.code != 1 || !strings.Contains(r.stderr, "point it at a readable kubeconfig file") {
		t.Errorf("serve with a missing kubeconfig: exit %d\n%s", r.code, r.stderr)
	}
	kube.Apply(kubeenv.Ingress("apps", "photos", []string{"photos.example.com"}, "gatehouse.io/groups", "Family"))
	ok(t, dir, cleanEnv(), "", "access", "kubernetes", "--config", cfg)

	kube.Apply(kubeenv.Ingress("apps", "typo", []string{"typo.example.com"}, "gatehouse.io/groups", "Famliy"))
	r := gh(t, dir, cleanEnv(), "", "access", "kubernetes", "--config", cfg)
	for _, want := range []string{
		"2 object(s) with gatehouse.io/ annotations make 2 rule(s), after the config file's 0",
		"kubernetes:photos.example.com/*: hosts photos.example.com; groups Family (from apps/Ingress/photos)",
		"kubernetes:typo.example.com/*: hosts typo.example.com; deny (from apps/Ingress/typo)",
		`problem: apps/Ingress/typo: UnknownGroup: group "Famliy" does not exist (did you mean "Family"?)`,
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("access kubernetes lacks %q:\n%s", want, r.stdout)
		}
	}
	if r.code != 1 || !strings.Contains(r.stderr, "1 problem(s) in Kubernetes annotations") {
		t.Errorf("a problem must fail the command: exit %d, %s", r.code, r.stderr)
	}
	r = gh(t, dir, cleanEnv(), "", "access", "kubernetes", "--json", "--config", cfg)
	var report struct {
		Rules []struct {
			ID, Source string
			Groups     []string
		}
		Problems []struct{ Object, Reason string }
	}
	if err := json.Unmarshal([]byte(r.stdout), &report); err != nil || len(report.Rules) != 2 || len(report.Problems) != 1 ||
		report.Rules[0].ID != "kubernetes:photos.example.com/*" || report.Problems[0].Reason != "UnknownGroup" {
		t.Errorf("access kubernetes --json: %v\n%s", err, r.stdout)
	}

	out := ok(t, dir, cleanEnv(), "", "access", "explain", "alice", "https://photos.example.com/albums", "--config", cfg)
	for _, want := range []string{"decision:  allow: group member",
		"rule:      kubernetes:photos.example.com/*: hosts photos.example.com; groups Family (from the Kubernetes object apps/Ingress/photos)"} {
		if !strings.Contains(out, want) {
			t.Errorf("access explain lacks %q:\n%s", want, out)
		}
	}
}
