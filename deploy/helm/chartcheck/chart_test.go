// Package chartcheck lints and renders Gatehouse's Helm chart with Helm's own Go
// library, checks what the operator relies on (replicas, disruption budget, probes on
// the health endpoints, resources, spread, read-only non-root containers), and keeps
// deploy/manifests/gatehouse.yaml equal to the chart's rendering. It is a module of its
// own so that Helm's dependencies stay out of the gatehouse binary's.
package chartcheck

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/lint/support"
	"sigs.k8s.io/yaml"
)

const (
	chartDir     = "../gatehouse"
	exampleVals  = "../gatehouse/ci/example-values.yaml"
	manifestPath = "../../manifests/gatehouse.yaml"
)

var update = flag.Bool("update", false, "rewrite deploy/manifests/gatehouse.yaml from the chart")

func values(t *testing.T, path string) map[string]any {
	t.Helper()
	v, err := chartutil.ReadValuesFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func render(t *testing.T, vals map[string]any) (string, error) {
	t.Helper()
	ch, err := loader.Load(chartDir)
	if err != nil {
		t.Fatal(err)
	}
	install := action.NewInstall(&action.Configuration{})
	install.DryRun, install.ClientOnly, install.Replace = true, true, true
	install.ReleaseName, install.Namespace = "gatehouse", "gatehouse"
	rel, err := install.Run(ch, vals)
	if err != nil {
		return "", err
	}
	return rel.Manifest, nil
}

func TestLint(t *testing.T) {
	res := action.NewLint().Run([]string{chartDir}, values(t, exampleVals))
	for _, m := range res.Messages {
		if m.Severity >= support.WarningSev {
			t.Errorf("helm lint: %s", m)
		}
	}
	for _, err := range res.Errors {
		t.Errorf("helm lint: %v", err)
	}
}

// objects splits a rendered manifest into its documents, by kind and name.
func objects(t *testing.T, manifest string) map[string]map[string]any {
	out := map[string]map[string]any{}
	// Kind, namespace when set, and name: a Role per namespace has the same name.
	for _, doc := range strings.Split(manifest, "\n---") {
		var o map[string]any
		if err := yaml.Unmarshal([]byte(doc), &o); err != nil {
			t.Fatalf("rendered YAML does not parse: %v\n%s", err, doc)
		}
		if o == nil {
			continue
		}
		key := o["kind"].(string) + "/"
		if ns, _ := dig(o, "metadata", "namespace").(string); ns != "" {
			key += ns + "/"
		}
		out[key+dig(o, "metadata", "name").(string)] = o
	}
	return out
}

func dig(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, _ := v.(map[string]any)
			v = m[k]
		case int:
			l, _ := v.([]any)
			if k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}

func TestRenderedDeploymentIsWhatOperatorsNeed(t *testing.T) {
	manifest, err := render(t, values(t, exampleVals))
	if err != nil {
		t.Fatal(err)
	}
	objs := objects(t, manifest)
	dep := objs["Deployment/gatehouse"]
	if dep == nil {
		t.Fatalf("no Deployment/gatehouse in:\n%v", keys(objs))
	}
	c := dig(dep, "spec", "template", "spec", "containers", 0)
	checks := map[string][2]any{
		"replicas":                 {dig(dep, "spec", "replicas"), float64(3)},
		"maxUnavailable":           {dig(dep, "spec", "strategy", "rollingUpdate", "maxUnavailable"), float64(0)},
		"readiness probe":          {dig(c, "readinessProbe", "httpGet", "path"), "/-/health/ready/"},
		"liveness probe":           {dig(c, "livenessProbe", "httpGet", "path"), "/-/health/live/"},
		"read-only root":           {dig(c, "securityContext", "readOnlyRootFilesystem"), true},
		"non-root":                 {dig(c, "securityContext", "runAsNonRoot"), true},
		"memory limit":             {dig(c, "resources", "limits", "memory"), "256Mi"},
		"cpu request":              {dig(c, "resources", "requests", "cpu"), "50m"},
		"spread across nodes":      {dig(dep, "spec", "template", "spec", "topologySpreadConstraints", 0, "topologyKey"), "kubernetes.io/hostname"},
		"no service links":         {dig(dep, "spec", "template", "spec", "enableServiceLinks"), false},
		"database URL from Secret": {dig(dep, "spec", "template", "spec", "volumes", 1, "secret", "secretName"), "gatehouse-database"},
		"PDB minAvailable":         {dig(objs["PodDisruptionBudget/gatehouse"], "spec", "minAvailable"), float64(2)},
		"PgBouncer replicas":       {dig(objs["Deployment/gatehouse-pgbouncer"], "spec", "replicas"), float64(3)},
		"PgBouncer PDB":            {dig(objs["PodDisruptionBudget/gatehouse-pgbouncer"], "spec", "minAvailable"), float64(2)},
		"PgBouncer TCP probe":      {dig(objs["Deployment/gatehouse-pgbouncer"], "spec", "template", "spec", "containers", 0, "readinessProbe", "tcpSocket", "port"), "postgres"},
	}
	for name, c := range checks {
		if c[0] != c[1] {
			t.Errorf("%s: got %v, want %v", name, c[0], c[1])
		}
	}
	ini := dig(objs["ConfigMap/gatehouse-pgbouncer"], "data", "pgbouncer.ini").(string)
	if !strings.Contains(ini, "pool_mode = transaction") {
		t.Errorf("PgBouncer is not in transaction mode:\n%s", ini)
	}
	if cfg := dig(objs["ConfigMap/gatehouse"], "data", "gatehouse.yaml").(string); !strings.Contains(cfg, "public_url: https://auth.example.com") {
		t.Errorf("the Gatehouse config is not in its ConfigMap:\n%s", cfg)
	}

	if *update {
		if err := os.WriteFile(manifestPath, []byte(header+manifest), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	committed, err := os.ReadFile(manifestPath)
	if err != nil || string(committed) != header+manifest {
		t.Errorf("%s differs from the chart's rendering: run `cd deploy/helm/chartcheck && go test -update`", manifestPath)
	}
}

const header = "# Rendered from deploy/helm/gatehouse with ci/example-values.yaml; do not edit.\n# Regenerate: cd deploy/helm/chartcheck && go test -update\n"

// A chart without its database or its server key does not render, and says why.
func TestMissingDatabaseIsAClearError(t *testing.T) {
	_, err := render(t, map[string]any{})
	if err == nil || !strings.Contains(err.Error(), "set database.existingSecret") {
		t.Fatalf("rendering without a database: %v", err)
	}
	_, err = render(t, map[string]any{"database": map[string]any{"url": "postgres://x"}})
	if err == nil || !strings.Contains(err.Error(), "set serverKey.existingSecret") {
		t.Fatalf("rendering without a server key: %v", err)
	}
	_, err = render(t, map[string]any{"database": map[string]any{"url": "postgres://x"}, "serverKey": map[string]any{"existingSecret": "k"},
		"pgbouncer": map[string]any{"enabled": true}})
	if err == nil || !strings.Contains(err.Error(), "pgbouncer.image.repository") {
		t.Fatalf("PgBouncer without an image: %v", err)
	}
}

func keys(m map[string]map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// With traefikMiddleware.enabled the chart makes a Traefik Middleware that asks its own
// Service and lists the identity headers the file provider example lists (which the
// e2e tests check against the headers Gatehouse answers); without it, none.
func TestTraefikMiddleware(t *testing.T) {
	vals := values(t, exampleVals)
	if objs := objects(t, mustRender(t, vals)); objs["Middleware/gatehouse"] != nil {
		t.Fatal("a Middleware rendered without traefikMiddleware.enabled")
	}
	vals["traefikMiddleware"] = map[string]any{"enabled": true}
	objs := objects(t, mustRender(t, vals))
	mw := objs["Middleware/gatehouse"]
	if mw == nil {
		t.Fatalf("no Middleware/gatehouse in %v", keys(objs))
	}
	if addr := dig(mw, "spec", "forwardAuth", "address"); addr != "http://gatehouse.gatehouse.svc.cluster.local:9000/api/authz/forward-auth" {
		t.Errorf("the Middleware asks %v, not this release's Service", addr)
	}
	var example struct {
		HTTP struct {
			Middlewares map[string]struct {
				ForwardAuth struct {
					AuthResponseHeaders []any `json:"authResponseHeaders"`
				} `json:"forwardAuth"`
			} `json:"middlewares"`
		} `json:"http"`
	}
	b, err := os.ReadFile("../../examples/traefik-dynamic.yml")
	if err == nil {
		err = yaml.Unmarshal(b, &example)
	}
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprint(example.HTTP.Middlewares["gatehouse"].ForwardAuth.AuthResponseHeaders)
	if got := fmt.Sprint(dig(mw, "spec", "forwardAuth", "authResponseHeaders")); got != want || want == "[]" {
		t.Errorf("the Middleware's authResponseHeaders %s differ from the example's %s", got, want)
	}
}

func mustRender(t *testing.T, vals map[string]any) string {
	t.Helper()
	m, err := render(t, vals)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

const rbacNamespacedPath = "../../manifests/rbac-namespaced.yaml"

// With kubernetesRules.enabled the pods get a ServiceAccount that may list and watch
// Ingresses and HTTPRoutes and create Events, and nothing more: a ClusterRole for
// every namespace, or a Role in each of kubernetesRules.namespaces (then also named to
// Gatehouse). deploy/manifests carries both renderings; the main module's envtest
// tests apply them to a real API server and run Gatehouse as that ServiceAccount.
func TestKubernetesRulesRBAC(t *testing.T) {
	want := `[map[apiGroups:[networking.k8s.io] resources:[ingresses] verbs:[list watch]] map[apiGroups:[gateway.networking.k8s.io] resources:[httproutes] verbs:[list watch]] map[apiGroups:[] resources:[events] verbs:[create]]]`
	vals := values(t, exampleVals)
	objs := objects(t, mustRender(t, vals))
	dep := objs["Deployment/gatehouse"]
	if got := fmt.Sprint(dig(objs["ClusterRole/gatehouse-access-rules"], "rules")); got != want {
		t.Errorf("ClusterRole rules %s, want %s", got, want)
	}
	if got := dig(objs["ClusterRoleBinding/gatehouse-access-rules"], "subjects", 0, "name"); got != "gatehouse" {
		t.Errorf("ClusterRoleBinding subject %v", got)
	}
	if dig(dep, "spec", "template", "spec", "serviceAccountName") != "gatehouse" || dig(dep, "spec", "template", "spec", "automountServiceAccountToken") != true {
		t.Errorf("the pods do not run as the ServiceAccount with its token")
	}
	if env := fmt.Sprint(dig(dep, "spec", "template", "spec", "containers", 0, "env")); !strings.Contains(env, "GATEHOUSE_ACCESS_KUBERNETES_ENABLED value:true") {
		t.Errorf("access.kubernetes is not turned on: %s", env)
	}

	vals["kubernetesRules"] = map[string]any{"enabled": true, "namespaces": []any{"apps", "media"}}
	manifest := mustRender(t, vals)
	objs = objects(t, manifest)
	if objs["ClusterRole/gatehouse-access-rules"] != nil {
		t.Error("a ClusterRole rendered with kubernetesRules.namespaces")
	}
	var roles []string
	var rbac []string
	for _, doc := range strings.Split(manifest, "\n---") {
		if strings.Contains(doc, "kind: Role") || strings.Contains(doc, "kind: ServiceAccount") {
			rbac = append(rbac, strings.TrimSpace(doc))
		}
	}
	for _, o := range objects(t, strings.Join(rbac, "\n---\n")) {
		if o["kind"] == "Role" {
			roles = append(roles, dig(o, "metadata", "namespace").(string))
			if got := fmt.Sprint(dig(o, "rules")); got != want {
				t.Errorf("Role rules %s, want %s", got, want)
			}
		}
	}
	if len(roles) != 2 {
		t.Errorf("Roles in %v, want apps and media", roles)
	}
	if env := fmt.Sprint(dig(objs["Deployment/gatehouse"], "spec", "template", "spec", "containers", 0, "env")); !strings.Contains(env, "GATEHOUSE_ACCESS_KUBERNETES_NAMESPACES value:apps,media") {
		t.Errorf("the namespaces are not named to Gatehouse: %s", env)
	}
	rendered := "# The RBAC of deploy/helm/gatehouse with kubernetesRules.namespaces [apps, media]; do not edit.\n# Regenerate: cd deploy/helm/chartcheck && go test -update\n" +
		strings.Join(rbac, "\n---\n") + "\n"
	if *update {
		if err := os.WriteFile(rbacNamespacedPath, []byte(rendered), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if committed, err := os.ReadFile(rbacNamespacedPath); err != nil || string(committed) != rendered {
		t.Errorf("%s differs from the chart's rendering: run `cd deploy/helm/chartcheck && go test -update`", rbacNamespacedPath)
	}
}
