package e2

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are Engine 2's Prometheus metrics. A nil *Metrics records nothing.
type Metrics struct {
	results      *prometheus.CounterVec
	batchSeconds *prometheus.HistogramVec
}

// NewMetrics creates Engine 2's metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		results: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "viaduct", Subsystem: "e2", Name: "test_results_total",
			Help: "Test results handled, by outcome (processed, ignored, failed, retried).",
		}, []string{"outcome"}),
		batchSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "viaduct", Subsystem: "e2", Name: "batch_phase_seconds",
			Help:    "Time per batch in each phase: claim, match (load and decide) and write (including commit).",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
		}, []string{"phase"}),
	}
	for _, o := range []string{"processed", "ignored", "failed", "retried"} {
		m.results.WithLabelValues(o) // exported at 0, so that a rate can be taken before the first
	}
	reg.MustRegister(m.results, m.batchSeconds)
	return m
}

func (m *Metrics) observeBatch(b *batch, claim, match, write time.Duration) {
	if m == nil {
		return
	}
	processed := len(b.results) - b.ignored - b.failed - len(b.retries)
	m.results.WithLabelValues("processed").Add(float64(processed))
	m.results.WithLabelValues("ignored").Add(float64(b.ignored))
	m.results.WithLabelValues("failed").Add(float64(b.failed))
	m.results.WithLabelValues("retried").Add(float64(len(b.retries)))
	m.batchSeconds.WithLabelValues("claim").Observe(claim.Seconds())
	m.batchSeconds.WithLabelValues("match").Observe(match.Seconds())
	m.batchSeconds.WithLabelValues("write").Observe(write.Seconds())
}

func (m *Metrics) observeFailure(final bool) {
	if m == nil {
		return
	}
	if final {
		m.results.WithLabelValues("failed").Inc()
	} else {
		m.results.WithLabelValues("retried").Inc()
	}
}
