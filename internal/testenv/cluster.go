package testenv

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"testing"
)

// Cluster is a PostgreSQL server of a test's own, which the test may stop and start:
// what an outage or a failover looks like from Gatehouse's side.
type Cluster struct {
	t       testing.TB
	bin     string
	dir     string
	port    int
	asPG    []string
	URL     string // admin URL of the "postgres" database
	running bool
}

// NewCluster initdbs and starts a throwaway cluster on a free loopback port; it is
// stopped and removed when the test ends.
func NewCluster(t testing.TB) *Cluster {
	t.Helper()
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(bins) == 0 {
		Missing(t, "PostgreSQL server binaries (Debian package postgresql)")
	}
	sort.Strings(bins)
	c := &Cluster{t: t, bin: filepath.Dir(bins[len(bins)-1])}
	dir, err := os.MkdirTemp("", "gatehouse-cluster")
	if err != nil {
		t.Fatal(err)
	}
	c.dir = dir
	if os.Geteuid() == 0 { // initdb and postgres refuse to run as root
		c.asPG = []string{"runuser", "-u", "postgres", "--"}
		if u, err := user.Lookup("postgres"); err == nil {
			var uid, gid int
			fmt.Sscan(u.Uid, &uid)
			fmt.Sscan(u.Gid, &gid)
			os.Chown(dir, uid, gid)
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c.port = l.Addr().(*net.TCPAddr).Port
	l.Close()
	c.run(filepath.Join(c.bin, "initdb"), "-D", filepath.Join(dir, "data"), "-U", "postgres", "--auth=trust", "--no-sync")
	c.URL = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", c.port)
	c.Start()
	t.Cleanup(func() {
		if c.running {
			c.Stop()
		}
		os.RemoveAll(dir)
	})
	return c
}

func (c *Cluster) run(args ...string) {
	c.t.Helper()
	cmd := exec.Command(append(c.asPG, args...)[0], append(c.asPG, args...)[1:]...)
	if out, err := cmd.CombinedOutput(); err != nil {
		c.t.Fatalf("%s: %v\n%s", filepath.Base(args[0]), err, out)
	}
}

// Start starts (or restarts) the server and waits until it accepts connections.
func (c *Cluster) Start() {
	c.t.Helper()
	c.run(filepath.Join(c.bin, "pg_ctl"), "-D", filepath.Join(c.dir, "data"), "-l", filepath.Join(c.dir, "log"), "-w", "-t", "60",
		"-o", fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off", c.port, c.dir), "start")
	c.running = true
}

// Stop shuts the server down the way an operator's `pg_ctl stop` does: open
// connections are ended and new ones refused until Start.
func (c *Cluster) Stop() {
	c.t.Helper()
	c.run(filepath.Join(c.bin, "pg_ctl"), "-D", filepath.Join(c.dir, "data"), "-m", "fast", "-w", "stop")
	c.running = false
}
