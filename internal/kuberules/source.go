package kuberules

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"

	"github.com/gatehouse-id/gatehouse/internal/config"
)

// The resources watched, and the one written.
var (
	Ingresses  = schema.GroupVersionResource{Group: "networking.k8s.io", Version: "v1", Resource: "ingresses"}
	HTTPRoutes = schema.GroupVersionResource{Group: "gateway.networking.k8s.io", Version: "v1", Resource: "httproutes"}
	events     = schema.GroupVersionResource{Version: "v1", Resource: "events"}
)

// RESTConfig is how Gatehouse reaches the API server: access.kubernetes.kubeconfig
// when set, else the pod's service account, else $KUBECONFIG.
func RESTConfig(k config.Kubernetes) (*rest.Config, error) {
	var rc *rest.Config
	var err error
	switch {
	case k.Kubeconfig != "":
		rc, err = clientcmd.BuildConfigFromFlags("", k.Kubeconfig)
		if err != nil {
			return nil, fmt.Errorf("access.kubernetes.kubeconfig %q: %w; point it at a readable kubeconfig file", k.Kubeconfig, err)
		}
	default:
		rc, err = rest.InClusterConfig()
		if err != nil {
			path := os.Getenv("KUBECONFIG")
			if path == "" {
				return nil, fmt.Errorf("access.kubernetes: not running in a Kubernetes pod (%w) and no kubeconfig given; set access.kubernetes.kubeconfig or $KUBECONFIG", err)
			}
			rc, err = clientcmd.BuildConfigFromFlags("", path)
			if err != nil {
				return nil, fmt.Errorf("$KUBECONFIG %q: %w", path, err)
			}
		}
	}
	rc = rest.CopyConfig(rc)
	rc.UserAgent = "gatehouse"
	rc.QPS, rc.Burst = 20, 40
	return rc, nil
}

// Source keeps the rules from Kubernetes current on one replica. Every replica runs
// its own (watches are cheap and need no leader), so each follows the objects within
// about a second of the API server.
//
// What it promises, because a wrong table is worse than a stale one:
//   - Until the first full list of every watched resource has arrived it applies no
//     rules (hosts only Kubernetes names stay denied by default) and Synced says why.
//   - A failed watch or an API server that went away keeps the last rules; the
//     informers list again when it is back. gatehouse_kubernetes_rules_age_seconds
//     tells how long the rules have not been confirmed current.
//   - Objects with problems deny (see Compile) and get a Warning Event, once per
//     object version and problem across all replicas (the Event's name is derived
//     from them).
type Source struct {
	// Options give the prefix, the groups that exist (read at every compile) and the
	// cookie domain.
	Options func() Options
	// Apply is called with every new set of rules, only after the first full sync.
	Apply func(Compiled)
	// Instance names this replica in the Events it writes.
	Instance string
	// ProbeEvery is how often the API server is asked whether it is there (/readyz)
	// and the rules are compiled again, for groups created or removed meanwhile; 0
	// means 5 s.
	ProbeEvery time.Duration

	cfg  config.Kubernetes
	log  *slog.Logger
	dyn  dynamic.Interface
	http *http.Client // rc's transport and credentials, for discovery and /readyz
	host string       // the API server's base URL

	started   time.Time
	synced    atomic.Bool
	reason    atomic.Pointer[string]
	confirmed atomic.Int64 // unix nanoseconds the rules were last known current
	watchErr  atomic.Int64 // unix nanoseconds of the last watch error
	reachable atomic.Bool
	current   atomic.Pointer[Compiled]
	kick      chan struct{}

	mu        sync.Mutex
	informers []cache.SharedIndexInformer
	resources []schema.GroupVersionResource
	emitted   map[string]bool // event names written, for the problems still present

	problems *prometheus.GaugeVec
}

// NewSource prepares a Source for access.kubernetes (its client, its metrics on reg).
// It reaches out to nothing until Run.
func NewSource(k config.Kubernetes, log *slog.Logger, reg prometheus.Registerer) (*Source, error) {
	rc, err := RESTConfig(k)
	if err != nil {
		return nil, err
	}
	return newSource(k, rc, log, reg)
}

