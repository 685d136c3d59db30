// Package kubeenv runs a real Kubernetes API server (kube-apiserver and etcd, through
// controller-runtime's envtest) on loopback for the tests of rules from Kubernetes,
// and applies YAML to it as kubectl would. scripts/test.sh builds the binaries
// (scripts/build-kube.sh) and names them in KUBEBUILDER_ASSETS; the Gateway API's
// HTTPRoute CRD comes from the sigs.k8s.io/gateway-api module. It is a package of its
// own so that only the tests that need Kubernetes link it.
package kubeenv

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/gatehouse-id/gatehouse/internal/testenv"
)

// GatewayCRDsEnv names the Gateway API's config/crd/standard folder.
const GatewayCRDsEnv = "TEST_GATEHOUSE_GATEWAY_CRDS"

// Kube is one API server of a test's own, stopped when the test ends.
type Kube struct {
	t     testing.TB
	Env   *envtest.Environment
	Admin *rest.Config
	Dyn   dynamic.Interface // as the admin
}

// New starts an API server with the HTTPRoute CRD installed.
func New(t testing.TB) *Kube {
	t.Helper()
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if _, err := os.Stat(filepath.Join(assets, "kube-apiserver")); assets == "" || err != nil {
		testenv.Missing(t, "kube-apiserver and etcd in $KUBEBUILDER_ASSETS (scripts/build-kube.sh)")
	}
	crds := os.Getenv(GatewayCRDsEnv)
	if crds == "" {
		testenv.Missing(t, "the Gateway API CRDs in $"+GatewayCRDsEnv)
	}
	ctrllog.SetLogger(logr.Discard()) // envtest's own chatter
	env := &envtest.Environment{
		// The API server drains open watches for up to a minute when stopped; a test
		// has no use for that, so it is killed after a few seconds.
		ControlPlaneStopTimeout: 3 * time.Second,
		BinaryAssetsDirectory:   assets,
		CRDDirectoryPaths:       []string{filepath.Join(crds, "gateway.networking.k8s.io_httproutes.yaml")},
		ErrorIfCRDPathMissing:   true,
	}
	rc, err := env.Start()
	if err != nil {
		t.Fatalf("starting kube-apiserver and etcd: %v", err)
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil && !strings.Contains(err.Error(), "timeout waiting") {
			t.Logf("stopping the API server: %v", err)
		}
	})
	return &Kube{t: t, Env: env, Admin: rc, Dyn: dynamic.NewForConfigOrDie(rc)}
}

// StopAPIServer stops kube-apiserver (etcd goes on), as an outage would.
func (k *Kube) StopAPIServer() {
	k.t.Helper()
	// A timeout means it was killed: stopped all the same.
	if err := k.Env.ControlPlane.APIServer.Stop(); err != nil && !strings.Contains(err.Error(), "timeout waiting") {
		k.t.Fatalf("stopping kube-apiserver: %v", err)
	}
}

// AdminKubeconfig writes a kubeconfig file for a user in system:masters, whom RBAC
// lets do anything.
func (k *Kube) AdminKubeconfig() string {
	k.t.Helper()
	path, _ := k.user(envtest.User{Name: "test-admin", Groups: []string{"system:masters"}})
	return path
}

// User adds a user of the API server (not in any group but system:authenticated)
// and returns a kubeconfig file for them.
func (k *Kube) User(name string) (string, *rest.Config) {
	k.t.Helper()
	return k.user(envtest.User{Name: name})
}

func (k *Kube) user(who envtest.User) (string, *rest.Config) {
	k.t.Helper()
	name := who.Name
	u, err := k.Env.AddUser(who, nil)
	if err != nil {
		k.t.Fatal(err)
	}
	b, err := u.KubeConfig()
	if err != nil {
		k.t.Fatal(err)
	}
	path := filepath.Join(k.t.TempDir(), name+".kubeconfig")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		k.t.Fatal(err)
	}
	return path, u.Config()
}

// resources maps the kinds tests apply to their resources.
var resources = map[string]schema.GroupVersionResource{
	"Namespace":          {Version: "v1", Resource: "namespaces"},
	"ServiceAccount":     {Version: "v1", Resource: "serviceaccounts"},
	"Event":              {Version: "v1", Resource: "events"},
	"ClusterRole":        {Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "clusterroles"},
	"ClusterRoleBinding": {Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "clusterrolebindings"},
	"Role":               {Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "roles"},
	"RoleBinding":        {Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "rolebindings"},
	"Ingress":            {Group: "networking.k8s.io", Version: "v1", Resource: "ingresses"},
	"HTTPRoute":          {Group: "gateway.networking.k8s.io", Version: "v1", Resource: "httproutes"},
}

