package e4

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are Engine 4's Prometheus metrics. A nil *Metrics records nothing.
type Metrics struct {
	jobs       *prometheus.CounterVec
	jobSeconds *prometheus.HistogramVec
}

// NewMetrics creates Engine 4's metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		jobs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "viaduct", Subsystem: "e4", Name: "job_attempts_total",
			Help: "Case loader job attempts by outcome: posted, unchanged (post skipped), dry_run, snoozed (rate limited), cancelled (given up: CommCare rejected the case), failed (retried), discarded (the last attempt failed: given up).",
		}, []string{"outcome"}),
		jobSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "viaduct", Subsystem: "e4", Name: "job_attempt_seconds",
			Help:    "Time per case loader job attempt, CommCare requests included, by outcome.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 14),
		}, []string{"outcome"}),
	}
	for _, o := range []outcome{outcomePosted, outcomeUnchanged, outcomeDryRun, outcomeSnoozed, outcomeCancelled,
		outcomeFailed, outcomeDiscarded} {
		m.jobs.WithLabelValues(string(o)) // exported at 0, so that an alert can take an increase before the first
	}
	reg.MustRegister(m.jobs, m.jobSeconds)
	return m
}

func (m *Metrics) observeJob(out outcome, d time.Duration) {
	if m == nil {
		return
	}
	m.jobs.WithLabelValues(string(out)).Inc()
	m.jobSeconds.WithLabelValues(string(out)).Observe(d.Seconds())
}
