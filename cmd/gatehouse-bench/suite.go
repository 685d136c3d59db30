package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gatehouse-id/gatehouse/internal/bench"
	"github.com/gatehouse-id/gatehouse/internal/config"
	"github.com/gatehouse-id/gatehouse/internal/identity"
	"github.com/gatehouse-id/gatehouse/internal/server"
	"github.com/gatehouse-id/gatehouse/internal/session"
	"github.com/gatehouse-id/gatehouse/internal/store"
	"github.com/gatehouse-id/gatehouse/internal/store/sqlite"
	"github.com/gatehouse-id/gatehouse/internal/store/sqlstore"
)

// suiteOptions are the suite's knobs.
type suiteOptions struct {
	postgres   string // admin URL of a PostgreSQL server to create a database on; "" skips it
	duration   time.Duration
	rounds     int
	anon       int
	sessions   int
	users      int
	out        string
	gatehouse  string // a built gatehouse binary; "" builds one
	nginxConf  string // the README's nginx snippet, run in the end-to-end scenario
	conns      int
	loginConns int
	noWrk      bool
	noPin      bool
}

// row is one line of the results table.
type row struct {
	backend, scenario string
	generator         string
	r                 bench.Result
	ratio             string // against the row's reference, or why none is given
	notes             string
}

func suite(ctx context.Context, args []string, out io.Writer) error {
	var o suiteOptions
	fs := flag.NewFlagSet("suite", flag.ContinueOnError)
	fs.StringVar(&o.postgres, "postgres", "", "PostgreSQL admin URL (a fresh database is created on it); empty: SQLite only")
	fs.DurationVar(&o.duration, "d", 10*time.Second, "duration of each timed run")
	fs.IntVar(&o.rounds, "rounds", 5, "interleaved rounds of the hot-path and nginx comparisons (medians are reported)")
	fs.IntVar(&o.anon, "anon", 1_000_000, "anonymous requests in scenario 2 when wrk is not used")
	fs.IntVar(&o.sessions, "sessions", 10_000, "distinct sessions in scenario 3")
	fs.IntVar(&o.users, "users", 10_000, "users the scenario 3 sessions belong to")
	fs.StringVar(&o.out, "out", "", "write the Markdown table to this file too")
	fs.StringVar(&o.gatehouse, "gatehouse", "", "gatehouse binary (default: build ./cmd/gatehouse)")
	fs.StringVar(&o.nginxConf, "nginx-conf", "deploy/examples/nginx.conf", "the nginx snippet the end-to-end scenario runs")
	fs.IntVar(&o.conns, "c", 64, "connections for the forward-auth scenarios")
	fs.IntVar(&o.loginConns, "login-c", 32, "concurrent logins in scenario 4")
	fs.BoolVar(&o.noWrk, "no-wrk", false, "drive every scenario with the built-in generator even when wrk is installed")
	fs.BoolVar(&o.noPin, "no-pin", false, "do not pin servers and the load generator to separate cores")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if o.rounds < 1 {
		return errors.New("suite: -rounds must be at least 1")
	}
	work, err := os.MkdirTemp("", "gatehouse-bench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	os.Chmod(work, 0o755) // nginx's workers run as nobody when the suite runs as root
	if o.gatehouse == "" {
		o.gatehouse = filepath.Join(work, "gatehouse")
		build := exec.Command("go", "build", "-o", o.gatehouse, "./cmd/gatehouse")
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if b, err := build.CombinedOutput(); err != nil {
			return fmt.Errorf("building gatehouse (run from the repository root): %v\n%s", err, b)
		}
	}
	logf := func(format string, a ...any) { fmt.Fprintf(os.Stderr, "bench: "+format+"\n", a...) }
	place := choosePlacement(o, logf)
	rec := startMachineRecord(place)

	backends := []backend{{name: "SQLite", url: "sqlite:" + filepath.Join(work, "sqlite", "gatehouse.db"), dir: filepath.Join(work, "SQLite")}}
	if o.postgres != "" {
		pgURL, drop, err := createDatabase(ctx, o.postgres)
		if err != nil {
			return err
		}
		defer drop()
		backends = append(backends, backend{name: "PostgreSQL", url: pgURL, dir: filepath.Join(work, "PostgreSQL")})
	}
	rows, err := hotPath(ctx, o, place, work, backends, logf)
	if err != nil {
		return err
	}
	for _, b := range backends {
		got, err := runBackend(ctx, o, place, b, logf)
		if err != nil {
			return fmt.Errorf("%s: %w", b.name, err)
		}
		rows = append(rows, got...)
	}
	table := render(rows, o, rec)
	fmt.Fprint(out, table)
	if o.out != "" {
		return os.WriteFile(o.out, []byte(table), 0o644)
	}
	return nil
}

// backend is a database the suite runs Gatehouse on.
type backend struct{ name, url, dir string }

// choosePlacement pins when it can (two cores and taskset) and prefers wrk when it is
// installed. Pinning moves this process, the built-in generator included, to the
// generator's core.
func choosePlacement(o suiteOptions, logf func(string, ...any)) placement {
	var p placement
	if !o.noWrk {
		p.wrk, _ = exec.LookPath("wrk")
	}
	if _, err := exec.LookPath("taskset"); err == nil && !o.noPin && runtime.NumCPU() >= 2 {
		if b, err := exec.Command("taskset", "-a", "-p", "-c", generatorCPU, strconv.Itoa(os.Getpid())).CombinedOutput(); err != nil {
			logf("not pinning: taskset: %v %s", err, b)
		} else {
			p.pinned = true
		}
	}
	if p.wrk == "" {
		logf("wrk not found (Debian: apt-get install wrk): the built-in generator drives every scenario, and cannot saturate a baseline on one core")
	}
	return p
}

// headersFor are the headers Traefik sends for a browser page load.
func headersFor(host string) http.Header {
	return http.Header{
		"X-Forwarded-Proto": {"https"}, "X-Forwarded-Host": {host}, "X-Forwarded-Uri": {"/index.html?page=1"},
		"X-Forwarded-Method": {"GET"}, "Accept": {"text/html,application/xhtml+xml"},
	}
}

type measured struct {
	r     bench.Result
	notes string
}

// startSelf starts a copy of this program as a baseline server (mode "", "same" or
// "app", see serveBaseline) on its own free address.
func startSelf(ctx context.Context, place placement, mode string) (*exec.Cmd, string, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, "", err
	}
	addr := freeAddr()
	cmd := place.serverCommand(ctx, self)
	cmd.Env = append(os.Environ(), baselineEnv+"="+addr, baselineModeEnv+"="+mode)
	if err := cmd.Start(); err != nil {
		return nil, "", err
	}
	if _, err := waitReady(ctx, "http://"+addr+"/-/ready", time.Now()); err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		return nil, "", err
	}
	return cmd, addr, nil
}

