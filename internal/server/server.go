// Package server assembles a running Gatehouse from its config: it opens and migrates
// the store, builds the session manager, the forward-auth handler and the web pages,
// serves them with health and metrics endpoints, applies live config reloads, and runs
// the background work. cmd/gatehouse only parses flags and calls it.
package server

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gatehouse-id/gatehouse/internal/access"
	"github.com/gatehouse-id/gatehouse/internal/api"
	"github.com/gatehouse-id/gatehouse/internal/audit"
	"github.com/gatehouse-id/gatehouse/internal/authn"
	"github.com/gatehouse-id/gatehouse/internal/config"
	"github.com/gatehouse-id/gatehouse/internal/forwardauth"
	"github.com/gatehouse-id/gatehouse/internal/identity"
	"github.com/gatehouse-id/gatehouse/internal/kuberules"
	"github.com/gatehouse-id/gatehouse/internal/mail"
	"github.com/gatehouse-id/gatehouse/internal/metrics"
	"github.com/gatehouse-id/gatehouse/internal/oidc"
	"github.com/gatehouse-id/gatehouse/internal/session"
	"github.com/gatehouse-id/gatehouse/internal/store"
	"github.com/gatehouse-id/gatehouse/internal/store/sqlite"
	"github.com/gatehouse-id/gatehouse/internal/store/sqlstore"
	"github.com/gatehouse-id/gatehouse/internal/upstream"
	"github.com/gatehouse-id/gatehouse/internal/web"
	"github.com/gatehouse-id/gatehouse/internal/webhook"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// App is one running Gatehouse.
type App struct {
	Store    store.Store
	Sessions *session.Manager
	Metrics  *metrics.Metrics
	Log      *slog.Logger
	// Handler serves everything on server.address: pages, forward auth, OIDC, health.
	Handler http.Handler
	// MetricsHandler serves /metrics on its own listener (server.metrics_address).
	MetricsHandler http.Handler
	// OIDC is the OpenID Connect provider (its keys are managed by housekeeping).
	OIDC *oidc.Provider
	// Webhooks delivers events to the config's webhooks (started by StartBackground).
	Webhooks *webhook.Sender
	// Mail sends the outbox's mail through smtp (started by StartBackground).
	Mail *mail.Sender

	cfg       atomic.Pointer[config.Config]
	policy    atomic.Pointer[access.Policy]
	policyMu  sync.Mutex // serialises rebuilding the policy from the config and Kubernetes
	kube      *kuberules.Source
	kubeRules []access.Sourced // under policyMu: the last rules from Kubernetes
	logLevel  *slog.LevelVar
	web       *web.Server
	audit     *audit.Recorder
	directory *identity.Directory
	regulator *authn.Regulator
	requests  metrics.Counters[requestKey]

	shuttingDown atomic.Bool
	dbFailing    atomic.Int64 // unix nanoseconds of the first failed readiness check in a row; 0 when healthy
}

// NewLogger returns the JSON (or text) logger on w that cfg asks for, and its level,
// which a reload can change.
func NewLogger(cfg *config.Config, w io.Writer) (*slog.Logger, *slog.LevelVar) {
	level := new(slog.LevelVar)
	_ = level.UnmarshalText([]byte(cfg.Log.Level))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Log.Format == "text" {
		return slog.New(slog.NewTextHandler(w, opts)), level
	}
	return slog.New(slog.NewJSONHandler(w, opts)), level
}

// New opens and migrates the database and builds the app. The caller closes a.Store.
func New(ctx context.Context, cfg config.Config, log *slog.Logger, level *slog.LevelVar) (*App, error) {
	if cfg.Access.Kubernetes.Enabled { // a kubeconfig that cannot work stops the start before the database is touched
		if _, err := kuberules.RESTConfig(cfg.Access.Kubernetes); err != nil {
			return nil, err
		}
	}
	st, err := OpenStore(&cfg)
	if err != nil {
		return nil, err
	}
	a, err := newApp(ctx, st, cfg, log, level)
	if err != nil {
		st.Close()
		return nil, err
	}
	return a, nil
}

