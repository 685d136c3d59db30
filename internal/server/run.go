package server

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/gatehouse-id/gatehouse/internal/config"
	"github.com/gatehouse-id/gatehouse/internal/store"
	"github.com/gatehouse-id/gatehouse/internal/store/postgres"
)

// Run serves on ln at once, then opens and migrates the database, then serves the
// whole app until ctx ends and drains. While starting, liveness answers 200 and
// readiness 503 with the reason, so a replica waiting for another's migration or for
// PostgreSQL to come back is neither sent traffic nor killed: it never crash-loops.
// A database newer than this binary still ends Run at once, writing nothing.
// started is called once the app is up (to print the setup link, watch the config).
// metrics, when not nil, is server.metrics_address's listener: /metrics is served there
// and nowhere else.
func Run(ctx context.Context, cfg config.Config, log *slog.Logger, level *slog.LevelVar, ln, metrics net.Listener, started func(*App) error) error {
	boot := &booting{}
	boot.status.Store("opening the database")
	srv := httpServer(boot, log)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	if metrics != nil {
		msrv := httpServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if app := boot.app.Load(); app != nil {
				app.MetricsHandler.ServeHTTP(w, r)
				return
			}
			http.Error(w, "gatehouse is starting", http.StatusServiceUnavailable)
		}), log)
		go msrv.Serve(metrics)
		defer msrv.Close()
	}

	app, err := openWaiting(ctx, cfg, log, level, boot)
	if err == nil {
		err = started(app)
	}
	if err != nil {
		srv.Close()
		if app != nil {
			app.Store.Close()
		}
		return err
	}
	defer app.Store.Close()
	boot.app.Store(app)
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

// booting answers while the app is not built yet, then hands every request to it.
type booting struct {
	app    atomic.Pointer[App]
	status atomic.Value // string: what start-up is waiting for
}

func (b *booting) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if app := b.app.Load(); app != nil {
		app.Handler.ServeHTTP(w, r)
		return
	}
	if r.URL.Path == "/-/health/live/" {
		w.Write([]byte("ok (starting)\n"))
		return
	}
	w.Header().Set("Retry-After", "1")
	http.Error(w, "not ready: gatehouse is starting: "+b.status.Load().(string), http.StatusServiceUnavailable)
}