func newSource(k config.Kubernetes, rc *rest.Config, log *slog.Logger, reg prometheus.Registerer) (*Source, error) {
	dyn, err := dynamic.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("access.kubernetes: %w", err)
	}
	// Discovery and the probe are two plain GETs: client-go's discovery client would
	// link every typed API in Kubernetes.
	hc, err := rest.HTTPClientFor(rc)
	if err != nil {
		return nil, fmt.Errorf("access.kubernetes: %w", err)
	}
	host, _, err := rest.DefaultServerUrlFor(rc)
	if err != nil {
		return nil, fmt.Errorf("access.kubernetes: the API server's address %q: %w", rc.Host, err)
	}
	s := &Source{cfg: k, log: log.With("component", "kubernetes"), dyn: dyn, http: hc, host: strings.TrimSuffix(host.String(), "/"), started: time.Now(),
		kick: make(chan struct{}, 1), emitted: map[string]bool{}}
	waiting := "waiting for the first full list of Ingresses from the Kubernetes API server"
	s.reason.Store(&waiting)
	s.problems = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "gatehouse_kubernetes_problems",
		Help: "Objects' annotation problems by reason (each such object denies; see its Events)."}, []string{"reason"})
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f)
	}
	boolean := func(b bool) float64 {
		if b {
			return 1
		}
		return 0
	}
	for _, c := range []prometheus.Collector{s.problems,
		gauge("gatehouse_kubernetes_synced", "1 once the first full list of Ingresses and HTTPRoutes has arrived and their rules apply.", func() float64 { return boolean(s.synced.Load()) }),
		gauge("gatehouse_kubernetes_api_reachable", "1 while the Kubernetes API server answers.", func() float64 { return boolean(s.reachable.Load()) }),
		gauge("gatehouse_kubernetes_rules_age_seconds", "Seconds since the rules from Kubernetes were last known current: it grows while the API server is away and the last rules are kept.", func() float64 { return s.Age().Seconds() }),
		gauge("gatehouse_kubernetes_rules", "Rules compiled from Kubernetes annotations.", func() float64 { return float64(len(s.Current().Rules)) }),
		gauge("gatehouse_kubernetes_objects", "Ingresses and HTTPRoutes with annotations under the prefix.", func() float64 { return float64(s.Current().Objects) }),
	} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Synced reports whether the rules from Kubernetes apply, and if not, why not (for
// readiness).
func (s *Source) Synced() (bool, string) {
	if s.synced.Load() {
		return true, ""
	}
	return false, *s.reason.Load()
}

// Age is how long the rules have not been known current: since the last answer of a
// healthy API server, or since the start before the first sync.
func (s *Source) Age() time.Duration {
	at := s.confirmed.Load()
	if at == 0 {
		return time.Since(s.started)
	}
	return time.Since(time.Unix(0, at))
}

// Current is the last compiled rules (empty before the first sync).
func (s *Source) Current() Compiled {
	if c := s.current.Load(); c != nil {
		return *c
	}
	return Compiled{}
}

// Recompile asks for the rules to be compiled again soon, say after groups changed.
func (s *Source) Recompile() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// Run watches until ctx ends.
func (s *Source) Run(ctx context.Context) {
	clientGoLog.CompareAndSwap(nil, s.log)
	every := cmpDuration(s.ProbeEvery, 5*time.Second)
	resources, err := s.discover(ctx, every)
	if err != nil {
		return // ctx ended
	}
	s.start(ctx, resources)
	probe := time.NewTicker(every)
	defer probe.Stop()
	for !s.hasSynced() {
		select {
		case <-ctx.Done():
			return
		case <-s.kick:
		case <-probe.C:
			s.probe(ctx)
		}
	}
	s.confirmed.Store(time.Now().UnixNano())
	s.reachable.Store(true)
	s.compile(ctx)
	s.synced.Store(true)
	s.log.Info("rules from Kubernetes apply", "rules", len(s.Current().Rules), "objects", s.Current().Objects)
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.kick:
			s.compile(ctx)
		case <-probe.C:
			s.probe(ctx)
			s.compile(ctx)
		}
	}
}

func cmpDuration(d, fallback time.Duration) time.Duration {
	if d <= 0 {
		return fallback
	}
	return d
}

// discover asks the API server, until it answers, which of the resources it serves.
func (s *Source) discover(ctx context.Context, every time.Duration) ([]schema.GroupVersionResource, error) {
	logged := ""
	for {
		resources, err := s.served(ctx)
		if err == nil {
			s.reachable.Store(true)
			return resources, nil
		}
		s.reachable.Store(false)
		why := fmt.Sprintf("the Kubernetes API server cannot be reached: %v", err)
		s.reason.Store(&why)
		if why != logged { // once per distinct error, not every few seconds
			s.log.Warn("cannot reach the Kubernetes API server; rules from Kubernetes do not apply yet", "error", err.Error())
			logged = why
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(every):
		}
	}
}