func newApp(ctx context.Context, st store.Store, cfg config.Config, log *slog.Logger, level *slog.LevelVar) (*App, error) {
	if pending, err := st.PendingMigrations(ctx); err != nil {
		return nil, err
	} else if len(pending) > 0 {
		log.Info("migrating the database schema (replicas starting together wait for one another)", "pending", pending)
	}
	applied, err := st.Migrate(ctx)
	if err != nil {
		return nil, err
	}
	if len(applied) > 0 {
		log.Info("database migrated", "applied", applied)
	}
	a := &App{Store: st, Log: log, logLevel: level}
	a.cfg.Store(&cfg)
	a.setPolicy(nil)
	if err := a.syncGroups(ctx, cfg); err != nil {
		return nil, err
	}

	key, err := ServerKey(ctx, st, &cfg, log)
	if err != nil {
		return nil, err
	}
	if err := sealTOTPSecrets(ctx, st, key.Sealer(web.TOTPSealPurpose), log); err != nil {
		return nil, err
	}

	a.Sessions = session.NewManager(st, session.Options{Lifetime: cfg.Session.Lifetime.D(),
		OutageGrace: cfg.Database.OutageGrace.D(), QueryTimeout: cfg.Database.RequestTimeout.D(),
		Prepare: forwardauth.PrepareIdentityHeaders}, log)
	a.Metrics = metrics.New(metrics.Sources{
		ActiveSessions: func() float64 { return float64(a.Sessions.ActiveSessions()) },
		CachedSessions: func() float64 { return float64(a.Sessions.CachedSessions()) },
		DBQueries:      func() float64 { return float64(st.QueryCount()) },
		FeedPosition:   func() float64 { return float64(a.Sessions.FeedPosition()) },
		Pool:           poolOf(st),
	})
	if cfg.Access.Kubernetes.Enabled {
		if a.kube, err = kuberules.NewSource(cfg.Access.Kubernetes, log, a.Metrics.Registry); err != nil {
			return nil, err
		}
		a.kube.Instance, _ = os.Hostname()
		a.kube.Options = func() kuberules.Options { return a.kubeOptions(ctx) }
		a.kube.Apply = func(c kuberules.Compiled) { a.setPolicy(&c.Rules) }
	}
	a.requests = metrics.Counters[requestKey]{Vec: a.Metrics.Requests, Labels: func(k requestKey) []string { return []string{k.route, strconv.Itoa(k.code)} }}
	a.audit = audit.NewRecorder(st, log, 4096, a.Metrics.AuditDropped.Inc)
	hasher := identity.NewHasher(0)
	a.regulator = &authn.Regulator{Store: st}
	a.directory = identity.NewDirectory(st, hasher, func() []string { return a.Config().Access.AdminGroups })
	a.directory.Applied = a.Sessions.Apply
	a.directory.Mail = mail.Composer{Config: a.Config}.Compose
	a.directory.SignUpGroups = func() ([]string, bool) { return a.Config().SignUp.Groups, a.Config().SignUp.Open }
	a.web = &web.Server{
		Store: st, Sessions: a.Sessions, Hasher: hasher, Directory: a.directory, Config: a.Config,
		Metrics: a.Metrics, Audit: a.audit.Record, Log: log, Regulator: a.regulator, Policy: a.policy.Load,
		Upstream: &upstream.Client{},
	}
	if a.kube != nil {
		a.web.Kubernetes = func() web.KubernetesStatus {
			synced, why := a.kube.Synced()
			st := web.KubernetesStatus{Synced: synced, Reason: why}
			for _, p := range a.kube.Current().Problems {
				st.Problems = append(st.Problems, p.String())
			}
			return st
		}
	}
	a.web.SetKey(key)
	a.OIDC = &oidc.Provider{
		Store: st, Config: a.Config, Hasher: hasher, Pages: a.web.OIDCPages(), Audit: a.audit.Record, Log: log,
		AdminGroups: func() []string { return a.Config().Access.AdminGroups }, Tokens: a.Metrics.OIDCTokens,
		Regulator: a.regulator,
	}
	a.OIDC.SetKey(key)
	a.Webhooks = &webhook.Sender{Store: st, Config: a.Config, Log: log, Holder: sqlstore.NewID()}
	a.Mail = &mail.Sender{Store: st, Config: a.Config, Log: log, Holder: sqlstore.NewID()}
	if err := a.OIDC.EnsureKey(ctx); err != nil {
		return nil, fmt.Errorf("OpenID Connect signing key: %w", err)
	}
	fa := &forwardauth.Handler{
		Policy: a.policy.Load, Sessions: a.Sessions, CookieName: cfg.Session.CookieName,
		LoginURL:    func(rd string) string { return web.LoginURL(a.Config().Server.PublicURL, rd) },
		StepUpURL:   func(rd string) string { return web.StepUpURL(a.Config().Server.PublicURL, rd) },
		RefusedURL:  func(rd string) string { return web.RefusedURL(a.Config().Server.PublicURL, rd) },
		RefusalPage: a.web.RefusalPage,
		Metrics:     a.Metrics, Audit: a.audit.Record, Log: log,
		Regulator: a.regulator, ClientAddress: a.web.OIDCPages().ClientAddress,
	}

	admin := &api.Handler{Store: st, Directory: a.directory, Policy: a.policy.Load, Regulator: a.regulator, Log: log,
		ClientAddress: a.web.OIDCPages().ClientAddress, PublicURL: func() string { return a.Config().Server.PublicURL },
		Provider: func(id string) bool { _, ok := a.Config().ProviderByID(id); return ok },
	}

	mux := http.NewServeMux()
	a.web.Routes(mux)
	a.OIDC.Routes(mux)
	admin.Routes(mux)
	// Proxies ask the forward-auth endpoints on every request: they are also found by
	// their exact path ahead of the mux (see instrument).
	exact := map[string]http.Handler{}
	handle := func(path string, h http.Handler) { mux.Handle(path, h); exact[path] = h }
	handle("/api/authz/forward-auth", fa.Serve(forwardauth.ForwardAuth))
	handle("/api/authz/auth-request", fa.Serve(forwardauth.AuthRequest))
	// Authelia's legacy endpoint: nginx asks it without rd and wants 401; Traefik and
	// Caddy ask it with ?rd=(the portal) and want a redirect to sign in.
	verifyRedirect, verifyStatus := fa.Serve(forwardauth.ForwardAuth), fa.Serve(forwardauth.AuthRequest)
	handle("/api/verify", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Has("rd") {
			verifyRedirect.ServeHTTP(w, r)
			return
		}
		verifyStatus.ServeHTTP(w, r)
	}))
	mux.Handle(forwardauth.ExtAuthzPrefix+"/", fa.Serve(forwardauth.ExtAuthz))
	mux.Handle(forwardauth.ExtAuthzPrefix, fa.Serve(forwardauth.ExtAuthz))
	handle("/outpost.goauthentik.io/auth/traefik", fa.Serve(forwardauth.ForwardAuth))
	handle("/outpost.goauthentik.io/auth/caddy", fa.Serve(forwardauth.ForwardAuth))
	handle("/outpost.goauthentik.io/auth/nginx", fa.Serve(forwardauth.AuthRequest))
	mux.Handle(forwardauth.AuthentikExtAuthzPrefix, fa.Serve(forwardauth.ExtAuthz))
	mux.Handle(forwardauth.AuthentikExtAuthzPrefix+"/", fa.Serve(forwardauth.ExtAuthz))
	mux.HandleFunc("GET /-/health/live/", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	mux.HandleFunc("GET /-/health/ready/", a.ready)
	a.Handler = a.instrument(mux, exact)
	metricsMux := http.NewServeMux()
	metricsMux.Handle("GET /metrics", promhttp.HandlerFor(a.Metrics.Registry, promhttp.HandlerOpts{}))
	a.MetricsHandler = metricsMux
	return a, nil
}