// Resource is the resource of a kind Apply knows.
func Resource(kind string) schema.GroupVersionResource { return resources[kind] }

// Objects parses YAML documents, keeping those of the given kinds (all when none).
func Objects(t testing.TB, yaml []byte, kinds ...string) []*unstructured.Unstructured {
	t.Helper()
	var out []*unstructured.Unstructured
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(yaml), 4096)
	for {
		var o map[string]any
		err := dec.Decode(&o)
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("parsing YAML: %v", err)
		}
		if o == nil {
			continue
		}
		u := &unstructured.Unstructured{Object: o}
		if len(kinds) == 0 || contains(kinds, u.GetKind()) {
			out = append(out, u)
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Apply creates each object, or replaces it when it exists, as the admin; a missing
// namespace is created first.
func (k *Kube) Apply(objs ...*unstructured.Unstructured) {
	k.t.Helper()
	ctx := context.Background()
	for _, o := range objs {
		gvr, ok := resources[o.GetKind()]
		if !ok {
			k.t.Fatalf("kubeenv cannot apply a %s", o.GetKind())
		}
		if ns := o.GetNamespace(); ns != "" {
			k.Namespace(ns)
		}
		client := k.Dyn.Resource(gvr).Namespace(o.GetNamespace())
		_, err := client.Create(ctx, o, metav1.CreateOptions{})
		if err != nil && strings.Contains(err.Error(), "already exists") {
			have, gerr := client.Get(ctx, o.GetName(), metav1.GetOptions{})
			if gerr != nil {
				k.t.Fatal(gerr)
			}
			o = o.DeepCopy()
			o.SetResourceVersion(have.GetResourceVersion())
			_, err = client.Update(ctx, o, metav1.UpdateOptions{})
		}
		if err != nil {
			k.t.Fatalf("applying %s %s/%s: %v", o.GetKind(), o.GetNamespace(), o.GetName(), err)
		}
	}
}

// Delete removes an object.
func (k *Kube) Delete(kind, namespace, name string) {
	k.t.Helper()
	if err := k.Dyn.Resource(resources[kind]).Namespace(namespace).Delete(context.Background(), name, metav1.DeleteOptions{}); err != nil {
		k.t.Fatalf("deleting %s %s/%s: %v", kind, namespace, name, err)
	}
}

// Namespace creates a namespace unless it exists.
func (k *Kube) Namespace(name string) {
	k.t.Helper()
	ns := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": name}}}
	_, err := k.Dyn.Resource(resources["Namespace"]).Create(context.Background(), ns, metav1.CreateOptions{})
	if err != nil && !strings.Contains(err.Error(), "already exists") {
		k.t.Fatalf("creating namespace %s: %v", name, err)
	}
}

// Ingress is an Ingress for hosts with annotations (name, value, name, value...).
func Ingress(namespace, name string, hosts []string, annotations ...string) *unstructured.Unstructured {
	a := map[string]any{}
	for i := 0; i+1 < len(annotations); i += 2 {
		a[annotations[i]] = annotations[i+1]
	}
	var rules []any
	for _, h := range hosts {
		rules = append(rules, map[string]any{"host": h, "http": map[string]any{"paths": []any{map[string]any{
			"path": "/", "pathType": "Prefix",
			"backend": map[string]any{"service": map[string]any{"name": name, "port": map[string]any{"number": int64(80)}}},
		}}}})
	}
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
		"metadata": map[string]any{"name": name, "namespace": namespace, "annotations": a},
		"spec":     map[string]any{"rules": rules},
	}}
}

// Events lists the Events about an object.
func (k *Kube) Events(namespace, name string) []*unstructured.Unstructured {
	k.t.Helper()
	list, err := k.Dyn.Resource(resources["Event"]).Namespace(namespace).List(context.Background(), metav1.ListOptions{
		FieldSelector: "involvedObject.name=" + name})
	if err != nil {
		k.t.Fatal(err)
	}
	var out []*unstructured.Unstructured
	for i := range list.Items {
		out = append(out, &list.Items[i])
	}
	return out
}
