package e2e

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// The manifests rendered from the Helm chart must start a Gatehouse that accepts their
// config and environment: unknown keys and variables are errors, so a chart that
// drifted from the binary would crash-loop.
func TestRenderedManifestsConfigureAValidGatehouse(t *testing.T) {
	raw, err := os.ReadFile("../../deploy/manifests/gatehouse.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var cfg string
	var env []string
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	for {
		var doc map[string]any
		if dec.Decode(&doc) != nil {
			break
		}
		meta, _ := doc["metadata"].(map[string]any)
		switch {
		case doc["kind"] == "ConfigMap" && meta["name"] == "gatehouse":
			cfg = doc["data"].(map[string]any)["gatehouse.yaml"].(string)
		case doc["kind"] == "Deployment" && meta["name"] == "gatehouse":
			spec := doc["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)
			for _, e := range spec["containers"].([]any)[0].(map[string]any)["env"].([]any) {
				m := e.(map[string]any)
				if v, ok := m["value"].(string); ok && strings.HasPrefix(m["name"].(string), "GATEHOUSE_") {
					env = append(env, m["name"].(string)+"="+v)
				}
			}
		}
	}
	if cfg == "" || len(env) == 0 {
		t.Fatalf("no Gatehouse ConfigMap or env in the manifests (config %d bytes, env %v)", len(cfg), env)
	}
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "gatehouse.yaml"), cfg)
	writeFile(t, filepath.Join(dir, "url"), "postgres://gatehouse:secret@pgbouncer:6432/gatehouse\n")
	writeFile(t, filepath.Join(dir, "key"), "0123456789abcdef0123456789abcdef0123456789abcdef\n")
	for i, kv := range env {
		switch {
		case strings.HasPrefix(kv, "GATEHOUSE_DATABASE_URL_FILE="):
			env[i] = "GATEHOUSE_DATABASE_URL_FILE=" + filepath.Join(dir, "url")
		case strings.HasPrefix(kv, "GATEHOUSE_SERVER_SECRET_FILE="):
			env[i] = "GATEHOUSE_SERVER_SECRET_FILE=" + filepath.Join(dir, "key")
		}
	}
	out := ok(t, dir, cleanEnv(env...), "", "serve", "--config", filepath.Join(dir, "gatehouse.yaml"), "--check-config")
	if !strings.Contains(out, "config is valid") || !strings.Contains(out, "postgres") {
		t.Fatalf("check-config: %q", out)
	}
}

// The Dockerfile builds what the tests build: a static binary, run as non-root, with a
// data folder that user can write (a named volume copies its owner).
func TestDockerfile(t *testing.T) {
	b, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"CGO_ENABLED=0 go build", "FROM scratch", "USER 65532:65532", `ENTRYPOINT ["/gatehouse"]`, `CMD ["/gatehouse", "healthcheck"]`, "--chown=65532:65532 /out/data /data"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
}