// target is one server the hot-path comparison measures in every round.
type target struct {
	backend, scenario string
	pids              []int // the server's processes, whose CPU the rounds measure
	url               string
	hdr               http.Header
	cookie            string
	metrics           string // Gatehouse's metrics URL, for its query count
	samples           []sample
}

// sample is one round's run of one target.
type sample struct {
	r     bench.Result
	share float64 // of one core, used by the server
}

// median is the round with the median rate, and the lowest and highest rates.
func (t *target) median() (sample, float64, float64) {
	s := slices.Clone(t.samples)
	slices.SortFunc(s, func(a, b sample) int { return cmpFloat(a.r.RPS, b.r.RPS) })
	return s[len(s)/2], s[0].r.RPS, s[len(s)-1].r.RPS
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// ratioTo is the median over rounds of t's rate against ref's in the same round, or,
// when ref did not saturate its core (or nothing was pinned), why no ratio is given.
func ratioTo(t, ref *target, place placement) string {
	if !place.pinned {
		return "not reported: unpinned"
	}
	share := ref.sharesMedian()
	if share < saturated {
		return fmt.Sprintf("not reported: the reference used %.0f%% of its core (the generator did not saturate it)", 100*share)
	}
	ratios := make([]float64, len(t.samples))
	for i := range t.samples {
		ratios[i] = t.samples[i].r.RPS / ref.samples[i].r.RPS
	}
	slices.Sort(ratios)
	if len(ratios) == 1 {
		return fmt.Sprintf("%.2f×", ratios[0])
	}
	return fmt.Sprintf("%.2f× (%.2f–%.2f)", ratios[len(ratios)/2], ratios[0], ratios[len(ratios)-1])
}

func (t *target) sharesMedian() float64 {
	shares := make([]float64, len(t.samples))
	for i, s := range t.samples {
		shares[i] = s.share
	}
	slices.Sort(shares)
	return shares[len(shares)/2]
}

// measureRounds runs every target once per round, in turn, so that a machine that
// slows down during the run slows every target alike.
func measureRounds(ctx context.Context, o suiteOptions, place placement, targets []*target, logf func(string, ...any)) error {
	for round := range o.rounds {
		for _, t := range targets {
			var r bench.Result
			share, err := serverCPUShare(t.pids, func() error {
				var err error
				r, err = place.closedLoop(ctx, t.url, t.hdr, t.cookie, o.conns, o.duration)
				return err
			})
			if err != nil {
				return fmt.Errorf("%s %s: %w", t.backend, t.scenario, err)
			}
			t.samples = append(t.samples, sample{r, share})
			logf("round %d/%d: %s %s: %.0f req/s, server at %.0f%% of a core", round+1, o.rounds, t.backend, t.scenario, r.RPS, 100*share)
		}
	}
	return nil
}

// row turns a target's rounds into a table row.
func (t *target) row(place placement, ratio, notes string) row {
	m, lo, hi := t.median()
	cpu := m.share * m.r.Elapsed.Seconds() * 1e6 / float64(max(m.r.Requests, 1))
	n := fmt.Sprintf("median of %d rounds (%.0f–%.0f req/s); server at %.0f%% of a core, %.0f µs CPU/request", len(t.samples), lo, hi, 100*m.share, cpu)
	if len(t.samples) == 1 {
		n = fmt.Sprintf("one round; server at %.0f%% of a core, %.0f µs CPU/request", 100*m.share, cpu)
	}
	return row{backend: t.backend, scenario: t.scenario, generator: place.generatorName(), r: m.r, ratio: ratio, notes: strings.TrimPrefix(notes+"; "+n, "; ")}
}

// hotPath is scenario 1 and the end-to-end nginx scenario: the bare net/http
// baseline, net/http sending Gatehouse's whole answer, and Gatehouse on each database
// with a valid session and 100 rules, measured in interleaved rounds; then nginx with
// the README's snippet against nginx proxying the same app without auth.
func hotPath(ctx context.Context, o suiteOptions, place placement, work string, backends []backend, logf func(string, ...any)) ([]row, error) {
	base, baseAddr, err := startSelf(ctx, place, "")
	if err != nil {
		return nil, err
	}
	defer func() { base.Process.Kill(); base.Wait() }()
	same, sameAddr, err := startSelf(ctx, place, "same")
	if err != nil {
		return nil, err
	}
	defer func() { same.Process.Kill(); same.Wait() }()
	hdr := headersFor("app.example.com")
	anyCookie := "gatehouse_session=" + session.NewToken() // the baselines check its shape only
	baseT := &target{backend: "—", scenario: "baseline: Go net/http, cookie check and one header", pids: []int{base.Process.Pid},
		url: "http://" + baseAddr + "/api/authz/forward-auth", hdr: hdr, cookie: anyCookie}
	sameT := &target{backend: "—", scenario: "Go net/http sending Gatehouse's whole answer (10 headers)", pids: []int{same.Process.Pid},
		url: "http://" + sameAddr + "/api/authz/forward-auth", hdr: hdr, cookie: anyCookie}
	targets := []*target{baseT, sameT}
	var procs []*gatehouseProcess
	defer func() {
		for _, p := range procs {
			p.stop()
		}
	}()
	for _, b := range backends {
		logf("%s: starting gatehouse for the hot path", b.name)
		p, err := startGatehouse(ctx, place, o.gatehouse, b.dir, b.url)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", b.name, err)
		}
		procs = append(procs, p)
		st, err := openStore(b.url)
		if err != nil {
			return nil, err
		}
		users, err := st.GroupByName(ctx, "users")
		if err == nil {
			var cookie string
			if cookie, err = seedSession(ctx, st, users.ID, "bench"); err == nil {
				targets = append(targets, &target{backend: b.name, scenario: "1. forward auth, valid session, 100 rules", pids: []int{p.cmd.Process.Pid},
					url: p.base + "/api/authz/forward-auth", hdr: hdr, cookie: cookie, metrics: p.metrics})
			}
		}
		st.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", b.name, err)
		}
	}
	for _, t := range targets {
		if r, _ := bench.Run(ctx, bench.Options{URL: t.url, Header: t.hdr, Cookies: []string{t.cookie}, Requests: 100}); r.ByStatus[200] != 100 {
			return nil, fmt.Errorf("warm-up of %s %s: a valid session was not allowed: %v", t.backend, t.scenario, r.ByStatus)
		}
	}
	queries := map[*target]int64{}
	for _, t := range targets[2:] {
		if queries[t], err = queryCount(t.metrics); err != nil {
			return nil, err
		}
	}
	logf("hot path: %d rounds of %s each, %d connections, load by %s", o.rounds, o.duration, o.conns, place.generatorName())
	if err := measureRounds(ctx, o, place, targets, logf); err != nil {
		return nil, err
	}
	rows := []row{baseT.row(place, "reference", ""), sameT.row(place, ratioTo(sameT, baseT, place), "what writing the identity headers costs net/http")}
	for _, t := range targets[2:] {
		q, _ := queryCount(t.metrics)
		// Each replica polls the change feed and the audit outbox once a second; those
		// queries are not the requests' doing.
		var requests int
		for _, s := range t.samples {
			requests += s.r.Requests
		}
		background := 2 * (float64(o.rounds)*o.duration.Seconds()*float64(len(targets)) + 2)
		perReq := (float64(q-queries[t]) - background) / float64(max(requests, 1))
		rows = append(rows, t.row(place, ratioTo(t, baseT, place), fmt.Sprintf("%.4f DB queries/request (%d in all, up to ~%.0f from background polling)",
			max(perReq, 0), q-queries[t], background)))
	}
	nginxRows, err := nginxScenario(ctx, o, place, work, procs[0], targets[2].cookie, logf)
	if err != nil {
		return nil, fmt.Errorf("nginx scenario: %w", err)
	}
	return append(rows, nginxRows...), nil
}

