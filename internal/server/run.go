package server

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gatehouse-id/gatehouse/internal/config"
	"github.com/gatehouse-id/gatehouse/internal/store"
	"github.com/gatehouse-id/gatehouse/internal/store/postgres"
)

// Run opens and migrates the database, then listens on server.address and serves the
// whole app until ctx ends and drains. The serving listener opens only once the app can
// answer: until then a proxy's connection is refused, which every proxy retries on
// another replica (a 503 from a starting replica would reach the visitor). Meanwhile
// the metrics listener, when there is one, answers liveness 200 and readiness 503 with
// the reason, so a replica waiting for another's migration or for PostgreSQL to come
// back is neither sent traffic nor killed: it never crash-loops. A database newer than
// this binary still ends Run at once, writing nothing. started is called once the app
// is up (to print the setup link, watch the config); metrics, when not nil, is
// server.metrics_address's listener: /metrics is served there and nowhere else.
func Run(ctx context.Context, cfg config.Config, log *slog.Logger, level *slog.LevelVar, listen func() (net.Listener, error), metrics net.Listener, started func(*App) error) error {
	boot := &booting{}
	boot.status.Store("opening the database")
	if metrics != nil {
		msrv := httpServer(boot.metricsHandler(), log)
		go msrv.Serve(metrics)
		defer msrv.Close()
	}
	app, err := openWaiting(ctx, cfg, log, level, boot)
	if err == nil {
		err = started(app)
	}
	var ln net.Listener
	if err == nil {
		ln, err = listen()
	}
	if err != nil {
		if app != nil {
			app.Store.Close()
		}
		return err
	}
	defer app.Store.Close()
	boot.app.Store(app)
	srv := app.HTTPServer()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.Info("gatehouse is serving", "address", ln.Addr().String())
	return app.serve(ctx, srv, errc)
}

// openWaiting builds the app, retrying while PostgreSQL is unreachable or another
// replica holds the migration lock. Mistakes that waiting cannot fix end it at once:
// a newer schema, a malformed URL, or a SQLite file (no other replica to wait for).
func openWaiting(ctx context.Context, cfg config.Config, log *slog.Logger, level *slog.LevelVar, boot *booting) (*App, error) {
	_, isSQLite := cfg.SQLitePath()
	if !isSQLite {
		if err := postgres.CheckURL(cfg.Database.URL); err != nil {
			return nil, err
		}
	}
	wait := time.Second
	for {
		app, err := New(ctx, cfg, log, level)
		if err == nil || isSQLite || errors.Is(err, store.ErrSchemaTooNew) || errors.Is(err, errKeyConfig) || ctx.Err() != nil {
			return app, err
		}
		boot.status.Store("waiting for the database: " + err.Error())
		log.Warn("waiting for the database; live but not ready meanwhile", "retry_in", wait.String(), "error", err.Error())
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, 10*time.Second)
	}
}

// booting answers the metrics listener: health while the app is not built yet, then
// the app's health and metrics.
type booting struct {
	app    atomic.Pointer[App]
	status atomic.Value // string: what start-up is waiting for
}

func (b *booting) metricsHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		app := b.app.Load()
		switch {
		case app != nil && strings.HasPrefix(r.URL.Path, "/-/health/"):
			app.Handler.ServeHTTP(w, r)
		case app != nil:
			app.MetricsHandler.ServeHTTP(w, r)
		case r.URL.Path == "/-/health/live/":
			w.Write([]byte("ok (starting)\n"))
		default:
			w.Header().Set("Retry-After", "1")
			http.Error(w, "not ready: gatehouse is starting: "+b.status.Load().(string), http.StatusServiceUnavailable)
		}
	})
}
