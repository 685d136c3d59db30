package main

import (
	"context"
	"fmt"
	"net/http"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"time"

	"github.com/gatehouse-id/gatehouse/internal/bench"
)

// Cores the suite pins to when the machine has two or more: every server under test
// (and nginx, and the app behind it) shares serverCPU, the load generator has
// generatorCPU to itself, so a server's throughput is what one core gives it and the
// generator never takes that core's time.
const (
	serverCPU    = "0"
	generatorCPU = "1"
)

// placement says where the suite's processes run and what drives the load.
type placement struct {
	pinned bool   // servers on serverCPU, the generator on generatorCPU
	wrk    string // wrk's path; "" drives load with bench.Run (which does not saturate a baseline on one core)
}

// generatorName is what the table says drove a stateless scenario.
func (p placement) generatorName() string {
	if p.wrk != "" {
		return "wrk"
	}
	return "gatehouse-bench load"
}

// serverCommand runs name pinned to the servers' core when the suite pins.
func (p placement) serverCommand(ctx context.Context, name string, args ...string) *exec.Cmd {
	if p.pinned {
		return exec.CommandContext(ctx, "taskset", append([]string{"-c", serverCPU, name}, args...)...)
	}
	return exec.CommandContext(ctx, name, args...)
}

// closedLoop measures url at conns connections for d: with wrk on its own core when
// there is one, else with bench.Run.
func (p placement) closedLoop(ctx context.Context, url string, hdr http.Header, cookie string, conns int, d time.Duration) (bench.Result, error) {
	if p.wrk == "" {
		o := bench.Options{URL: url, Header: hdr, Concurrency: conns, Duration: d}
		if cookie != "" {
			o.Cookies = []string{cookie}
		}
		return bench.Run(ctx, o)
	}
	args := []string{"-t1", "-c" + strconv.Itoa(conns), "-d" + wrkDuration(d), "--latency", "--timeout", "10s"}
	keys := make([]string, 0, len(hdr))
	for k := range hdr {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		for _, v := range hdr[k] {
			args = append(args, "-H", k+": "+v)
		}
	}
	if cookie != "" {
		args = append(args, "-H", "Cookie: "+cookie)
	}
	args = append(args, url)
	name := p.wrk
	if p.pinned {
		args = append([]string{"-c", generatorCPU, p.wrk}, args...)
		name = "taskset"
	}
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return bench.Result{}, fmt.Errorf("wrk %s: %v\n%s", url, err, out)
	}
	return parseWrk(string(out))
}

// wrkDuration spells d for wrk, which takes whole seconds: shorter runs take one.
func wrkDuration(d time.Duration) string {
	return strconv.Itoa(max(int((d+time.Second-1)/time.Second), 1)) + "s"
}

var (
	wrkCount     = regexp.MustCompile(`(?m)^\s*(\d+) requests in ([0-9.]+)(us|ms|s|m)\b`)
	wrkRate      = regexp.MustCompile(`(?m)^Requests/sec:\s+([0-9.]+)`)
	wrkLatency   = regexp.MustCompile(`(?m)^\s+Latency\s+\S+\s+\S+\s+([0-9.]+)(us|ms|s|m)\b`)
	wrkPercent   = regexp.MustCompile(`(?m)^\s+(50|90|99)(?:\.000)?%\s+([0-9.]+)(us|ms|s|m)\s*$`)
	wrkNon2xx    = regexp.MustCompile(`(?m)^\s*Non-2xx or 3xx responses: (\d+)`)
	wrkSocketErr = regexp.MustCompile(`(?m)^\s*Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
)

// parseWrk reads wrk --latency's report: requests, rate, median/p90/p99 and maximum
// latency, non-2xx/3xx answers (filed under wrkNonSuccess, since wrk does not say which
// statuses they were) and socket errors.
func parseWrk(out string) (bench.Result, error) {
	m := wrkCount.FindStringSubmatch(out)
	rate := wrkRate.FindStringSubmatch(out)
	if m == nil || rate == nil {
		return bench.Result{}, fmt.Errorf("wrk's report has no request count or rate:\n%s", out)
	}
	var r bench.Result
	r.Requests, _ = strconv.Atoi(m[1])
	r.Elapsed = wrkTime(m[2], m[3])
	r.RPS, _ = strconv.ParseFloat(rate[1], 64)
	if l := wrkLatency.FindStringSubmatch(out); l != nil {
		r.Max = wrkTime(l[1], l[2])
	}
	for _, p := range wrkPercent.FindAllStringSubmatch(out, -1) {
		d := wrkTime(p[2], p[3])
		switch p[1] {
		case "50":
			r.P50 = d
		case "90":
			r.P90 = d
		case "99":
			r.P99 = d
		}
	}
	r.ByStatus = map[int]int{}
	bad := 0
	if n := wrkNon2xx.FindStringSubmatch(out); n != nil {
		bad, _ = strconv.Atoi(n[1])
		r.ByStatus[wrkNonSuccess] = bad
	}
	r.ByStatus[http.StatusOK] = r.Requests - bad
	if s := wrkSocketErr.FindStringSubmatch(out); s != nil {
		for _, v := range s[1:] {
			n, _ := strconv.Atoi(v)
			r.Errors += n
		}
	}
	return r, nil
}

// wrkNonSuccess is the status the suite files wrk's "Non-2xx or 3xx responses" under.
const wrkNonSuccess = 599

func wrkTime(num, unit string) time.Duration {
	f, _ := strconv.ParseFloat(num, 64)
	scale := map[string]time.Duration{"us": time.Microsecond, "ms": time.Millisecond, "s": time.Second, "m": time.Minute}[unit]
	return time.Duration(f * float64(scale))
}

// serverCPUShare is how much of one core pids used together while run ran: a
// reference below saturated was held back by its load generator, and ratios to it
// would flatter.
func serverCPUShare(pids []int, run func() error) (float64, error) {
	cpu := func() (time.Duration, error) {
		var total time.Duration
		for _, pid := range pids {
			t, err := bench.CPUTime(pid)
			if err != nil {
				return 0, err
			}
			total += t
		}
		return total, nil
	}
	cpu0, err := cpu()
	if err != nil {
		return 0, err
	}
	t0 := time.Now()
	if err := run(); err != nil {
		return 0, err
	}
	cpu1, err := cpu()
	if err != nil {
		return 0, err
	}
	return float64(cpu1-cpu0) / float64(time.Since(t0)), nil
}

// saturated is the share of its core the baseline must use for a ratio to be reported.
const saturated = 0.9
