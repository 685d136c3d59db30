// Command gatehouse-bench measures forward-auth servers. `load` drives any HTTP target
// and reports throughput, latency percentiles, statuses, and the server's memory and
// CPU; `baseline` is the minimal net/http server every figure is compared with; `suite`
// runs Gatehouse's benchmark scenarios and writes a Markdown table.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/gatehouse-id/gatehouse/internal/bench"
)

const usage = `Usage:
  gatehouse-bench load -url URL [-c 64] [-d 10s | -n N] [-rate R] [-H 'Name: value']... [-cookie 'a=b']... [-pid PID]
  gatehouse-bench baseline -addr 127.0.0.1:8099 [-mode same|app]
  gatehouse-bench suite [-postgres URL] [-d 10s] [-rounds 5] [-out docs/benchmarks.md] [-no-wrk] [-no-pin]
`

// baselineEnv, when set, makes this process the baseline server at that address: the
// suite starts the baseline as a copy of itself, which also works from a test binary.
const baselineEnv = "GATEHOUSE_BENCH_BASELINE_ADDR"

// baselineModeEnv is that baseline's -mode.
const baselineModeEnv = "GATEHOUSE_BENCH_BASELINE_MODE"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	args := os.Args[1:]
	if addr := os.Getenv(baselineEnv); addr != "" {
		args = []string{"baseline", "-addr", addr, "-mode", os.Getenv(baselineModeEnv)}
	}
	if err := run(ctx, args, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "gatehouse-bench: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, out io.Writer) error {
	if len(args) == 0 {
		return errors.New("name a command\n" + usage)
	}
	switch args[0] {
	case "load":
		return load(ctx, args[1:], out)
	case "baseline":
		fs := flag.NewFlagSet("baseline", flag.ContinueOnError)
		addr := fs.String("addr", "127.0.0.1:8099", "listen address")
		mode := fs.String("mode", "", `"": a cookie check and one header; "same": Gatehouse's whole answer; "app": an app answering 200`)
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		switch *mode {
		case "", "same", "app":
		default:
			return fmt.Errorf("baseline: -mode %q is not one of \"\", same, app", *mode)
		}
		return serveBaseline(ctx, *addr, *mode)
	case "suite":
		return suite(ctx, args[1:], out)
	}
	return fmt.Errorf("unknown command %q\n%s", args[0], usage)
}

// serveBaseline is the reference every forward-auth figure is compared with: a bare
// net/http server that answers the same request with a cookie check and one header
// (Remote-User), 401 without the cookie. In mode "same" it sends Gatehouse's whole
// answer instead — the same ten headers, of the same sizes — which tells what net/http
// costs to write the identity-header contract apart from what Gatehouse adds; in mode
// "app" it is the app behind nginx in the end-to-end scenario, answering 200 and a
// short body to everything. /-/ready answers 200 in every mode.
func serveBaseline(ctx context.Context, addr, mode string) error {
	answer := http.Header{"Remote-User": {"alice"}}
	if mode == "same" {
		answer = http.Header{
			"Cache-Control": {"no-store"}, "Remote-Email": {""}, "Remote-Groups": {"Family"}, "Remote-Name": {"alice"},
			"Remote-User": {"alice"}, "X-Authentik-Email": {""}, "X-Authentik-Groups": {"Family"}, "X-Authentik-Name": {"alice"},
			"X-Authentik-Uid": {"0b2669cfab6d52c37081068957bae61f"}, "X-Authentik-Username": {"alice"},
		}
	}
	srv := &http.Server{Addr: addr, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/-/ready":
		case mode == "app":
			io.WriteString(w, "hello from the app\n")
		case !hasSessionCookie(r.Header.Get("Cookie")):
			w.WriteHeader(http.StatusUnauthorized)
		default:
			h := w.Header()
			for k, v := range answer {
				h[k] = v
			}
			w.WriteHeader(http.StatusOK)
		}
	})}
	go func() { <-ctx.Done(); srv.Close() }()
	if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// hasSessionCookie is the baseline's cookie check: a gatehouse_session cookie with a
// value of a session token's length.
func hasSessionCookie(header string) bool {
	for c := range strings.SplitSeq(header, ";") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(c), "gatehouse_session="); ok && len(v) == 43 {
			return true
		}
	}
	return false
}

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ", ") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func load(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	var headers, cookies listFlag
	o := bench.Options{Header: http.Header{}}
	fs.StringVar(&o.URL, "url", "", "target URL")
	fs.IntVar(&o.Concurrency, "c", 64, "connections")
	fs.DurationVar(&o.Duration, "d", 10*time.Second, "duration")
	fs.IntVar(&o.Requests, "n", 0, "requests (instead of a duration)")
	fs.Float64Var(&o.Rate, "rate", 0, "open loop: requests per second (0: closed loop)")
	fs.Var(&headers, "H", "request header 'Name: value' (repeatable)")
	fs.Var(&cookies, "cookie", "Cookie header value; each request picks one at random (repeatable)")
	pid := fs.Int("pid", 0, "server process to read RSS and CPU time of")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if o.URL == "" {
		return errors.New("load: -url is required")
	}
	if o.Requests > 0 {
		o.Duration = 0
	}
	for _, h := range headers {
		k, v, ok := strings.Cut(h, ":")
		if !ok {
			return fmt.Errorf("load: -H %q is not 'Name: value'", h)
		}
		o.Header.Add(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	o.Cookies = cookies
	var cpu0 time.Duration
	var peak func() int64
	if *pid > 0 {
		cpu0, _ = bench.CPUTime(*pid)
		peak = bench.PeakRSS(*pid, 100*time.Millisecond)
	}
	r, err := bench.Run(ctx, o)
	if err != nil {
		return err
	}
	fmt.Fprintln(out, r)
	if *pid > 0 {
		cpu1, _ := bench.CPUTime(*pid)
		fmt.Fprintf(out, "server: peak RSS %.1f MiB, CPU %s (%.1f µs per request)\n", mib(peak()), cpu1-cpu0,
			float64((cpu1-cpu0).Microseconds())/float64(max(r.Requests, 1)))
	}
	return nil
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }
