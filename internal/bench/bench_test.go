package bench

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestClosedLoopCountsEveryRequest(t *testing.T) {
	var served atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := served.Add(1)
		if r.Header.Get("Cookie") == "" || r.Header.Get("X-Test") != "yes" {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		if n%10 == 0 {
			w.WriteHeader(http.StatusForbidden)
		}
	}))
	defer srv.Close()
	r, err := Run(context.Background(), Options{URL: srv.URL, Concurrency: 4, Requests: 500,
		Header: http.Header{"X-Test": {"yes"}}, Cookies: []string{"a=1", "a=2"}})
	if err != nil {
		t.Fatal(err)
	}
	if r.Requests != 500 || served.Load() != 500 || r.ByStatus[200] != 450 || r.ByStatus[403] != 50 || r.Errors != 0 {
		t.Fatalf("counted %+v for %d served", r, served.Load())
	}
	if !(r.P50 <= r.P90 && r.P90 <= r.P99 && r.P99 <= r.P999 && r.P999 <= r.Max && r.Max > 0) || r.RPS <= 0 {
		t.Fatalf("percentiles out of order: %+v", r)
	}
}

func TestOpenLoopKeepsTheRateAndCountsStallsFromTheirDueTime(t *testing.T) {
	var served atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if served.Add(1) == 5 {
			time.Sleep(300 * time.Millisecond) // one stall: later requests queue behind it
		}
	}))
	defer srv.Close()
	r, err := Run(context.Background(), Options{URL: srv.URL, Concurrency: 1, Requests: 50, Rate: 200})
	if err != nil {
		t.Fatal(err)
	}
	if r.Requests != 50 {
		t.Fatalf("sent %d of 50", r.Requests)
	}
	// Closed-loop measurement would see one slow request; from the due time, the
	// requests queued behind the stall are slow too.
	if r.P90 < 100*time.Millisecond {
		t.Fatalf("p90 %s hides the stall (coordinated omission)", r.P90)
	}
}

func TestTransportErrorsAreCounted(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	r, _ := Run(context.Background(), Options{URL: url, Requests: 3})
	if r.Errors != 3 || r.Requests != 0 {
		t.Fatalf("%+v", r)
	}
}

func TestProcReadings(t *testing.T) {
	rss, err := RSS(os.Getpid())
	if err != nil || rss < 1<<20 {
		t.Fatalf("RSS of this test: %d, %v", rss, err)
	}
	if _, err := CPUTime(os.Getpid()); err != nil {
		t.Fatal(err)
	}
	stop := PeakRSS(os.Getpid(), time.Millisecond)
	time.Sleep(5 * time.Millisecond)
	if peak := stop(); peak < rss/2 {
		t.Fatalf("peak RSS %d below current %d", peak, rss)
	}
	if _, err := RSS(1 << 30); err == nil {
		t.Fatal("RSS of a missing process")
	}
}

func TestInOrderVisitsEveryCookieOnce(t *testing.T) {
	seen := map[string]int{}
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen[r.Header.Get("Cookie")]++
		mu.Unlock()
	}))
	defer srv.Close()
	cookies := []string{"s=1", "s=2", "s=3", "s=4", "s=5"}
	if _, err := Run(context.Background(), Options{URL: srv.URL, Concurrency: 3, Requests: 10, Cookies: cookies, InOrder: true}); err != nil {
		t.Fatal(err)
	}
	for _, c := range cookies {
		if seen[c] != 2 {
			t.Fatalf("cookie visits: %v, want each twice", seen)
		}
	}
}
