package cli

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/viaduct-nys/viaduct/engines/e1"
	"github.com/viaduct-nys/viaduct/engines/e2"
	"github.com/viaduct-nys/viaduct/engines/e3"
	"github.com/viaduct-nys/viaduct/engines/e4"
	"github.com/viaduct-nys/viaduct/engines/e5"
	"github.com/viaduct-nys/viaduct/pkg/daemons"
	"github.com/viaduct-nys/viaduct/pkg/status/report"
	"github.com/viaduct-nys/viaduct/pkg/tally"
)

func runStatus(ctx context.Context, args []string, getenv func(string) string, stdout, _ io.Writer) error {
	var c Config
	var asJSON bool
	s := NewOptionSet("status", "[flags]", "Print each engine's state (ok, amber or red, and why), the daemons running them, and counts per stage: files imported and failed, test results, malformed rows, what Engine 2 made of them, hand-offs and posts to CommCare.", getenv)
	addDatabase(s, &c)
	addStatusRules(s, &c)
	// The daemon's flags that thresholds follow, under the daemon's environment variables: run with the daemons'
	// environment, `viaduct status` judges as their /status pages do.
	s.Duration(&c.E4JobTimeout, "e4-job-timeout", "VIADUCT_E4_JOB_TIMEOUT", 2*time.Minute,
		"The daemons' Engine 4 job timeout: a job running a minute longer is taken for abandoned (amber).")
	s.Duration(&c.E4RescueAfter, "e4-rescue-after", "VIADUCT_E4_RESCUE_AFTER", 0,
		"The daemons' --e4-rescue-after, when set: a job running longer is taken for abandoned (amber).")
	s.Duration(&c.E5Interval, "e5-interval", "VIADUCT_E5_INTERVAL", 5*time.Minute,
		"The daemons' Engine 5 interval: a domain with no round completed within three of them is not current (amber).")
	s.Bool(&asJSON, "json", "", false, "Print JSON instead of a table.")
	if err := s.Parse(args, stdout); err != nil {
		return UsageError(err)
	}
	return printStatus(ctx, c.DatabaseURL, c.statusThresholds(), stdout, asJSON)
}

// WriteStatus reads the status of the database at databaseURL, judged by the default thresholds, and writes it as a
// table, or as JSON.
func WriteStatus(ctx context.Context, databaseURL string, w io.Writer, asJSON bool) error {
	return printStatus(ctx, databaseURL, report.Defaults(), w, asJSON)
}

// printStatus reads the status of the database at databaseURL, judged by th, and writes it as a table, or as JSON.
func printStatus(ctx context.Context, databaseURL string, th report.Thresholds, w io.Writer, asJSON bool) error {
	pool, err := openCurrentPool(ctx, databaseURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	r, err := readStatusBy(ctx, pool, th)
	if err != nil {
		return err
	}
	if asJSON {
		return report.WriteJSON(w, r)
	}
	report.WriteText(w, r)
	return nil
}

// statusDB is what readStatus needs of a pool.
type statusDB interface {
	BeginTx(context.Context, pgx.TxOptions) (pgx.Tx, error)
}

// newStatusPage serves /status from db, judged by th, and registers the status metrics (the same report, for
// alerting) with reg. riverUI says whether /riverui/ is served, so the page links only to what exists.
func newStatusPage(db statusDB, reg prometheus.Registerer, riverUI bool, th report.Thresholds) http.Handler {
	reader := report.NewReader(func(ctx context.Context) (*report.Status, error) { return readStatusBy(ctx, db, th) })
	reg.MustRegister(reader)
	return reader.Handler(riverUI)
}

// ReadStatus is readStatusBy with the default thresholds.
func ReadStatus(ctx context.Context, db statusDB) (*report.Status, error) {
	return readStatusBy(ctx, db, report.Defaults())
}

// readStatusBy reads every engine's counts and the daemons in one repeatable-read snapshot, so the numbers add up,
// and judges each engine by th.
func readStatusBy(ctx context.Context, db statusDB, th report.Thresholds) (*report.Status, error) {
	// Folding the tally deltas first keeps the read cheap; if it fails (a read-only replica, say), the deltas are
	// summed as they are, which gives the same numbers.
	_ = pgx.BeginTxFunc(ctx, db, pgx.TxOptions{}, func(tx pgx.Tx) error { return tally.Compact(ctx, tx) })
	tx, err := db.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, fmt.Errorf("starting the status snapshot: %w", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck
	counts, err := tally.Read(ctx, tx)
	if err != nil {
		return nil, err
	}
	r := &report.Status{Thresholds: th}
	if r.E1, err = e1.Summarize(ctx, tx, counts); err != nil {
		return nil, err
	}
	if r.E2, err = e2.Summarize(ctx, tx, counts); err != nil {
		return nil, err
	}
	if r.E3, err = e3.Summarize(ctx, tx, counts); err != nil {
		return nil, err
	}
	if r.E4, err = e4.Summarize(ctx, tx); err != nil {
		return nil, err
	}
	if r.E5, err = e5.Summarize(ctx, tx); err != nil {
		return nil, err
	}
	if r.Daemons, err = daemons.List(ctx, tx); err != nil {
		return nil, err
	}
	if err := tx.QueryRow(ctx, `SELECT now()`).Scan(&r.AsOf); err != nil {
		return nil, fmt.Errorf("reading the database's clock: %w", err)
	}
	r.Assess()
	return r, nil
}
