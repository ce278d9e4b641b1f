package e5

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are Engine 5's Prometheus metrics. A nil *Metrics records nothing.
type Metrics struct {
	rounds       *prometheus.CounterVec
	roundSeconds prometheus.Histogram
	domains      *prometheus.CounterVec
	cases        *prometheus.CounterVec
	lastComplete prometheus.Gauge
	rateLimits   *prometheus.CounterVec
	forwarding   *forwardingMetrics // the webhook's and the importer's (webhook.go)
}

// NewMetrics creates Engine 5's metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		rounds: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "viaduct", Subsystem: "e5", Name: "rounds_total",
			Help: "Rounds this daemon ran, by result: ok (every domain read), failed (some domain failed), rate_limited (none failed, but CommCare's rate limits cut some domain's reading short), interrupted (stopped).",
		}, []string{"result"}),
		roundSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "viaduct", Subsystem: "e5", Name: "round_seconds",
			Help:    "Time per round over every participating domain.",
			Buckets: prometheus.ExponentialBuckets(0.25, 2, 12),
		}),
		domains: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "viaduct", Subsystem: "e5", Name: "domain_reads_total",
			Help: "Domains read by result: ok, failed (read again next round) or rate_limited (cut short by CommCare's rate limits past the round's budget; continued next round).",
		}, []string{"result"}),
		cases: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "viaduct", Subsystem: "e5", Name: "cases_total",
			Help: "Changed cases read by outcome: created, updated, unchanged, own_post (Viaduct's own, skipped), skipped (by the import rules), failed.",
		}, []string{"outcome"}),
		lastComplete: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "viaduct", Subsystem: "e5", Name: "last_round_ok_timestamp_seconds",
			Help: "When this daemon last finished a round with every domain read; 0 before its first. Only the daemon holding the round lock reads, so alert on the max() over every daemon falling behind.",
		}),
		rateLimits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "viaduct", Subsystem: "e5", Name: "rate_limited_total",
			Help: "Case list requests CommCare answered 429 Too Many Requests, by domain: each was waited out as CommCare asked and sent again, so none is a failure.",
		}, []string{"domain"}),
	}
	for _, r := range []string{"ok", "failed", "rate_limited", "interrupted"} {
		m.rounds.WithLabelValues(r) // exported at 0, so that a rate can be taken before the first
	}
	for _, r := range []string{"ok", "failed", "rate_limited"} {
		m.domains.WithLabelValues(r)
	}
	reg.MustRegister(m.rounds, m.roundSeconds, m.domains, m.cases, m.lastComplete, m.rateLimits)
	m.forwarding = newForwardingMetrics(reg)
	return m
}

func (m *Metrics) observeRound(res RoundResult, interrupted bool, d time.Duration, end time.Time) {
	if m == nil {
		return
	}
	result := "ok"
	switch {
	case interrupted:
		result = "interrupted"
	case res.Failed > 0:
		result = "failed"
	case res.Deferred > 0:
		// Not every domain was read, so the round is not ok, but nothing failed either.
		result = "rate_limited"
	default:
		m.lastComplete.Set(float64(end.Unix()))
	}
	m.rounds.WithLabelValues(result).Inc()
	if !interrupted {
		m.roundSeconds.Observe(d.Seconds())
		m.domains.WithLabelValues("ok").Add(float64(res.Domains - res.Failed - res.Deferred))
		m.domains.WithLabelValues("failed").Add(float64(res.Failed))
		m.domains.WithLabelValues("rate_limited").Add(float64(res.Deferred))
	}
	for outcome, n := range map[string]int{"created": res.Created, "updated": res.Updated, "unchanged": res.Unchanged,
		"own_post": res.Own, "skipped": res.Skipped, "failed": res.Stats.Failed} {
		m.cases.WithLabelValues(outcome).Add(float64(n))
	}
}

// rateLimited counts a 429 on domain's case list.
func (m *Metrics) rateLimited(domain string) {
	if m == nil {
		return
	}
	m.rateLimits.WithLabelValues(domain).Inc()
}
