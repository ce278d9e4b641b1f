package e1

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/viaduct-nys/viaduct/pkg/eclrs"
)

// Metrics are Engine 1's Prometheus metrics. A nil *Metrics records nothing, so tests and `viaduct extract` need
// no registry.
type Metrics struct {
	files         *prometheus.CounterVec
	rows          *prometheus.CounterVec
	notifications *prometheus.CounterVec
	importSeconds prometheus.Histogram
	batchSeconds  prometheus.Histogram
	receiveErrors *prometheus.CounterVec
	lastImport    prometheus.Gauge
	lookups       *prometheus.CounterVec
}

// NewMetrics creates Engine 1's metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		files: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "viaduct", Subsystem: "e1", Name: "files_total",
			Help: "ECLRS files handled, by outcome (imported, failed, skipped, already).",
		}, []string{"status"}),
		rows: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "viaduct", Subsystem: "e1", Name: "rows_total",
			Help: "ECLRS rows read, by outcome (new, matched, duplicate, error).",
		}, []string{"outcome"}),
		notifications: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "viaduct", Subsystem: "e1", Name: "notifications_total",
			Help: "SQS messages handled, by what was done with them.",
		}, []string{"action"}),
		importSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "viaduct", Subsystem: "e1", Name: "import_duration_seconds",
			Help:    "Time to import one ECLRS file.",
			Buckets: prometheus.ExponentialBuckets(0.05, 2, 14),
		}),
		batchSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "viaduct", Subsystem: "e1", Name: "batch_duration_seconds",
			Help:    "Time to de-duplicate and insert one batch of rows.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}),
	}
	m.receiveErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "viaduct", Subsystem: "e1", Name: "receive_errors_total",
		Help: "Failed receives from the SQS queue, by reason (queue_missing, access_denied, no_credentials, " +
			"bad_credentials, unreachable, other). While any grows, no export is imported.",
	}, []string{"reason"})
	for _, r := range []string{ReasonQueueMissing, ReasonAccessDenied, ReasonNoCredentials, ReasonBadCredentials,
		ReasonUnreachable, ReasonOther} {
		m.receiveErrors.WithLabelValues(r) // exported at 0, so a rate can be taken before the first failure
	}
	m.lastImport = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: "viaduct", Subsystem: "e1", Name: "last_import_timestamp_seconds",
		Help: "When the newest export was imported, by any daemon as of this one's start and by this one since; 0 " +
			"before the first. ECLRS sends one about every 30 minutes: alert on time() minus the max() over every " +
			"daemon growing past a few hours.",
	})
	m.lookups = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "viaduct", Subsystem: "e1", Name: "checksum_lookups_total",
		Help: "Rows of imported files recognised or not by their checksum, by where it was looked up: last_file (the " +
			"previous export's rows, in memory) or index (test_results). A rolling export finds almost all in " +
			"last_file; a growing share in index means exports stopped overlapping.",
	}, []string{"where"})
	reg.MustRegister(m.files, m.rows, m.notifications, m.importSeconds, m.batchSeconds, m.receiveErrors, m.lastImport,
		m.lookups)
	return m
}

// readLastImport sets the last import's time from the files table: the newest import, whichever daemon made it.
// Run calls it before it takes a message, so this daemon's own imports only move it on.
func (m *Metrics) readLastImport(ctx context.Context, db eclrs.DBTX) error {
	if m == nil {
		return nil
	}
	var last *time.Time
	if err := db.QueryRow(ctx, `SELECT max(processing_completed_at) FROM files WHERE status = $1`,
		eclrs.FileImported).Scan(&last); err != nil {
		return fmt.Errorf("reading when the last export was imported: %w", err)
	}
	if last != nil {
		m.lastImport.Set(float64(last.Unix()))
	}
	return nil
}

func (m *Metrics) observeImport(res *Result) {
	if m == nil || res == nil {
		return
	}
	status := res.Status
	if res.Already {
		status = "already"
	}
	m.files.WithLabelValues(status).Inc()
	if res.Already {
		return
	}
	if res.Status == eclrs.FileImported {
		m.lastImport.SetToCurrentTime()
	}
	m.importSeconds.Observe(res.Seconds)
	m.rows.WithLabelValues("new").Add(float64(res.New))
	m.rows.WithLabelValues("matched").Add(float64(res.Matched))
	m.rows.WithLabelValues("duplicate").Add(float64(res.Duplicate))
	m.rows.WithLabelValues("error").Add(float64(res.Errors))
}

// observeLookups counts where an imported file's checksums were looked up.
func (m *Metrics) observeLookups(fromLast, probed int64) {
	if m == nil {
		return
	}
	m.lookups.WithLabelValues("last_file").Add(float64(fromLast))
	m.lookups.WithLabelValues("index").Add(float64(probed))
}

func (m *Metrics) observeBatch(d time.Duration) {
	if m == nil {
		return
	}
	m.batchSeconds.Observe(d.Seconds())
}

func (m *Metrics) notification(action string) {
	if m == nil {
		return
	}
	m.notifications.WithLabelValues(action).Inc()
}

func (m *Metrics) receiveError(reason string) {
	if m == nil {
		return
	}
	m.receiveErrors.WithLabelValues(reason).Inc()
}
