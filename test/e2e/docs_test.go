package e2e

import (
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
	if v, ok := fa["trustForwardHeader"]; ok && v != false {
		t.Error("trustForwardHeader lets a client choose the host and path Gatehouse decides on; leave it off")
	}
	var listed []string
	for _, h := range fa["authResponseHeaders"].([]any) {
		listed = append(listed, http.CanonicalHeaderKey(h.(string)))
	}
	slices.Sort(listed)
	if want := forwardauth.IdentityHeaderNames(); !slices.Equal(listed, want) {
		t.Errorf("authResponseHeaders = %v, want every identity header Gatehouse answers: %v", listed, want)
	}
}