// gatehouseProcess is a started `gatehouse serve`.
type gatehouseProcess struct {
	cmd     *exec.Cmd
	base    string
	metrics string // the metrics listener's base URL
	ready   time.Duration
	idleRSS int64
}

func startGatehouse(ctx context.Context, place placement, binary, dir, dbURL string) (*gatehouseProcess, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	addr := freeAddr()
	cfgPath := filepath.Join(dir, "gatehouse.yaml")
	if err := os.WriteFile(cfgPath, []byte(benchConfig(addr)), 0o600); err != nil {
		return nil, err
	}
	cmd := place.serverCommand(ctx, binary, "serve", "--config", cfgPath)
	cmd.Dir = dir
	metricsAddr := freeAddr()
	cmd.Env = append(withoutGatehouseEnv(), "GATEHOUSE_DATABASE_URL="+dbURL, "GATEHOUSE_SERVER_METRICS_ADDRESS="+metricsAddr)
	if strings.HasPrefix(dbURL, "postgres") { // replicas get their server key from outside the database
		cmd.Env = append(cmd.Env, "GATEHOUSE_SERVER_SECRET=bench-server-key-0123456789abcdef0123456789")
	}
	cmd.Stderr = io.Discard
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &gatehouseProcess{cmd: cmd, base: "http://" + addr, metrics: "http://" + metricsAddr}
	ready, err := waitReady(ctx, p.base+"/-/health/ready/", start)
	if err != nil {
		p.stop()
		return nil, err
	}
	p.ready = ready
	time.Sleep(time.Second) // let start-up garbage be collected before reading idle RSS
	p.idleRSS, _ = bench.RSS(cmd.Process.Pid)
	return p, nil
}