// served lists the watched resources the API server has: Ingresses always, HTTPRoutes
// when access.kubernetes.http_routes is on and the Gateway API is installed.
func (s *Source) served(ctx context.Context) ([]schema.GroupVersionResource, error) {
	var out []schema.GroupVersionResource
	for _, r := range []schema.GroupVersionResource{Ingresses, HTTPRoutes} {
		if r == HTTPRoutes && !s.cfg.HTTPRoutes {
			continue
		}
		var list metav1.APIResourceList
		found, err := s.get(ctx, "/apis/"+r.Group+"/"+r.Version, &list)
		if err != nil {
			return nil, err
		}
		served := false
		for _, res := range list.APIResources {
			served = served || res.Name == r.Resource
		}
		switch {
		case served:
			out = append(out, r)
		case r == Ingresses:
			return nil, fmt.Errorf("the API server does not serve %s/%s %s", r.Group, r.Version, r.Resource)
		case !found:
			s.log.Info("the API server does not serve Gateway API HTTPRoutes; watching Ingresses only (restart after installing the CRDs)")
		}
	}
	return out, nil
}

// get GETs path on the API server into v (when not nil); found is false for a 404.
func (s *Source) get(ctx context.Context, path string, v any) (found bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.host+path, nil)
	if err != nil {
		return false, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := s.http.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	switch {
	case err != nil:
		return false, err
	case resp.StatusCode == http.StatusNotFound:
		return false, nil
	case resp.StatusCode != http.StatusOK:
		return false, fmt.Errorf("GET %s: %s: %s", path, resp.Status, truncate(strings.TrimSpace(string(body)), 200))
	case v == nil:
		return true, nil
	}
	return true, json.Unmarshal(body, v)
}

// start runs an informer per watched resource and namespace.
func (s *Source) start(ctx context.Context, resources []schema.GroupVersionResource) {
	namespaces := watched(s.cfg)
	var names []string
	for _, r := range resources {
		names = append(names, r.Resource)
	}
	why := fmt.Sprintf("waiting for the first full list of %s from the Kubernetes API server", strings.Join(names, " and "))
	s.reason.Store(&why)
	handler := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { s.Recompile() },
		UpdateFunc: func(any, any) { s.Recompile() },
		DeleteFunc: func(any) { s.Recompile() },
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.resources = resources
	for _, ns := range namespaces {
		for _, r := range resources {
			// Informers built on the dynamic client's list and watch, not through
			// dynamicinformer, which would link the whole typed clientset.
			client := s.dyn.Resource(r).Namespace(ns)
			lw := &cache.ListWatch{
				ListWithContextFunc: func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
					return client.List(ctx, opts)
				},
				WatchFuncWithContext: func(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
					return client.Watch(ctx, opts)
				},
			}
			inf := cache.NewSharedIndexInformer(lw, &unstructured.Unstructured{}, 0, cache.Indexers{})
			_ = inf.SetTransform(slim)
			_ = inf.SetWatchErrorHandlerWithContext(func(_ context.Context, _ *cache.Reflector, err error) {
				s.watchErr.Store(time.Now().UnixNano())
				s.reachable.Store(false)
				if !s.synced.Load() {
					why := fmt.Sprintf("waiting for the first full list of %s in %s: %v", r.Resource, nsWords(ns), err)
					s.reason.Store(&why)
				}
				s.log.Warn("watching Kubernetes failed; the last rules stay until it is back", "resource", r.Resource, "namespace", ns, "error", err.Error())
			})
			_, _ = inf.AddEventHandler(handler)
			s.informers = append(s.informers, inf)
			go inf.RunWithContext(ctx)
		}
	}
}

// slim drops from a cached object what the rules never read and can be large: the
// field managers' bookkeeping and kubectl's copy of the whole last applied object.
func slim(obj any) (any, error) {
	if u, ok := obj.(*unstructured.Unstructured); ok {
		u.SetManagedFields(nil)
		if a := u.GetAnnotations(); a != nil {
			if _, ok := a["kubectl.kubernetes.io/last-applied-configuration"]; ok {
				delete(a, "kubectl.kubernetes.io/last-applied-configuration")
				u.SetAnnotations(a)
			}
		}
	}
	return obj, nil
}

