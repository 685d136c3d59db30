package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// A backup taken with `gatehouse backup` while users are added and people sign in
// restores, with `gatehouse restore`, to an installation where everything committed
// before the backup began is there: every user and every session. Restoring over a
// database a running server uses is refused.
func TestBackupWhileWritingRestores(t *testing.T) {
	serverYAML := func(addr string) string {
		return fmt.Sprintf("server:\n  address: %q\n  public_url: \"http://%s\"\n", addr, addr)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	base := "http://" + addr
	dir, env, cfg := staffSite(t, "sqlite:gatehouse-data/gatehouse.db", serverYAML(addr))
	srv := serve(t, dir, env, addr, "--config", cfg)
	ok(t, dir, env, "password-walker\n", "user", "add", "walker", "--group", "staff", "--password-stdin", "--config", cfg)

	// Writers: the CLI adds users, a browser signs in again and again.
	var mu sync.Mutex
	var users, cookies []string
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			name := fmt.Sprintf("added%03d", i)
			if r := gh(t, dir, env, "", "user", "add", name, "--no-password", "--config", cfg); r.code == 0 {
				mu.Lock()
				users = append(users, name)
				mu.Unlock()
			}
		}
	})
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			c := loginThrough(t, base, "walker", "password-walker")
			mu.Lock()
			cookies = append(cookies, c)
			mu.Unlock()
		}
	})
	committed := func() ([]string, []string) {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), users...), append([]string(nil), cookies...)
	}
	waitFor(t, time.Minute, "some writes", func() bool { u, c := committed(); return len(u) >= 3 && len(c) >= 5 })
	usersBefore, cookiesBefore := committed()
	backup := filepath.Join(t.TempDir(), "gatehouse-backup.db")
	out := ok(t, dir, env, "", "backup", backup, "--config", cfg)
	if !strings.Contains(out, "backup written to "+backup) || !strings.Contains(out, "gatehouse.key") {
		t.Fatalf("backup said:\n%s", out)
	}
	waitFor(t, time.Minute, "writes after the backup", func() bool { u, _ := committed(); return len(u) > len(usersBefore)+1 })
	close(stop)
	wg.Wait()

	// Restoring over the running server's database is refused.
	if r := gh(t, dir, env, "", "restore", backup, "--config", cfg); r.code == 0 || !strings.Contains(r.stderr, "stop it first") {
		t.Fatalf("restore while the server runs: exit %d\n%s", r.code, r.stderr)
	}
	if code := srv.stop(t); code != 0 {
		t.Fatalf("server exit %d", code)
	}

	// A new machine: the key file copied, the backup restored, the server started.
	addr2 := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	dir2, env2, cfg2 := staffSite(t, "sqlite:gatehouse-data/gatehouse.db", serverYAML(addr2))
	os.MkdirAll(filepath.Join(dir2, "gatehouse-data"), 0o700)
	key, err := os.ReadFile(filepath.Join(dir, "gatehouse-data", "gatehouse.key"))
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir2, "gatehouse-data", "gatehouse.key"), string(key))
	os.Chmod(filepath.Join(dir2, "gatehouse-data", "gatehouse.key"), 0o600)
	if out := ok(t, dir2, env2, "", "restore", backup, "--config", cfg2); !strings.Contains(out, "restored") {
		t.Fatalf("restore said:\n%s", out)
	}
	serve(t, dir2, env2, addr2, "--config", cfg2)
	var listed []struct{ Username string }
	if err := json.Unmarshal([]byte(ok(t, dir2, env2, "", "user", "list", "--json", "--config", cfg2)), &listed); err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, u := range listed {
		have[u.Username] = true
	}
	for _, name := range usersBefore {
		if !have[name] {
			t.Errorf("user %s, committed before the backup, is missing after the restore", name)
		}
	}
	for i, c := range cookiesBefore {
		req, _ := http.NewRequest(http.MethodGet, "http://"+addr2+"/api/authz/forward-auth", nil)
		for k, v := range traefikHeaders("https://app.example.com/") {
			req.Header[k] = v
		}
		req.Header.Set("Cookie", c)
		resp, err := noRedirects.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("session %d, made before the backup, does not pass after the restore: %d", i, resp.StatusCode)
		}
	}
	t.Logf("backup during writes: %d users and %d sessions committed before it, all restored", len(usersBefore), len(cookiesBefore))
}
