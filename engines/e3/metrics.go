package e3

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are Engine 3's Prometheus metrics. A nil *Metrics records nothing.
type Metrics struct {
	passes       *prometheus.CounterVec
	cases        *prometheus.CounterVec
	passSeconds  prometheus.Histogram
	lastComplete prometheus.Gauge
}

// NewMetrics creates Engine 3's metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		passes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "viaduct", Subsystem: "e3", Name: "passes_total",
			Help: "Passes this daemon tried, by result: ok, failed (retried after a pause), skipped (another daemon's pass held the lock), interrupted (stopped).",
		}, []string{"result"}),
		cases: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "viaduct", Subsystem: "e3", Name: "cases_total",
			Help: "Changed index cases by outcome: enqueued (handed off to Engine 4, in committed batches), deferred (left for a later pass: their job is running or another transaction held them; counted again by each pass that defers them).",
		}, []string{"outcome"}),
		passSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "viaduct", Subsystem: "e3", Name: "pass_seconds",
			Help:    "Time per pass that took the lock and ended, ok or failed.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
		}),
		lastComplete: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "viaduct", Subsystem: "e3", Name: "last_pass_ok_timestamp_seconds",
			Help: "When this daemon last finished a pass; 0 before its first. Only the daemon holding the pass lock passes, so alert on the max() over every daemon falling behind.",
		}),
	}
	for _, r := range []string{"ok", "failed", "skipped", "interrupted"} {
		m.passes.WithLabelValues(r) // exported at 0, so that a rate can be taken before the first
	}
	for _, o := range []string{"enqueued", "deferred"} {
		m.cases.WithLabelValues(o)
	}
	reg.MustRegister(m.passes, m.cases, m.passSeconds, m.lastComplete)
	return m
}

// observePass records one pass: what it did (res, counted even when it failed later, as its batches committed),
// whether it failed (err) or was stopped (interrupted), how long it took and when it ended.
func (m *Metrics) observePass(res passResult, err error, interrupted bool, d time.Duration, end time.Time) {
	if m == nil {
		return
	}
	result := "ok"
	switch {
	case interrupted:
		result = "interrupted"
	case err != nil:
		result = "failed"
	case !res.ran:
		result = "skipped"
	default:
		m.lastComplete.Set(float64(end.Unix()))
	}
	m.passes.WithLabelValues(result).Inc()
	if res.ran && !interrupted {
		m.passSeconds.Observe(d.Seconds())
	}
	m.cases.WithLabelValues("enqueued").Add(float64(res.enqueued))
	m.cases.WithLabelValues("deferred").Add(float64(res.deferred))
}