// watched is the namespaces to watch: access.kubernetes.namespaces, or all of them.
func watched(k config.Kubernetes) []string {
	if len(k.Namespaces) == 0 {
		return []string{metav1.NamespaceAll}
	}
	return k.Namespaces
}

func nsWords(ns string) string {
	if ns == "" {
		return "every namespace"
	}
	return "namespace " + ns
}

func (s *Source) hasSynced() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, inf := range s.informers {
		if !inf.HasSynced() {
			return false
		}
	}
	return len(s.informers) > 0
}

// probe asks the API server whether it is there. The rules count as current when it
// answers and no watch failed since the last probe.
func (s *Source) probe(ctx context.Context) {
	before := time.Now()
	found, err := s.get(ctx, "/readyz", nil)
	if err == nil && !found {
		err = errors.New("GET /readyz: 404")
	}
	if err != nil {
		if s.reachable.Swap(false) {
			s.log.Warn("the Kubernetes API server does not answer; the last rules stay", "error", err.Error())
		}
		return
	}
	if !s.reachable.Swap(true) {
		s.log.Info("the Kubernetes API server answers again")
	}
	if last := s.watchErr.Load(); last == 0 || time.Since(time.Unix(0, last)) > 2*cmpDuration(s.ProbeEvery, 5*time.Second) {
		s.confirmed.Store(before.UnixNano())
	}
}

// compile reads the informers' objects, compiles them, reports new problems and
// applies the rules when they changed.
func (s *Source) compile(ctx context.Context) {
	var objects []*Object
	s.mu.Lock()
	for _, inf := range s.informers {
		for _, item := range inf.GetStore().List() {
			if u, ok := item.(*unstructured.Unstructured); ok {
				if o := ObjectOf(u, s.cfg.IngressClasses); o != nil {
					objects = append(objects, o)
				}
			}
		}
	}
	s.mu.Unlock()
	c := Compile(objects, s.Options())
	prev := s.current.Swap(&c)
	counts := map[string]float64{ReasonInvalidAnnotation: 0, ReasonUnknownGroup: 0, ReasonOutsideCookie: 0, ReasonNoHost: 0, ReasonConflict: 0}
	for _, p := range c.Problems {
		counts[p.Reason]++
	}
	for reason, n := range counts {
		s.problems.WithLabelValues(reason).Set(n)
	}
	// The rules first: Events are requests to the API server, and may be slow.
	if prev == nil || !reflect.DeepEqual(prev.Rules, c.Rules) {
		if s.Apply != nil {
			s.Apply(c)
		}
	}
	s.report(ctx, c.Problems)
}

// report logs each problem not reported before and writes it as a Warning Event on
// the object. The Event's name comes from the object's uid and version and the
// problem, so the replicas write it once between them (the others get "already
// exists").
func (s *Source) report(ctx context.Context, problems []Problem) {
	still := map[string]bool{}
	for _, p := range problems {
		sum := sha256.Sum256([]byte(p.Object.UID + "\x00" + p.Object.ResourceVersion + "\x00" + p.Reason + "\x00" + p.Message))
		name := p.Object.Name
		if len(name) > 200 {
			name = name[:200]
		}
		name += ".gatehouse." + hex.EncodeToString(sum[:8])
		still[name] = true
		if s.emitted[name] {
			continue
		}
		s.log.Warn("a Kubernetes object's Gatehouse annotations have a problem; its hosts deny until it is fixed",
			"object", p.Object.Ref(), "reason", p.Reason, "problem", p.Message)
		// Said once per problem either way: a refused Event is logged, not retried
		// every few seconds.
		s.emitted[name] = true
		if err := s.event(ctx, name, p); err != nil {
			s.log.Warn("could not write a Kubernetes Event; may the ServiceAccount create events (the Helm chart's kubernetesRules grants it)?", "object", p.Object.Ref(), "error", err.Error())
		}
	}
	for name := range s.emitted {
		if !still[name] {
			delete(s.emitted, name)
		}
	}
}

