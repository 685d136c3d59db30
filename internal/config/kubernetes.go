package config

import (
	"fmt"
	"regexp"
	"strings"
)

// Kubernetes configures the second source of access rules: annotations on Ingress and
// Gateway API HTTPRoute objects, watched live. Rules from the config file come first.
type Kubernetes struct {
	Enabled    bool   `yaml:"enabled" doc:"Read access rules from annotations on Ingress (networking.k8s.io/v1) and HTTPRoute (gateway.networking.k8s.io/v1) objects, live. Needs a restart to turn on or off. Until the first full list has arrived the replica is not ready and hosts only Kubernetes names are denied; when the API server is away, the last rules stay."`
	Kubeconfig string `yaml:"kubeconfig" doc:"A kubeconfig file to reach the API server with; empty: the pod's service account (in a cluster), or else $KUBECONFIG."`
	// Namespaces limits the watch, so that per-namespace Roles are enough.
	Namespaces       []string `yaml:"namespaces" doc:"Watch only these namespaces (Roles in each are enough); empty: every namespace (needs a ClusterRole)."`
	AnnotationPrefix string   `yaml:"annotation_prefix" doc:"The prefix of the annotations read, ending in \"/\": gatehouse.io/groups, gatehouse.io/public-paths and so on. An unknown annotation under it is reported, so a typo is caught."`
	IngressClasses   []string `yaml:"ingress_classes" doc:"Only Ingresses of these classes (spec.ingressClassName, or the kubernetes.io/ingress.class annotation); empty: every class."`
	HTTPRoutes       bool     `yaml:"http_routes" doc:"Also watch Gateway API HTTPRoutes, when the API server serves them."`
}

var dnsLabel = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)

func (k *Kubernetes) validate(bad func(key, format string, args ...any)) {
	if !k.Enabled {
		if k.Kubeconfig != "" {
			bad("access.kubernetes.kubeconfig", "is set but access.kubernetes.enabled is false; set enabled: true or remove it")
		}
		return
	}
	if !strings.HasSuffix(k.AnnotationPrefix, "/") || strings.Count(k.AnnotationPrefix, "/") != 1 || len(k.AnnotationPrefix) < 2 {
		bad("access.kubernetes.annotation_prefix", "%q must be a DNS name followed by \"/\", for example gatehouse.io/", k.AnnotationPrefix)
	} else {
		for _, label := range strings.Split(strings.TrimSuffix(k.AnnotationPrefix, "/"), ".") {
			if !dnsLabel.MatchString(label) {
				bad("access.kubernetes.annotation_prefix", "%q must be a DNS name in lower case followed by \"/\", for example gatehouse.io/", k.AnnotationPrefix)
				break
			}
		}
	}
	seen := map[string]bool{}
	for i, ns := range k.Namespaces {
		key := fmt.Sprintf("access.kubernetes.namespaces[%d]", i)
		switch {
		case !dnsLabel.MatchString(ns):
			bad(key, "%q is not a namespace name (lower-case letters, digits and \"-\", at most 63)", ns)
		case seen[ns]:
			bad(key, "%q is listed twice", ns)
		}
		seen[ns] = true
	}
	for i, c := range k.IngressClasses {
		if c == "" {
			bad(fmt.Sprintf("access.kubernetes.ingress_classes[%d]", i), "is empty; name an IngressClass, or leave the list empty for every class")
		}
	}
}
