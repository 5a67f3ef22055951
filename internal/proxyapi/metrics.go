package proxyapi

import (
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gravitational/teleport-update/internal/proxyapi/rollout"
)

// Route labels of the request metrics and access log.
const (
	routeFind          = "find"
	routeInstallScript = "install_script"
	routeCensus        = "census"
	routeCensusSummary = "census_summary"
	routeHealth        = "healthz"
	routeMetrics       = "metrics"
	routeOther         = "other"
)

// metrics are the server's Prometheus collectors.
type metrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	reloads  prometheus.Counter
	rejects  prometheus.Counter
	target   *prometheus.GaugeVec
	// refused counts census reports refused after their token was
	// accepted, by reason: signature, conflict, quota.
	refused *prometheus.CounterVec
	// rolloutTransitions counts rollout transitions by group, from, to and
	// actor; rolloutState is 1 for each group's current state.
	rolloutTransitions *prometheus.CounterVec
	rolloutState       *prometheus.GaugeVec

	// Children looked up once per (route, code): WithLabelValues hashes the
	// labels on every call, which shows on the find hot path.
	mu       sync.RWMutex
	counters map[routeCode]prometheus.Counter
	observe  map[string]prometheus.Observer
}

type routeCode struct {
	route string
	code  int
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "teleport_update_http_requests_total",
			Help: "HTTP requests served, by route and status code.",
		}, []string{"route", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "teleport_update_http_request_duration_seconds",
			Help:    "Time to serve an HTTP request, by route.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1},
		}, []string{"route"}),
		reloads: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "teleport_update_policy_reloads_total",
			Help: "Policy file changes that were accepted and took effect.",
		}),
		rejects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "teleport_update_policy_rejects_total",
			Help: "Policy file changes that were refused; the last good policy kept serving.",
		}),
		target: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "teleport_update_target_version_info",
			Help: "Target version per group of the policy in effect (value 1).",
		}, []string{"group", "version"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "teleport_update_census_refused_total",
			Help: "Census reports refused after their token was accepted, by reason: signature (missing, forged or out of time), conflict (another key or group, a replay), quota (max_hosts, new_hosts_per_hour, too frequent).",
		}, []string{"reason"}),
		rolloutTransitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "teleport_update_rollout_transitions_total",
			Help: "Rollout group transitions this proxy made, by group, from and to state, and actor (proxy or operator).",
		}, []string{"group", "from", "to", "actor"}),
		rolloutState: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "teleport_update_rollout_group_state",
			Help: "Each rollout group's state (value 1 for the current state).",
		}, []string{"group", "state"}),
		counters: make(map[routeCode]prometheus.Counter),
		observe:  make(map[string]prometheus.Observer),
	}
	for _, c := range []prometheus.Collector{m.requests, m.latency, m.reloads, m.rejects, m.target, m.refused, m.rolloutTransitions, m.rolloutState} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// record counts one request.
func (m *metrics) record(route string, code int, d time.Duration) {
	k := routeCode{route, code}
	m.mu.RLock()
	c, okc := m.counters[k]
	o, oko := m.observe[route]
	m.mu.RUnlock()
	if !okc || !oko {
		m.mu.Lock()
		if c, okc = m.counters[k]; !okc {
			c = m.requests.WithLabelValues(route, strconv.Itoa(code))
			m.counters[k] = c
		}
		if o, oko = m.observe[route]; !oko {
			o = m.latency.WithLabelValues(route)
			m.observe[route] = o
		}
		m.mu.Unlock()
	}
	c.Inc()
	o.Observe(d.Seconds())
}

// setPolicy publishes the target version of every group of p.
func (m *metrics) setPolicy(p *Policy) {
	m.target.Reset()
	v := p.TargetVersion.String()
	if len(p.Groups) == 0 {
		m.target.WithLabelValues("", v).Set(1)
	}
	for _, g := range p.Groups {
		m.target.WithLabelValues(g.Name, v).Set(1)
	}
}

// setRolloutState publishes group's rollout state.
func (m *metrics) setRolloutState(group string, s rollout.State) {
	for _, st := range []rollout.State{rollout.Unstarted, rollout.Canary, rollout.Active, rollout.Done, rollout.Halted, rollout.RolledBack} {
		v := 0.0
		if st == s {
			v = 1
		}
		m.rolloutState.WithLabelValues(group, string(st)).Set(v)
	}
}