func (s *Source) event(ctx context.Context, name string, p Problem) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	now := time.Now().UTC().Format(time.RFC3339)
	o := p.Object
	ev := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "Event",
		"metadata": map[string]any{"name": name, "namespace": o.Namespace},
		"involvedObject": map[string]any{"apiVersion": o.APIVersion, "kind": o.Kind, "namespace": o.Namespace, "name": o.Name,
			"uid": o.UID, "resourceVersion": o.ResourceVersion},
		"type": "Warning", "reason": p.Reason, "message": truncate(p.Message, 1024),
		"source":         map[string]any{"component": "gatehouse", "host": s.Instance},
		"firstTimestamp": now, "lastTimestamp": now, "count": int64(1),
		"reportingComponent": "gatehouse", "reportingInstance": truncate(s.Instance, 128),
	}}
	_, err := s.dyn.Resource(events).Namespace(o.Namespace).Create(ctx, ev, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	return err
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// ObjectOf reads an Ingress or HTTPRoute; nil for an Ingress of a class not in
// classes (empty: every class).
func ObjectOf(u *unstructured.Unstructured, classes []string) *Object {
	o := &Object{Kind: u.GetKind(), APIVersion: u.GetAPIVersion(), Namespace: u.GetNamespace(), Name: u.GetName(),
		UID: string(u.GetUID()), ResourceVersion: u.GetResourceVersion(), Annotations: u.GetAnnotations()}
	switch o.Kind {
	case "Ingress":
		if len(classes) > 0 {
			class, _, _ := unstructured.NestedString(u.Object, "spec", "ingressClassName")
			if class == "" {
				class = o.Annotations["kubernetes.io/ingress.class"]
			}
			if !slices.Contains(classes, class) {
				return nil
			}
		}
		rules, _, _ := unstructured.NestedSlice(u.Object, "spec", "rules")
		for _, r := range rules {
			m, _ := r.(map[string]any)
			h, _ := m["host"].(string)
			o.Hosts = append(o.Hosts, h)
		}
	case "HTTPRoute":
		o.Hosts, _, _ = unstructured.NestedStringSlice(u.Object, "spec", "hostnames")
	default:
		return nil
	}
	return o
}

// List reads every watched object once, for the CLI: the same objects a Source would
// watch.
func List(ctx context.Context, k config.Kubernetes) ([]*Object, error) {
	rc, err := RESTConfig(k)
	if err != nil {
		return nil, err
	}
	s, err := newSource(k, rc, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	if err != nil {
		return nil, err
	}
	resources, err := s.served(ctx)
	if err != nil {
		return nil, fmt.Errorf("asking the Kubernetes API server at %s: %w", rc.Host, err)
	}
	namespaces := watched(k)
	var out []*Object
	for _, ns := range namespaces {
		for _, r := range resources {
			list, err := s.dyn.Resource(r).Namespace(ns).List(ctx, metav1.ListOptions{})
			if err != nil {
				return nil, fmt.Errorf("listing %s in %s: %w", r.Resource, nsWords(ns), err)
			}
			for i := range list.Items {
				if o := ObjectOf(&list.Items[i], k.IngressClasses); o != nil {
					out = append(out, o)
				}
			}
		}
	}
	return out, nil
}

// clientGoLog is where client-go's own log lines go: the first running Source's
// logger. client-go logs through klog, whose logger is one per process and read
// without a lock, so it is set once, in init, to a handler that looks this up.
var clientGoLog atomic.Pointer[slog.Logger]

func init() { klog.SetSlogLogger(slog.New(clientGo{})) }

// clientGo passes client-go's log lines of level warning and above to clientGoLog
// (nowhere before a Source runs): its informational chatter is not the operator's
// business, its failures are. (klog's own warnings arrive as info: logr, between
// klog and slog, has no warning level; the watch's failures are logged by the
// Source itself.)
type clientGo struct {
	with []func(slog.Handler) slog.Handler
}

func (h clientGo) target() slog.Handler {
	l := clientGoLog.Load()
	if l == nil {
		return slog.DiscardHandler
	}
	t := l.Handler()
	for _, f := range h.with {
		t = f(t)
	}
	return t
}

func (h clientGo) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelWarn && h.target().Enabled(ctx, l)
}

func (h clientGo) Handle(ctx context.Context, r slog.Record) error { return h.target().Handle(ctx, r) }

func (h clientGo) WithAttrs(a []slog.Attr) slog.Handler {
	return clientGo{with: append(slices.Clone(h.with), func(t slog.Handler) slog.Handler { return t.WithAttrs(a) })}
}

func (h clientGo) WithGroup(name string) slog.Handler {
	return clientGo{with: append(slices.Clone(h.with), func(t slog.Handler) slog.Handler { return t.WithGroup(name) })}
}