// Config returns the live config.
func (a *App) Config() *config.Config { return a.cfg.Load() }

// Directory returns the user and group administration service.
func (a *App) Directory() *identity.Directory { return a.directory }

// Reload applies a new valid config: rules, admin groups, declared groups and the log
// level change at once; in-flight requests finish on the rules they started with.
func (a *App) Reload(ctx context.Context, cfg config.Config) error {
	old := a.Config()
	// Never lock the owner out by editing a file: if someone holds admin rights now,
	// someone must hold them under the new admin groups too.
	before, err := a.directory.AdminUserIDs(ctx)
	if err != nil {
		return err
	}
	next := &identity.Directory{Store: a.Store, AdminGroups: func() []string { return cfg.Access.AdminGroups }}
	after, err := next.AdminUserIDs(ctx)
	if err != nil {
		return err
	}
	if len(before) > 0 && len(after) == 0 {
		return fmt.Errorf("access.admin_groups %q: no enabled user is in these groups, so the change would lock every admin out; "+
			"add an admin to one of them first (gatehouse group members add)", cfg.Access.AdminGroups)
	}
	if err := a.syncGroups(ctx, cfg); err != nil {
		return err
	}
	// Keys that need a restart keep their running values.
	cfg.Server, cfg.Database, cfg.Session, cfg.Log.Format = old.Server, old.Database, old.Session, old.Log.Format
	cfg.Access.Kubernetes = old.Access.Kubernetes
	_ = a.logLevel.UnmarshalText([]byte(cfg.Log.Level))
	a.policyMu.Lock()
	a.cfg.Store(&cfg)
	a.policyMu.Unlock()
	a.setPolicy(nil)
	return nil
}

