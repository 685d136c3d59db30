// Package metrics owns Gatehouse's Prometheus metrics. Every duration is in seconds and
// every size in bytes, as Prometheus expects; names start with gatehouse_.
package metrics

import (
	"database/sql"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics holds the collectors the rest of Gatehouse updates.
type Metrics struct {
	Registry *prometheus.Registry

	// Requests counts HTTP requests by route pattern and status code.
	Requests *prometheus.CounterVec
	// Decisions counts forward-auth answers by result: allow, login, step_up, deny,
	// bad_request (a header the proxy sent wrongly), refused_target (a path apps read
	// differently, see access.CheckPath) and error.
	Decisions *prometheus.CounterVec
	// RuleDecisions counts the policy's decisions by result and deciding rule: where
	// the rule is defined (config, kubernetes, or none for default deny) and its id
	// (access.rules[2], kubernetes:host/path). The label values are bounded by the
	// rules, not by the requests.
	RuleDecisions *prometheus.CounterVec
	// DecisionSeconds is the time to answer a forward-auth check.
	DecisionSeconds prometheus.Histogram
	// Logins counts login attempts by result: success, failure, throttled, error.
	Logins *prometheus.CounterVec
	// RequestTimeouts counts requests whose database work ran past
	// database.request_timeout and were answered 503.
	RequestTimeouts prometheus.Counter
	// AuditDropped counts audit events dropped because the writer fell behind.
	AuditDropped prometheus.Counter
	// OIDCTokens counts token endpoint answers by grant type and result: issued,
	// refused (an OAuth error the client caused) or error (Gatehouse's fault).
	OIDCTokens *prometheus.CounterVec
}

// Sources reports values that other packages own, read when Prometheus scrapes.
type Sources struct {
	ActiveSessions func() float64 // unexpired sessions in the database
	CachedSessions func() float64 // sessions in this replica's cache
	DBQueries      func() float64 // statements sent to the database
	// FeedPosition is the newest change-feed row this replica has applied: replicas
	// that differ for long point at one that stopped following the feed.
	FeedPosition func() float64
	Pool         *sql.DB // the connection pool, when the store has one
}

// New registers Gatehouse's collectors, the Go runtime's and the process's, and the
// database connection pool's.
func New(src Sources) *Metrics {
	r := prometheus.NewRegistry()
	m := &Metrics{
		Registry: r,
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_http_requests_total", Help: "HTTP requests answered, by route and status code.",
		}, []string{"route", "code"}),
		Decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_forward_auth_decisions_total", Help: "Forward-auth answers by result.",
		}, []string{"result"}),
		RuleDecisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_forward_auth_rule_decisions_total", Help: "Forward-auth decisions by result and deciding rule (from: config, kubernetes or none).",
		}, []string{"result", "from", "rule"}),
		DecisionSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "gatehouse_forward_auth_decision_duration_seconds", Help: "Time to answer a forward-auth check, in seconds.",
			Buckets: []float64{0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1},
		}),
		Logins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_login_attempts_total", Help: "Login attempts by result.",
		}, []string{"result"}),
		RequestTimeouts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gatehouse_request_database_timeouts_total", Help: "Requests answered 503 because their database work ran past database.request_timeout.",
		}),
		AuditDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gatehouse_audit_events_dropped_total", Help: "Audit events dropped because the database writer fell behind.",
		}),
		OIDCTokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_oidc_token_requests_total", Help: "OpenID Connect token endpoint answers, by grant type and result.",
		}, []string{"grant_type", "result"}),
	}
	r.MustRegister(m.Requests, m.Decisions, m.RuleDecisions, m.DecisionSeconds, m.Logins, m.AuditDropped, m.OIDCTokens, m.RequestTimeouts,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "gatehouse_sessions_active", Help: "Unexpired sessions in the database (recounted every 30 s)."}, src.ActiveSessions),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "gatehouse_sessions_cached", Help: "Sessions held in this replica's memory cache."}, src.CachedSessions),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "gatehouse_database_queries_total", Help: "Statements this replica sent to the database."}, src.DBQueries),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "gatehouse_change_feed_position", Help: "Id of the newest change-feed row this replica has applied to its caches."}, src.FeedPosition),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	if src.Pool != nil {
		r.MustRegister(collectors.NewDBStatsCollector(src.Pool, "gatehouse"))
	}
	for _, r := range []string{"allow", "login", "step_up", "deny", "bad_request", "refused_target", "error", "throttled"} {
		m.Decisions.WithLabelValues(r)
	}
	for _, r := range []string{"success", "failure", "throttled", "error"} {
		m.Logins.WithLabelValues(r)
	}
	return m
}

// Counters resolves a CounterVec's counters once per label values and keeps them, so
// that counting a forward-auth check is an atomic add, not hashing its labels and
// looking them up in the vector on every request. K is a comparable key standing for
// the label values (a struct, so that building it allocates nothing).
type Counters[K comparable] struct {
	Vec    *prometheus.CounterVec
	Labels func(K) []string
	m      sync.Map // K → prometheus.Counter
}

// Inc counts one under k's labels.
func (c *Counters[K]) Inc(k K) {
	if v, ok := c.m.Load(k); ok {
		v.(prometheus.Counter).Inc()
		return
	}
	counter := c.Vec.WithLabelValues(c.Labels(k)...)
	c.m.Store(k, counter)
	counter.Inc()
}