func (p *gatehouseProcess) stop() {
	p.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		p.cmd.Process.Kill()
		<-done
	}
}

// benchConfig is 100 rules: 99 hosts that do not match, then the wildcard that does, so
// every decision walks the whole list.
func benchConfig(addr string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "server:\n  address: %q\n  public_url: https://auth.example.com\n", addr)
	b.WriteString("session:\n  cookie_domain: example.com\nlog:\n  level: warn\naccess:\n  admin_groups: [admins]\n  rules:\n")
	for i := range 99 {
		fmt.Fprintf(&b, "    - hosts: [app%02d.example.org]\n      groups: [team%02d]\n", i, i)
	}
	b.WriteString("    - hosts: [\"*.example.com\"]\n      groups: [users]\ngroups:\n  - name: users\n  - name: admins\n")
	fmt.Fprintf(&b, "oidc:\n  clients:\n    - id: bench\n      secret: %q\n      redirect_uris: [%q]\n      groups: [users]\n", benchClientSecret, benchRedirect)
	return b.String()
}

func runBackend(ctx context.Context, o suiteOptions, place placement, b backend, logf func(string, ...any)) ([]row, error) {
	var rows []row
	add := func(scenario, generator string, m measured, notes string) {
		rows = append(rows, row{backend: b.name, scenario: scenario, generator: generator, r: m.r, ratio: "—", notes: strings.TrimPrefix(notes+"; "+m.notes, "; ")})
	}
	own := "gatehouse-bench load"
	logf("%s: starting gatehouse", b.name)
	// Each scenario gets a fresh process (on the same database), so one scenario's
	// cache and garbage do not weigh on the next one's memory figures.
	var p *gatehouseProcess
	var pid int
	var first *gatehouseProcess
	fresh := func() error {
		if p != nil {
			p.stop()
		}
		var err error
		if p, err = startGatehouse(ctx, place, o.gatehouse, b.dir, b.url); err != nil {
			return err
		}
		if first == nil {
			first = p
		}
		pid = p.cmd.Process.Pid
		return nil
	}
	if err := fresh(); err != nil {
		return nil, err
	}
	defer func() { p.stop() }()
	st, err := openStore(b.url)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	users, err := st.GroupByName(ctx, "users")
	if err != nil {
		return nil, err
	}
	benchUser, err := st.UserByUsername(ctx, "bench") // made by the hot path
	if err != nil {
		return nil, fmt.Errorf("the hot path's user: %w", err)
	}
	cookie, err := newSession(ctx, st, benchUser.ID)
	if err != nil {
		return nil, err
	}
	hdr := headersFor("app.example.com")

	// 2. Anonymous: redirects, and nothing written.
	url := p.base + "/api/authz/forward-auth"
	before, err := rowCounts(st)
	if err != nil {
		return nil, err
	}
	rss0, _ := bench.RSS(pid)
	var m measured
	if place.wrk != "" {
		logf("%s: scenario 2 (anonymous requests for %s)", b.name, o.duration)
		m, err = withStats(pid, func() (bench.Result, error) { return place.closedLoop(ctx, url, hdr, "", o.conns, o.duration) })
	} else {
		logf("%s: scenario 2 (%d anonymous requests)", b.name, o.anon)
		m, err = withStats(pid, func() (bench.Result, error) {
			return bench.Run(ctx, bench.Options{URL: url, Header: hdr, Concurrency: o.conns, Requests: o.anon})
		})
	}
	if err != nil {
		return nil, err
	}
	rss1, _ := bench.RSS(pid)
	after, _ := rowCounts(st)
	add("2. forward auth, anonymous (302)", place.generatorName(), m, fmt.Sprintf("rows before %d, after %d; RSS %.1f → %.1f MiB", before, after, mib(rss0), mib(rss1)))

	// 3. Cache pressure: many sessions, a random one per request.
	logf("%s: scenario 3 (seeding %d sessions of %d users)", b.name, o.sessions, o.users)
	cookies, err := seedMany(ctx, st, users.ID, o.users, o.sessions)
	if err != nil {
		return nil, err
	}
	if err := fresh(); err != nil {
		return nil, err
	}
	url = p.base + "/api/authz/forward-auth"
	logf("%s: scenario 3a (every session once: cache misses)", b.name)
	m, err = withStats(pid, func() (bench.Result, error) {
		return bench.Run(ctx, bench.Options{URL: url, Header: hdr, Cookies: cookies, InOrder: true, Concurrency: o.conns, Requests: len(cookies)})
	})
	if err != nil {
		return nil, err
	}
	add(fmt.Sprintf("3a. forward auth, %s sessions of %s users, each once after a restart (cold cache)", thousands(o.sessions), thousands(o.users)), own, m, "")
	logf("%s: scenario 3b (random session per request, warm cache)", b.name)
	m, err = withStats(pid, func() (bench.Result, error) {
		return bench.Run(ctx, bench.Options{URL: url, Header: hdr, Cookies: cookies, Concurrency: o.conns, Duration: o.duration})
	})
	if err != nil {
		return nil, err
	}
	add(fmt.Sprintf("3b. forward auth, %s sessions, a random one per request (warm cache)", thousands(o.sessions)), own, m, "")

	// 4. Password logins.
	if _, err := (&identity.Directory{Store: st, Hasher: identity.NewHasher(1), AdminGroups: func() []string { return []string{"admins"} }}).
		AddUser(ctx, "bench", identity.NewUser{Username: "login-bench", Password: "bench-password-1"}); err != nil {
		return nil, err
	}
	if err := fresh(); err != nil {
		return nil, err
	}
	logf("%s: scenario 4 (%d concurrent password logins)", b.name, o.loginConns)
	m, err = logins(ctx, p.base, pid, o.loginConns, o.duration)
	if err != nil {
		return nil, err
	}
	add(fmt.Sprintf("4. password login (argon2id), %d concurrent", o.loginConns), own, m, "")

	// 5. OpenID Connect code exchanges.
	if err := fresh(); err != nil {
		return nil, err
	}
	logf("%s: scenario 5 (OIDC code exchanges, %d concurrent)", b.name, o.loginConns)
	m, err = codeExchanges(ctx, p.base, cookie, pid, o.loginConns, o.duration)
	if err != nil {
		return nil, err
	}
	add(fmt.Sprintf("5. OIDC token endpoint, code exchange (RS256 ID token), %d concurrent", o.loginConns), own, m, "")

	rows = append(rows, row{backend: b.name, scenario: "6. start-up and memory", notes: fmt.Sprintf("start to ready %s; idle RSS %.1f MiB",
		first.ready.Round(time.Millisecond), mib(first.idleRSS))})
	return rows, nil
}

