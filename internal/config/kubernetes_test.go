package config

import (
	"slices"
	"strings"
	"testing"
)

// access.kubernetes is set from the file or from GATEHOUSE_ACCESS_KUBERNETES_*, and
// each wrong value is named with its key and what to write instead.
func TestKubernetesKeys(t *testing.T) {
	cfg, err := Load("", []string{"GATEHOUSE_ACCESS_KUBERNETES_ENABLED=true", "GATEHOUSE_ACCESS_KUBERNETES_NAMESPACES=apps,media",
		"GATEHOUSE_ACCESS_KUBERNETES_INGRESS_CLASSES=traefik"})
	if err != nil {
		t.Fatal(err)
	}
	k := cfg.Access.Kubernetes
	if !k.Enabled || !slices.Equal(k.Namespaces, []string{"apps", "media"}) || !slices.Equal(k.IngressClasses, []string{"traefik"}) ||
		k.AnnotationPrefix != "gatehouse.io/" || !k.HTTPRoutes {
		t.Fatalf("from the environment: %+v", k)
	}
	for _, tc := range []struct {
		set  func(*Kubernetes)
		want string
	}{
		{func(k *Kubernetes) { k.AnnotationPrefix = "gatehouse.io" }, `access.kubernetes.annotation_prefix: "gatehouse.io" must be a DNS name followed by "/"`},
		{func(k *Kubernetes) { k.AnnotationPrefix = "Gate_House/" }, "access.kubernetes.annotation_prefix"},
		{func(k *Kubernetes) { k.Namespaces = []string{"Apps"} }, `access.kubernetes.namespaces[0]: "Apps" is not a namespace name`},
		{func(k *Kubernetes) { k.Namespaces = []string{"apps", "apps"} }, `access.kubernetes.namespaces[1]: "apps" is listed twice`},
		{func(k *Kubernetes) { k.IngressClasses = []string{""} }, "access.kubernetes.ingress_classes[0]: is empty"},
		{func(k *Kubernetes) { k.Enabled, k.Kubeconfig = false, "/etc/kubeconfig" }, "access.kubernetes.kubeconfig: is set but access.kubernetes.enabled is false"},
	} {
		c := Default()
		c.Access.Kubernetes.Enabled = true
		tc.set(&c.Access.Kubernetes)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", c.Access.Kubernetes, err, tc.want)
		}
	}
	// Turned off, the other keys are not read, so not judged.
	c := Default()
	c.Access.Kubernetes.AnnotationPrefix = ""
	if err := c.Validate(); err != nil {
		t.Errorf("access.kubernetes off: %v", err)
	}
}