// setPolicy compiles the policy from the live config's rules followed by the rules
// from Kubernetes: kube when the watch has new ones, else the last ones.
func (a *App) setPolicy(kube *[]access.Sourced) {
	a.policyMu.Lock()
	defer a.policyMu.Unlock()
	if kube != nil {
		a.kubeRules = *kube
	}
	a.policy.Store(access.NewPolicy(a.Config().Access, a.kubeRules...))
}

// kubeOptions is how annotations are read now: the groups that exist (nil when the
// database cannot say, so that nothing is refused for it) and the cookie domain.
func (a *App) kubeOptions(ctx context.Context) kuberules.Options {
	cfg := a.Config()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.Database.RequestTimeout.D())
	defer cancel()
	names, err := GroupNames(ctx, a.Store)
	if err != nil {
		names = nil
	}
	return kuberules.OptionsFor(cfg, names)
}

func (a *App) syncGroups(ctx context.Context, cfg config.Config) error {
	parents := map[string]string{}
	for _, g := range cfg.Groups {
		parents[g.Name] = g.Parent
	}
	if err := a.Store.SyncConfigGroups(ctx, parents); err != nil {
		return fmt.Errorf("creating the groups declared in config: %w", err)
	}
	if err := a.Store.AppendChange(ctx, store.ChangeAll, ""); err != nil {
		return err
	}
	a.lint(ctx, &cfg)
	return nil
}

// lint logs what in cfg cannot work (config.Lint), against the groups that exist.
func (a *App) lint(ctx context.Context, cfg *config.Config) {
	names, err := GroupNames(ctx, a.Store)
	if err != nil {
		a.Log.Warn("checking the config against the database's groups failed", "error", err.Error())
	}
	users, _ := a.Store.ListUsersAfter(ctx, "", 1)
	for _, w := range config.Lint(cfg, names, len(users) > 0) {
		a.Log.Warn("config: "+w.Message, "key", w.Key)
	}
}

// GroupNames lists the names of every group in the store.
func GroupNames(ctx context.Context, st store.Store) ([]string, error) {
	groups, err := st.ListGroups(ctx)
	if err != nil {
		return nil, err
	}
	names := []string{}
	for _, g := range groups {
		names = append(names, g.Name)
	}
	return names, nil
}

