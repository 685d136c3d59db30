package e2e

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/gatehouse-id/gatehouse/internal/testenv"
)

// The real apps the proxy tests protect. Each reads a request path its own way, which
// is the point: Gatehouse must decide on every reading an app may give the bytes.

// expressModulesEnv names the node_modules folder holding Express 4, which
// scripts/test.sh installs from npm into a cache folder outside the repository.
const expressModulesEnv = "TEST_GATEHOUSE_EXPRESS_MODULES"

// expressApp starts testdata/express-app.js (Express 4 from npm) and returns its port.
// It routes case-insensitively on the encoded path: /api/* is the public part on
// app.example.com, /photos/* and everything else private; /admin is the private part
// on www.example.com.
func expressApp(t *testing.T) int {
	t.Helper()
	modules := fromEnv(t, expressModulesEnv, "Express 4 from npm")
	node := testenv.Tool(t, "node", "nodejs")
	port := freePort(t)
	script, _ := filepath.Abs("testdata/express-app.js")
	cmd := exec.Command(node, script)
	cmd.Env = append(os.Environ(), "NODE_PATH="+modules, "PORT="+strconv.Itoa(port))
	startProxy(t, port, cmd, "")
	return port
}

// fileServerApp serves a folder with Go's http.FileServer, which decodes and cleans
// the path itself: public/ is the public part, private/secret.txt is what no anonymous
// request may ever read.
func fileServerApp(t *testing.T) int {
	t.Helper()
	dir := t.TempDir()
	for name, body := range map[string]string{"public/index.txt": "public file\n", "private/secret.txt": "SECRET\n"} {
		os.MkdirAll(filepath.Join(dir, filepath.Dir(name)), 0o755)
		writeFile(t, filepath.Join(dir, name), body)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// No ServeMux in front: it would redirect unclean paths itself, and the point is
	// what FileServer makes of a path it is handed.
	srv := &http.Server{Handler: http.FileServer(http.Dir(dir))}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return l.Addr().(*net.TCPAddr).Port
}

// websocketApp stands in for an app with a websocket (Home Assistant, Grafana Live):
// it accepts an upgrade, says in the 101 answer who the proxy said is signed in, and
// echoes what it is sent.
func websocketApp(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			http.Error(w, "websocket only", http.StatusUpgradeRequired)
			return
		}
		conn, rw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		fmt.Fprintf(rw, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nApp-Saw-User: %s\r\n\r\n", r.Header.Get("Remote-User"))
		rw.Flush()
		io.Copy(conn, rw)
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return l.Addr().(*net.TCPAddr).Port
}