// withStats runs load and adds the server's peak RSS and CPU per request.
func withStats(pid int, load func() (bench.Result, error)) (measured, error) {
	cpu0, _ := bench.CPUTime(pid)
	peak := bench.PeakRSS(pid, 100*time.Millisecond)
	r, err := load()
	rss := peak()
	cpu1, _ := bench.CPUTime(pid)
	if err != nil {
		return measured{}, err
	}
	return measured{r, fmt.Sprintf("server peak RSS %.1f MiB, %.0f µs CPU/request", mib(rss),
		float64((cpu1-cpu0).Microseconds())/float64(max(r.Requests, 1)))}, nil
}

// thousands writes 10000 as "10,000".
func thousands(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

func openStore(dbURL string) (store.Store, error) {
	if path, ok := strings.CutPrefix(dbURL, "sqlite:"); ok {
		return sqlite.Open(path)
	}
	cfg := config.Default()
	cfg.Database.URL = dbURL
	return server.OpenStore(&cfg)
}

func seedSession(ctx context.Context, st store.Store, groupID, username string) (string, error) {
	u, err := st.CreateUser(ctx, store.User{Username: username})
	if err != nil {
		return "", err
	}
	if err := st.AddMember(ctx, groupID, u.ID); err != nil {
		return "", err
	}
	return newSession(ctx, st, u.ID)
}

func newSession(ctx context.Context, st store.Store, userID string) (string, error) {
	token := session.NewToken()
	now := time.Now()
	err := st.CreateSession(ctx, store.Session{ID: sqlstore.NewID(), TokenHash: session.HashToken(token), UserID: userID,
		AuthMethod: "bench", CreatedAt: now, ExpiresAt: now.Add(24 * time.Hour), LastSeenAt: now})
	return "gatehouse_session=" + token, err
}

// seedMany creates users and sessions through the store in parallel.
func seedMany(ctx context.Context, st store.Store, groupID string, users, sessions int) ([]string, error) {
	ids := make([]string, users)
	cookies := make([]string, sessions)
	var firstErr error
	var mu sync.Mutex
	fail := func(err error) {
		mu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		mu.Unlock()
	}
	parallel := func(n int, fn func(i int) error) {
		var next atomic.Int64
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
					if err := fn(i); err != nil {
						fail(err)
						return
					}
				}
			})
		}
		wg.Wait()
	}
	parallel(users, func(i int) error {
		u, err := st.CreateUser(ctx, store.User{Username: "user" + strconv.Itoa(i)})
		if err == nil {
			ids[i] = u.ID
			err = st.AddMember(ctx, groupID, u.ID)
		}
		return err
	})
	if firstErr != nil {
		return nil, firstErr
	}
	parallel(sessions, func(i int) error {
		c, err := newSession(ctx, st, ids[i%users])
		cookies[i] = c
		return err
	})
	return cookies, firstErr
}