// ready is 200 when the database answers and carries this binary's schema. A database
// that stopped answering only makes the replica unready after database.unready_after:
// every replica shares the database, so a short failover should not empty the load
// balancer, and cached sessions keep passing meanwhile. Shutting down is unready at once.
func (a *App) ready(w http.ResponseWriter, r *http.Request) {
	if a.shuttingDown.Load() {
		http.Error(w, "not ready: shutting down", http.StatusServiceUnavailable)
		return
	}
	if a.kube != nil {
		if ok, why := a.kube.Synced(); !ok {
			http.Error(w, "not ready: "+why, http.StatusServiceUnavailable)
			return
		}
	}
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	err := a.Store.Ping(ctx)
	if err == nil {
		if s, ok := a.Store.(*sqlstore.Store); ok {
			if err = s.CheckSchema(ctx); err != nil {
				http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
				return
			}
		}
		a.dbFailing.Store(0)
		io.WriteString(w, "ok\n")
		return
	}
	a.dbFailing.CompareAndSwap(0, time.Now().UnixNano())
	down := time.Since(time.Unix(0, a.dbFailing.Load()))
	if down < a.Config().Database.UnreadyAfter.D() {
		fmt.Fprintf(w, "ok (database unreachable for %s: %v)\n", down.Round(time.Second), err)
		return
	}
	http.Error(w, fmt.Sprintf("not ready: database unreachable for %s: %v", down.Round(time.Second), err), http.StatusServiceUnavailable)
}

// statusWriter remembers the status code for the request metrics.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// instrument counts requests by route and turns a panic into a plain 500 (logged with
// its cause), never a stack trace to the client. A request for one of exact's paths,
// spelled exactly (nothing escaped), goes straight to its handler: the mux would pick
// the same one after walking its patterns, at two allocations a request; any other
// spelling still goes to the mux, which cleans, redirects or refuses it as before.
func (a *App) instrument(mux *http.ServeMux, exact map[string]http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := statusWriters.Get().(*statusWriter)
		*sw = statusWriter{ResponseWriter: w}
		defer func() { // last, once every deferred use of sw below is done
			*sw = statusWriter{}
			statusWriters.Put(sw)
		}()
		var next http.Handler = mux
		if h, ok := exact[r.URL.Path]; ok && r.URL.RawPath == "" {
			next, r.Pattern = h, r.URL.Path
		} else {
			// Every request's database work is bounded (database.request_timeout),
			// except forward auth, whose only database work — a session missing from
			// the cache — the session manager bounds itself, sparing the cached check a
			// timer.
			if !forwardAuthPath(r.URL.Path) {
				ctx, cancel := context.WithTimeout(r.Context(), a.Config().Database.RequestTimeout.D())
				defer func() {
					if errors.Is(ctx.Err(), context.DeadlineExceeded) && sw.code == http.StatusServiceUnavailable {
						a.Metrics.RequestTimeouts.Inc()
					}
					cancel()
				}()
				r = r.WithContext(ctx)
			}
		}
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				a.Log.Error("request handler panicked", "path", r.URL.Path, "panic", fmt.Sprint(v))
				if sw.code == 0 {
					http.Error(sw, "gatehouse: internal error; the log says more", http.StatusInternalServerError)
				}
			}
			route := r.Pattern
			if route == "" || route == "/" { // "/" is the not-found page's catch-all
				route = "unmatched"
			}
			a.requests.Inc(requestKey{route, sw.code})
		}()
		next.ServeHTTP(sw, r)
	})
}

// statusWriters are reused across requests: no handler keeps its ResponseWriter past
// its return, and the forward-auth check would otherwise allocate one per request.
var statusWriters = sync.Pool{New: func() any { return new(statusWriter) }}

// requestKey is a request's metric labels: its route and status.
type requestKey struct {
	route string
	code  int
}

// forwardAuthPath reports whether a path is one of the forward-auth endpoints.
func forwardAuthPath(p string) bool {
	return strings.HasPrefix(p, "/api/authz/") || strings.HasPrefix(p, "/outpost.goauthentik.io/auth/") || p == "/api/verify"
}

// HTTPServer returns the http.Server Gatehouse runs with: bounded header size (a 100 KiB
// cookie gets 431, not a slow path) and timeouts against slow clients.
func (a *App) HTTPServer() *http.Server { return httpServer(a.Handler, a.Log) }

