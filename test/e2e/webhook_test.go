package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-id/gatehouse/internal/testenv"
)

// standardWebhooksEnv names the node_modules folder holding the standardwebhooks
// library, which scripts/test.sh installs from npm.
const standardWebhooksEnv = "TEST_GATEHOUSE_STANDARDWEBHOOKS_MODULES"

// TestWebhooksVerifiedByTheReferenceLibrary sends Gatehouse's events to a receiver
// built on the standardwebhooks library from npm: what the CLI changes (another
// process than the server) reaches it through the outbox, and every delivery passes
// the library's signature and timestamp checks.
func TestWebhooksVerifiedByTheReferenceLibrary(t *testing.T) {
	modules := fromEnv(t, standardWebhooksEnv, "standardwebhooks from npm")
	node := testenv.Tool(t, "node", "nodejs")
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" // the example's
	hookPort := freePort(t)
	script, _ := filepath.Abs("testdata/webhook-receiver.js")
	cmd := exec.Command(node, script)
	cmd.Env = append(os.Environ(), "NODE_PATH="+modules, "PORT="+strconv.Itoa(hookPort), "WEBHOOK_SECRET="+secret)
	startProxy(t, hookPort, cmd, "")

	var chatMu sync.Mutex
	var chat []string
	chatSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var msg struct{ Text string }
		json.NewDecoder(r.Body).Decode(&msg)
		chatMu.Lock()
		chat = append(chat, msg.Text)
		chatMu.Unlock()
	}))
	defer chatSrv.Close()

	// The README's example, pointed at the two receivers.
	dir, ghPort := t.TempDir(), freePort(t)
	cfg := filepath.Join(dir, "gatehouse.yaml")
	writeFile(t, cfg, fmt.Sprintf("server:\n  address: \"127.0.0.1:%d\"\ngroups:\n  - name: Family\n", ghPort)+fromExample(t, "webhooks.yaml",
		"https://hooks.example.com/gatehouse", fmt.Sprintf("http://127.0.0.1:%d/hook", hookPort),
		"https://hooks.slack.com/services/T0000/B0000/XXXXXXXXXXXXXXXX", chatSrv.URL+"/services/T0000/B0000/XXXXXXXXXXXXXXXX"))
	env := cleanEnv("GATEHOUSE_DATABASE_URL=sqlite:" + filepath.Join(dir, "gh.db"))
	serve(t, dir, env, fmt.Sprintf("127.0.0.1:%d", ghPort), "--config", cfg)
	run := func(args ...string) { ok(t, dir, env, "", append(args, "--config", cfg)...) }
	run("user", "add", "ivy", "--no-password")
	run("group", "members", "add", "Family", "ivy")
	run("user", "link", "ivy")
	run("user", "disable", "ivy")
	run("user", "delete", "ivy")

	type delivery struct{ ID, Type, Target, Actor string }
	read := func(path string) (out []delivery, refused []string) {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d%s", hookPort, path))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if path == "/refused" {
			json.NewDecoder(resp.Body).Decode(&refused)
		} else {
			json.NewDecoder(resp.Body).Decode(&out)
		}
		return out, refused
	}
	want := []string{"user.created", "group.member_added", "user.signin_link_created", "user.disabled", "user.deleted"}
	var got []delivery
	waitFor(t, 20*time.Second, "the events at the receiver", func() bool { got, _ = read("/received"); return len(got) >= len(want) })
	if _, refused := read("/refused"); len(refused) > 0 {
		t.Fatalf("the standardwebhooks library refused deliveries: %v", refused)
	}
	if len(got) != len(want) {
		t.Fatalf("received %+v, want %v", got, want)
	}
	for i, d := range got {
		if d.Type != want[i] || d.Target != "ivy" || d.Actor != "cli" {
			t.Errorf("delivery %d: %+v, want %s about ivy by cli", i, d, want[i])
		}
	}
	waitFor(t, 20*time.Second, "the two chat messages", func() bool { chatMu.Lock(); defer chatMu.Unlock(); return len(chat) >= 2 })
	chatMu.Lock()
	defer chatMu.Unlock()
	if len(chat) != 2 || chat[0] != "Gatehouse: *user.created* by cli on ivy (in no group)" || chat[1] != "Gatehouse: *user.deleted* by cli on ivy" {
		t.Fatalf("the chat got %q", chat)
	}
}