var queriesLine = regexp.MustCompile(`(?m)^gatehouse_database_queries_total (\d+)`)

func queryCount(base string) (int64, error) {
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	m := queriesLine.FindSubmatch(b)
	if m == nil {
		return 0, errors.New("/metrics has no gatehouse_database_queries_total")
	}
	return strconv.ParseInt(string(m[1]), 10, 64)
}

func rowCounts(st store.Store) (int, error) {
	total := 0
	for _, table := range []string{"users", "usergroups", "memberships", "sessions", "setup_tokens", "settings", "events", "changes", "leases"} {
		var n int
		if err := st.(*sqlstore.Store).DB().QueryRow("SELECT COUNT(*) FROM " + table).Scan(&n); err != nil {
			return 0, err
		}
		total += n
	}
	return total, nil
}

var csrfField = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)

const (
	benchClientSecret = "bench-client-secret-0123456789abcdef0123"
	benchRedirect     = "https://app.example.com/cb"
)

// codeExchanges has each worker sign in with the code flow in a loop: the authorize
// redirect (untimed), then the timed code exchange at the token endpoint, which checks
// the client secret, spends the code, stores an access token and signs an ID token.
func codeExchanges(ctx context.Context, base, cookie string, pid, workers int, d time.Duration) (measured, error) {
	more := until(d)
	cpu0, _ := bench.CPUTime(pid)
	s := newSamples()
	authorize := base + "/oauth2/authorize?" + url.Values{"client_id": {"bench"}, "redirect_uri": {benchRedirect},
		"response_type": {"code"}, "scope": {"openid profile email groups"}, "state": {"s"}}.Encode()
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
			for first := true; ctx.Err() == nil && (first || more()); first = false {
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, authorize, nil)
				req.Header.Set("Cookie", cookie)
				resp, err := c.Do(req)
				if err != nil {
					continue
				}
				resp.Body.Close()
				loc, err := url.Parse(resp.Header.Get("Location"))
				if err != nil || loc.Query().Get("code") == "" {
					s.record(0, resp.StatusCode)
					continue
				}
				form := url.Values{"grant_type": {"authorization_code"}, "code": {loc.Query().Get("code")}, "redirect_uri": {benchRedirect}}
				req, _ = http.NewRequestWithContext(ctx, http.MethodPost, base+"/oauth2/token", strings.NewReader(form.Encode()))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				req.SetBasicAuth("bench", benchClientSecret)
				s.timed(c, req)
			}
		})
	}
	wg.Wait()
	cpu1, _ := bench.CPUTime(pid)
	r := s.summary()
	if r.ByStatus[http.StatusOK] == 0 {
		return measured{}, fmt.Errorf("no code exchange succeeded: %v", r.ByStatus)
	}
	return measured{r, fmt.Sprintf("%.2f ms server CPU per sign-in (authorize + exchange)", float64((cpu1-cpu0).Microseconds())/1000/float64(max(r.Requests, 1)))}, nil
}