func httpServer(h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

// serve runs the background work beside srv (already serving) until ctx ends. Then it
// reports unready, keeps serving for server.shutdown_delay so load balancers take it
// out of rotation, drains in-flight requests for up to server.drain_time, and stops the
// background work.
func (a *App) serve(ctx context.Context, srv *http.Server, errc <-chan error) error {
	stopBG := a.StartBackground(ctx)
	var err error
	select {
	case err = <-errc:
	case <-ctx.Done():
		cfg := a.Config().Server
		a.shuttingDown.Store(true)
		a.Log.Info("shutting down: now unready", "shutdown_delay", cfg.ShutdownDelay.String(), "drain_time", cfg.DrainTime.String())
		time.Sleep(cfg.ShutdownDelay.D())
		sctx, cancel := context.WithTimeout(context.Background(), cfg.DrainTime.D())
		err = srv.Shutdown(sctx)
		cancel()
	}
	stopBG()
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// StartBackground starts the background work — the session change feed and last-seen
// writes, the audit writer and the audit log's outbox reader, webhook deliveries,
// housekeeping — and returns a function that stops it and waits. It outlives ctx's cancellation so that Serve can drain requests first.
func (a *App) StartBackground(ctx context.Context) (stop func()) {
	bg, cancel := context.WithCancel(context.WithoutCancel(ctx))
	if w, ok := a.Store.(interface{ Warm(context.Context) error }); ok {
		go func() {
			if err := w.Warm(bg); err != nil && bg.Err() == nil {
				a.Log.Warn("database: "+err.Error(), "effect", "the first requests open their own connections")
			}
		}()
	}
	auditLog := &audit.Logger{Store: a.Store, Log: a.Log}
	runs := []func(context.Context){a.Sessions.Run, a.audit.Run, auditLog.Run, a.Webhooks.Run, a.Mail.Run, a.housekeeping, a.logouts, a.checkpoints}
	if a.kube != nil {
		runs = append(runs, a.kube.Run)
	}
	done := make(chan struct{}, len(runs))
	for _, run := range runs {
		go func() { run(bg); done <- struct{}{} }()
	}
	return func() {
		cancel()
		for range runs {
			<-done
		}
	}
}

// logoutPoll is how often a replica looks for back-channel logouts that are due: how
// long, at most, an app hears of a sign-in's end after it.
const logoutPoll = 2 * time.Second

// logouts delivers the OpenID Connect back-channel logouts of sign-ins that ended,
// while any client asks for them.
func (a *App) logouts(ctx context.Context) {
	t := time.NewTicker(logoutPoll)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !a.OIDC.WantsLogouts() {
			continue
		}
		err := a.OIDC.DeliverLogouts(ctx)
		if err != nil && ctx.Err() == nil && !failing {
			a.Log.Warn("looking for back-channel logouts failed; trying again every 2 s", "error", err.Error())
		}
		failing = err != nil
	}
}

// checkpointEvery is how often an SQLite database's write-ahead log is copied into the
// main file: a small installation may never fill the log to SQLite's own threshold.
const checkpointEvery = time.Minute

// checkpoints keeps an SQLite file close to everything committed (PostgreSQL: nothing).
func (a *App) checkpoints(ctx context.Context) {
	if _, ok := a.Config().SQLitePath(); !ok {
		return
	}
	db, ok := a.Store.(interface{ DB() *sql.DB })
	if !ok {
		return
	}
	t := time.NewTicker(checkpointEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := sqlite.Checkpoint(ctx, db.DB()); err != nil && ctx.Err() == nil {
				a.Log.Warn("checkpointing the SQLite write-ahead log failed; it is tried again in a minute", "error", err.Error())
			}
		}
	}
}

// housekeepingEvery is how often the lease holder bounds the tables; the lease lasts a
// little longer, so a dead holder's work moves to another replica within one period.
const housekeepingEvery = 10 * time.Minute

