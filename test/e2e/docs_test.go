package e2e

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/gatehouse-id/gatehouse/internal/forwardauth"
	"go.yaml.in/yaml/v3"
)

// The README shows the files in deploy/examples verbatim; the proxy tests run those
// files. This keeps what people copy identical to what is tested.
func TestReadmeShowsTheTestedExamples(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob("../../deploy/examples/*")
	if len(files) < 4 {
		t.Fatalf("expected the example files in deploy/examples, found %v", files)
	}
	for _, f := range files {
		body, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(readme), strings.TrimRight(string(body), "\n")+"\n```") {
			t.Errorf("README.md does not show %s exactly as it is: paste the file into its code block", filepath.Base(f))
		}
	}
}

// The README's two commands are the ones that work: the test command is what CI runs,
// and the run command names the real entry point.
func TestReadmeCommandsAreTrue(t *testing.T) {
	readme, _ := os.ReadFile("../../README.md")
	ci, err := os.ReadFile("../../.ci/run")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"go run ./cmd/gatehouse serve\n", "scripts/test.sh\n"} {
		if !strings.Contains(string(readme), want) {
			t.Errorf("README.md lacks the command %q", want)
		}
	}
	if !strings.Contains(string(ci), "scripts/test.sh") {
		t.Error(".ci/run does not run scripts/test.sh, the README's test command")
	}
}

// Every image the README shows is in the repository (the screenshots come from the
// browser test), and every screenshot there is shown.
func TestReadmeImagesExist(t *testing.T) {
	readme, _ := os.ReadFile("../../README.md")
	shown := regexp.MustCompile(`!\[[^\]]+\]\(([^)]+\.png)\)`).FindAllStringSubmatch(string(readme), -1)
	if len(shown) < 3 {
		t.Fatalf("the README shows %d screenshots, want the login page, the second step and the account page", len(shown))
	}
	seen := map[string]bool{}
	for _, m := range shown {
		seen[filepath.Base(m[1])] = true
		if info, err := os.Stat(filepath.Join("../..", m[1])); err != nil || info.Size() < 1000 {
			t.Errorf("README shows %s, which is missing or empty: %v", m[1], err)
		}
	}
	files, _ := filepath.Glob("../../docs/screenshots/*.png")
	for _, f := range files {
		if !seen[filepath.Base(f)] {
			t.Errorf("docs/screenshots/%s is not shown in the README", filepath.Base(f))
		}
	}
}

// Traefik cannot run here (it is not in Debian and not installable with go install), so
// its example is checked for what makes it safe: it replaces every identity header
// Gatehouse answers (Traefik deletes each authResponseHeaders header from the request
// before copying Gatehouse's), and it does not trust a client's X-Forwarded-* headers.
func TestTraefikExampleForwardsEveryIdentityHeader(t *testing.T) {
	b, err := os.ReadFile("../../deploy/examples/traefik-dynamic.yml")
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		HTTP struct {
			Middlewares map[string]struct {
				ForwardAuth map[string]any `yaml:"forwardAuth"`
			} `yaml:"middlewares"`
		} `yaml:"http"`
	}
	if err := yaml.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	fa := cfg.HTTP.Middlewares["gatehouse"].ForwardAuth
	if fa == nil {
		t.Fatal("traefik-dynamic.yml has no gatehouse forwardAuth middleware")
	}
	var headers []string
	for _, h := range fa["authResponseHeaders"].([]any) {
		headers = append(headers, h.(string))
	}
	address, _ := fa["address"].(string)
	checkForwardAuth(t, "traefik-dynamic.yml", address, headers, fmt.Sprint(fa["trustForwardHeader"]))
}

// checkForwardAuth checks one Traefik ForwardAuth definition: it asks Gatehouse's
// forward-auth endpoint, replaces every identity header Gatehouse answers, and does
// not trust a client's X-Forwarded-* headers.
func checkForwardAuth(t *testing.T, where, address string, headers []string, trust string) {
	t.Helper()
	if !strings.HasSuffix(address, "/api/authz/forward-auth") {
		t.Errorf("%s: forwardAuth address %q is not Gatehouse's /api/authz/forward-auth", where, address)
	}
	if trust != "" && trust != "false" && trust != "<nil>" {
		t.Errorf("%s: trustForwardHeader lets a client choose the host and path Gatehouse decides on; leave it off", where)
	}
	var listed []string
	for _, h := range headers {
		listed = append(listed, http.CanonicalHeaderKey(strings.TrimSpace(h)))
	}
	slices.Sort(listed)
	if want := forwardauth.IdentityHeaderNames(); !slices.Equal(listed, want) {
		t.Errorf("%s: authResponseHeaders = %v, want every identity header Gatehouse answers: %v", where, listed, want)
	}
}

