// Package bench measures HTTP servers the same way whatever they are: a load generator
// (closed loop at fixed concurrency, or open loop at a fixed rate), exact latency
// percentiles, error counts by status, and the server process's memory and CPU time
// read from /proc; and the main config nginx runs with when started by hand from a
// folder (the suite's end-to-end scenario and the proxy tests). Gatehouse's benchmark
// suite is built on it, and it can point at any other forward-auth server for
// comparison.
package bench

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Options describe one load run.
type Options struct {
	URL         string
	Method      string      // default GET
	Header      http.Header // sent with every request
	Cookies     []string    // Cookie header values; each request picks one at random
	InOrder     bool        // pick Cookies in turn instead (each once per round)
	Concurrency int         // connections (and, closed loop, requests in flight)
	Duration    time.Duration
	Requests    int     // stop after this many requests (0: run for Duration)
	Rate        float64 // requests per second for an open loop; 0 for a closed loop
}

// Result is what a run measured. Latencies are exact (every sample kept).
type Result struct {
	Requests                 int
	Errors                   int         // transport errors (no HTTP status)
	ByStatus                 map[int]int // responses by status code
	Elapsed                  time.Duration
	RPS                      float64
	P50, P90, P99, P999, Max time.Duration
}

// String formats a result on one line.
func (r Result) String() string {
	return fmt.Sprintf("%d requests in %s: %.0f req/s, p50 %s p90 %s p99 %s p99.9 %s max %s, errors %d, statuses %v",
		r.Requests, r.Elapsed.Round(time.Millisecond), r.RPS, r.P50, r.P90, r.P99, r.P999, r.Max, r.Errors, r.ByStatus)
}

// Run sends load until Duration passes or Requests are sent, whichever is first.
// In an open loop each latency counts from when the request was due, not when it was
// sent, so a stalled server cannot hide its stall (no coordinated omission).
func Run(ctx context.Context, o Options) (Result, error) {
	if o.Concurrency <= 0 {
		o.Concurrency = 1
	}
	if o.Method == "" {
		o.Method = http.MethodGet
	}
	if o.Duration <= 0 && o.Requests <= 0 {
		o.Duration = 10 * time.Second
	}
	client := &http.Client{
		Transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
			MaxIdleConns:        o.Concurrency,
			MaxIdleConnsPerHost: o.Concurrency,
			MaxConnsPerHost:     o.Concurrency,
			DisableCompression:  true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       30 * time.Second,
	}
	defer client.CloseIdleConnections()
	if _, err := http.NewRequest(o.Method, o.URL, nil); err != nil {
		return Result{}, fmt.Errorf("bench: %w", err)
	}
	if o.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.Duration)
		defer cancel()
	}

	var (
		mu       sync.Mutex
		lat      []time.Duration
		byStatus = map[int]int{}
		errs     int
		budget   = make(chan struct{}, max(o.Requests, 1))
	)
	if o.Requests > 0 {
		for range o.Requests {
			budget <- struct{}{}
		}
		close(budget)
	}
	take := func() bool {
		if o.Requests <= 0 {
			return ctx.Err() == nil
		}
		_, ok := <-budget
		return ok && ctx.Err() == nil
	}
	var turn atomic.Int64
	pick := func(rng *rand.Rand) string {
		if o.InOrder {
			return o.Cookies[int(turn.Add(1)-1)%len(o.Cookies)]
		}
		return o.Cookies[rng.IntN(len(o.Cookies))]
	}
	one := func(due time.Time, rng *rand.Rand, local *[]time.Duration, status map[int]int, e *int) {
		req, _ := http.NewRequestWithContext(ctx, o.Method, o.URL, nil)
		for k, v := range o.Header {
			req.Header[k] = v
		}
		if h := o.Header.Get("Host"); h != "" {
			req.Host = h
		}
		if len(o.Cookies) > 0 {
			req.Header.Set("Cookie", pick(rng))
		}
		resp, err := client.Do(req)
		if err != nil {
			if ctx.Err() == nil {
				*e++
			}
			return
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		*local = append(*local, time.Since(due))
		status[resp.StatusCode]++
	}

	start := time.Now()
	var wg sync.WaitGroup
	work := make(chan time.Time, o.Concurrency*4)
	for w := range o.Concurrency {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), uint64(start.UnixNano())))
			var local []time.Duration
			status := map[int]int{}
			e := 0
			if o.Rate > 0 {
				for due := range work {
					one(due, rng, &local, status, &e)
				}
			} else {
				for take() {
					one(time.Now(), rng, &local, status, &e)
				}
			}
			mu.Lock()
			lat = append(lat, local...)
			for k, v := range status {
				byStatus[k] += v
			}
			errs += e
			mu.Unlock()
		})
	}
	if o.Rate > 0 {
		interval := time.Duration(float64(time.Second) / o.Rate)
		next := start
		for take() {
			if d := time.Until(next); d > 0 {
				time.Sleep(d)
			}
			select {
			case work <- next:
			case <-ctx.Done():
			}
			next = next.Add(interval)
		}
		close(work)
	}
	wg.Wait()
	elapsed := time.Since(start)

	slices.Sort(lat)
	r := Result{Requests: len(lat), Errors: errs, ByStatus: byStatus, Elapsed: elapsed}
	if len(lat) > 0 {
		r.RPS = float64(len(lat)) / elapsed.Seconds()
		q := func(p float64) time.Duration { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
		r.P50, r.P90, r.P99, r.P999, r.Max = q(0.50), q(0.90), q(0.99), q(0.999), lat[len(lat)-1]
	}
	return r, nil
}