// housekeeping bounds every table that grows: expired sessions, change-feed rows older
// than an hour, audit events beyond database.keep_audit_events, spent WebAuthn
// challenges, expired OpenID Connect tokens, ended throttle windows and day-old API
// idempotency keys; it also rotates and retires the OpenID
// Connect signing keys. One replica at a time does it, under the "housekeeping" lease.
func (a *App) housekeeping(ctx context.Context) {
	holder := sqlstore.NewID()
	defer func() { // handing the lease on early is a courtesy: never wait long for it
		last, cancel := context.WithTimeout(context.WithoutCancel(ctx), session.ShutdownWriteTimeout)
		defer cancel()
		a.Store.ReleaseLease(last, "housekeeping", holder)
	}()
	t := time.NewTicker(housekeepingEvery)
	defer t.Stop()
	for {
		if held, err := a.Store.TakeLease(ctx, "housekeeping", holder, housekeepingEvery+time.Minute); err != nil || !held {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				continue
			}
		}
		now := time.Now()
		_, err1 := a.Store.DeleteExpiredSessions(ctx, now)
		_, err2 := a.Store.PruneChanges(ctx, now.Add(-time.Hour))
		_, err3 := a.Store.PruneEvents(ctx, a.Config().Database.KeepAuditEvents)
		_, err4 := a.Store.DeleteSpentChallenges(ctx, now)
		_, err5 := a.Store.DeleteExpiredOIDCTokens(ctx, now)
		err6 := a.OIDC.MaintainKeys(ctx)
		_, err7 := a.regulator.Sweep(ctx)
		_, err8 := a.Store.DeleteOldIdempotency(ctx, now.Add(-api.IdempotencyRetention))
		if err := errors.Join(err1, err2, err3, err4, err5, err6, err7, err8); err != nil && ctx.Err() == nil {
			a.Log.Warn("housekeeping failed; it runs again in 10 minutes", "error", err.Error())
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// PrintSetupLink prints a one-time link for creating the first admin when there is
// none, on w (standard error) where the person starting Gatehouse sees it.
func (a *App) PrintSetupLink(ctx context.Context, w io.Writer) error {
	link, err := a.web.IssueSetupLink(ctx)
	if err != nil || link == "" {
		return err
	}
	a.Log.Info("no admin exists yet: a one-time setup link was printed", "valid_for", web.SetupLinkLifetime.String())
	fmt.Fprintf(w, "\n  Gatehouse has no admin yet. Open this one-time link within %s to create one:\n\n    %s\n\n",
		"24 hours", link)
	if why := a.whyNoAdmin(ctx); why != "" {
		fmt.Fprintf(w, "  %s\n\n", why)
		a.Log.Warn(why)
	}
	return nil
}

// whyNoAdmin explains a setup link printed although users exist.
func (a *App) whyNoAdmin(ctx context.Context) string {
	return NoAdminReason(ctx, a.Store, a.Config().Access.AdminGroups)
}

// NoAdminReason explains why no enabled user is an admin under adminGroups although
// users exist — usually the admin groups in the config are not the groups the admins
// are in — or returns "" when someone is an admin, or nobody exists yet (the setup link
// is for that). serve --check-config and the setup link both say it.
func NoAdminReason(ctx context.Context, st store.Store, adminGroups []string) string {
	admins, err := identity.NewDirectory(st, nil, func() []string { return adminGroups }).AdminUserIDs(ctx)
	if err != nil || len(admins) > 0 {
		return ""
	}
	users, err := st.ListUsers(ctx)
	if err != nil || len(users) == 0 {
		return ""
	}
	groups, err := st.ListGroups(ctx)
	if err != nil {
		return ""
	}
	var withMembers []string
	for _, g := range groups {
		if ids, err := st.GroupMemberIDs(ctx, g.ID); err == nil && len(ids) > 0 {
			withMembers = append(withMembers, fmt.Sprintf("%q (%d)", g.Name, len(ids)))
		}
	}
	return fmt.Sprintf("There are %d users, but none is an enabled member of access.admin_groups %q. Groups with members: %s. "+
		"Add an admin to one of the admin groups (gatehouse group members add), or name their group in access.admin_groups.",
		len(users), adminGroups, strings.Join(withMembers, ", "))
}

// poolOf returns the store's connection pool, for the pool metrics.
func poolOf(st store.Store) *sql.DB {
	if s, ok := st.(*sqlstore.Store); ok {
		return s.DB()
	}
	return nil
}