// The Docker labels example: the middleware Gatehouse's labels define is what the app
// router uses, Gatehouse's own router does not use it, and what it builds and mounts
// exists.
func TestTraefikComposeExample(t *testing.T) {
	b, err := os.ReadFile("../../deploy/examples/compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var compose struct {
		Services map[string]struct {
			Build   string   `yaml:"build"`
			Volumes []string `yaml:"volumes"`
			Labels  []string `yaml:"labels"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(b, &compose); err != nil {
		t.Fatal(err)
	}
	labels := map[string]string{}
	for name, svc := range compose.Services {
		for _, l := range svc.Labels {
			k, v, _ := strings.Cut(l, "=")
			labels[name+" "+k] = v
		}
	}
	const mw = "traefik.http.middlewares.gatehouse.forwardauth."
	checkForwardAuth(t, "compose.yaml", labels["gatehouse "+mw+"address"], strings.Split(labels["gatehouse "+mw+"authResponseHeaders"], ","),
		labels["gatehouse "+mw+"trustForwardHeader"])
	if labels["whoami traefik.http.routers.whoami.middlewares"] != "gatehouse" {
		t.Error("compose.yaml: the whoami router does not use the gatehouse middleware")
	}
	if _, ok := labels["gatehouse traefik.http.routers.gatehouse.middlewares"]; ok {
		t.Error("compose.yaml: Gatehouse's own router must not ask Gatehouse (it would refuse its own login page)")
	}
	gh := compose.Services["gatehouse"]
	if _, err := os.Stat(filepath.Join("../../deploy/examples", gh.Build, "Dockerfile")); err != nil {
		t.Errorf("compose.yaml builds %q, which has no Dockerfile: %v", gh.Build, err)
	}
	for _, v := range gh.Volumes {
		if src, _, _ := strings.Cut(v, ":"); strings.HasPrefix(src, "./") {
			if _, err := os.Stat(filepath.Join("../../deploy/examples", src)); err != nil {
				t.Errorf("compose.yaml mounts %s, which is not in deploy/examples", src)
			}
		}
	}
}

// The Kubernetes example: the Middleware is sound, and the IngressRoute and the
// Ingress annotation both name it exactly.
func TestTraefikKubernetesExample(t *testing.T) {
	f, err := os.Open("../../deploy/examples/traefik-kubernetes.yaml")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	type meta struct {
		Name        string            `yaml:"name"`
		Namespace   string            `yaml:"namespace"`
		Annotations map[string]string `yaml:"annotations"`
	}
	var middleware meta
	var refs []string
	dec := yaml.NewDecoder(f)
	for {
		var doc struct {
			Kind     string `yaml:"kind"`
			Metadata meta   `yaml:"metadata"`
			Spec     struct {
				ForwardAuth struct {
					Address             string   `yaml:"address"`
					AuthResponseHeaders []string `yaml:"authResponseHeaders"`
					TrustForwardHeader  string   `yaml:"trustForwardHeader"`
				} `yaml:"forwardAuth"`
				Routes []struct {
					Middlewares []meta `yaml:"middlewares"`
				} `yaml:"routes"`
			} `yaml:"spec"`
		}
		if err := dec.Decode(&doc); err != nil {
			break
		}
		switch doc.Kind {
		case "Middleware":
			middleware = doc.Metadata
			fa := doc.Spec.ForwardAuth
			checkForwardAuth(t, "traefik-kubernetes.yaml", fa.Address, fa.AuthResponseHeaders, fa.TrustForwardHeader)
		case "IngressRoute":
			for _, r := range doc.Spec.Routes {
				for _, m := range r.Middlewares {
					refs = append(refs, m.Namespace+"/"+m.Name)
				}
			}
		case "Ingress":
			if a := doc.Metadata.Annotations["traefik.ingress.kubernetes.io/router.middlewares"]; a != "" {
				ns, name, _ := strings.Cut(strings.TrimSuffix(a, "@kubernetescrd"), "-")
				refs = append(refs, ns+"/"+name)
			}
		}
	}
	if middleware.Name == "" || len(refs) != 2 {
		t.Fatalf("traefik-kubernetes.yaml: middleware %+v, references %v; want one Middleware named by an IngressRoute and an Ingress", middleware, refs)
	}
	for _, r := range refs {
		if r != middleware.Namespace+"/"+middleware.Name {
			t.Errorf("traefik-kubernetes.yaml: a route names middleware %s, but it is %s/%s", r, middleware.Namespace, middleware.Name)
		}
	}
}