// until reports, while d has not passed, that a worker may start another request. The
// duration bounds starting requests, never one in flight, and every worker sends at
// least one: on a busy machine a slow request (an argon2id sign-in) still completes
// and counts instead of being cut off.
func until(d time.Duration) func() bool {
	end := time.Now().Add(d)
	return func() bool { return time.Now().Before(end) }
}

// samples collects what many workers' timed requests took and answered.
type samples struct {
	mu       sync.Mutex
	start    time.Time
	lat      []time.Duration
	byStatus map[int]int
}

func newSamples() *samples { return &samples{start: time.Now(), byStatus: map[int]int{}} }

// record counts one answer; a zero latency is an untimed step that went wrong.
func (s *samples) record(took time.Duration, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if took > 0 {
		s.lat = append(s.lat, took)
	}
	s.byStatus[status]++
}

// timed sends req, reads the whole answer, and records how long it took.
func (s *samples) timed(c *http.Client, req *http.Request) {
	t0 := time.Now()
	resp, err := c.Do(req)
	if err != nil {
		return
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	s.record(time.Since(t0), resp.StatusCode)
}

func (s *samples) summary() bench.Result { return summarize(s.lat, s.byStatus, time.Since(s.start)) }

// logins has each worker fetch the login form once, then post the password in a loop.
func logins(ctx context.Context, base string, pid, workers int, d time.Duration) (measured, error) {
	more := until(d)
	cpu0, _ := bench.CPUTime(pid)
	peak := bench.PeakRSS(pid, 50*time.Millisecond)
	s := newSamples()
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			jar, _ := cookiejar.New(nil)
			c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
			resp, err := c.Get(base + "/login")
			if err != nil {
				return
			}
			page, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			m := csrfField.FindSubmatch(page)
			if m == nil {
				return
			}
			form := url.Values{"username": {"login-bench"}, "password": {"bench-password-1"}, "csrf_token": {string(m[1])}}.Encode()
			for first := true; ctx.Err() == nil && (first || more()); first = false {
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/login", strings.NewReader(form))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				s.timed(c, req)
			}
		})
	}
	wg.Wait()
	rss := peak()
	cpu1, _ := bench.CPUTime(pid)
	r := s.summary()
	if r.ByStatus[http.StatusSeeOther] == 0 {
		return measured{}, fmt.Errorf("no login succeeded: %v", r.ByStatus)
	}
	return measured{r, fmt.Sprintf("server peak RSS %.1f MiB, %.1f ms CPU/login", mib(rss), float64((cpu1-cpu0).Microseconds())/1000/float64(max(r.Requests, 1)))}, nil
}

func summarize(lat []time.Duration, byStatus map[int]int, elapsed time.Duration) bench.Result {
	r := bench.Result{Requests: len(lat), ByStatus: byStatus, Elapsed: elapsed}
	if len(lat) == 0 {
		return r
	}
	sortDurations(lat)
	q := func(p float64) time.Duration { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
	r.RPS = float64(len(lat)) / elapsed.Seconds()
	r.P50, r.P90, r.P99, r.P999, r.Max = q(.5), q(.9), q(.99), q(.999), lat[len(lat)-1]
	return r
}

func render(rows []row, o suiteOptions, rec machineRecord) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Measured %s on %s. %d connections, %s a run.\n\n", time.Now().UTC().Format("2006-01-02"), rec, o.conns, o.duration)
	b.WriteString("| database | scenario | load generator | requests | req/s | vs reference | p50 | p90 | p99 | max | non-2xx/3xx, errors | notes |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		if r.r.Requests == 0 {
			fmt.Fprintf(&b, "| %s | %s | | | | | | | | | | %s |\n", r.backend, r.scenario, r.notes)
			continue
		}
		bad := r.r.Errors
		for code, n := range r.r.ByStatus {
			if code >= 400 {
				bad += n
			}
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %d | %.0f | %s | %s | %s | %s | %s | %d | %s |\n", r.backend, r.scenario, r.generator, r.r.Requests, r.r.RPS, r.ratio,
			ms(r.r.P50), ms(r.r.P90), ms(r.r.P99), ms(r.r.Max), bad, r.notes)
	}
	return b.String()
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000) }

func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

func freePort() int {
	_, port, _ := net.SplitHostPort(freeAddr())
	n, _ := strconv.Atoi(port)
	return n
}

func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "127.0.0.1:18099"
	}
	defer l.Close()
	return l.Addr().String()
}

// waitReady polls url until it answers 200 and returns how long that took from start.
func waitReady(ctx context.Context, url string, start time.Time) (time.Duration, error) {
	c := &http.Client{Timeout: time.Second}
	for time.Since(start) < 30*time.Second {
		if resp, err := c.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return time.Since(start), nil
			}
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(2 * time.Millisecond):
		}
	}
	return 0, fmt.Errorf("%s did not answer 200 within 30 s", url)
}

func withoutGatehouseEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GATEHOUSE_") {
			env = append(env, kv)
		}
	}
	return env
}
