package main

import (
	"context"
	"fmt"
	"io"
	"net/http"

	"github.com/jackc/pgx/v5"

	"github.com/viaduct-nys/viaduct/engines/e1"
	"github.com/viaduct-nys/viaduct/engines/e2"
	"github.com/viaduct-nys/viaduct/engines/e3"
	"github.com/viaduct-nys/viaduct/engines/e4"
	"github.com/viaduct-nys/viaduct/engines/e5"
	"github.com/viaduct-nys/viaduct/pkg/status/report"
	"github.com/viaduct-nys/viaduct/pkg/tally"
)

func runStatus(ctx context.Context, args []string, getenv func(string) string, stdout, _ io.Writer) error {
	var c config
	var asJSON bool
	s := newOptionSet("status", "[flags]", "Print counts per stage: files imported and failed, test results, malformed rows, what Engine 2 made of them, hand-offs and posts to CommCare.", getenv)
	addDatabase(s, &c)
	s.Bool(&asJSON, "json", "", false, "Print JSON instead of a table.")
	if err := s.parse(args, stdout); err != nil {
		return usageError(err)
	}
	return writeStatus(ctx, c.DatabaseURL, stdout, asJSON)
}

// writeStatus reads the counts of the database at databaseURL and writes them as a table, or as JSON.
func writeStatus(ctx context.Context, databaseURL string, w io.Writer, asJSON bool) error {
	pool, err := openPool(ctx, databaseURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	r, err := readStatus(ctx, pool)
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

// newStatusPage serves /status from db (report.NewHandler). riverUI says whether /riverui/ is served, so the page
// links only to what exists.
func newStatusPage(db statusDB, riverUI bool) http.Handler {
	return report.NewHandler(func(ctx context.Context) (*report.Status, error) { return readStatus(ctx, db) }, riverUI)
}

// readStatus reads every engine's counts in one repeatable-read snapshot, so the numbers add up.
func readStatus(ctx context.Context, db statusDB) (*report.Status, error) {
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
	e1Summary, err := e1.Summarize(ctx, tx, counts)
	if err != nil {
		return nil, err
	}
	e2Summary, err := e2.Summarize(ctx, tx, counts)
	if err != nil {
		return nil, err
	}
	e3Summary, err := e3.Summarize(ctx, tx, counts)
	if err != nil {
		return nil, err
	}
	e4Summary, err := e4.Summarize(ctx, tx)
	if err != nil {
		return nil, err
	}
	e5Summary, err := e5.Summarize(ctx, tx)
	if err != nil {
		return nil, err
	}
	r := &report.Status{E1: e1Summary, E2: e2Summary, E3: e3Summary, E4: e4Summary, E5: e5Summary}
	if err := tx.QueryRow(ctx, `SELECT now()`).Scan(&r.AsOf); err != nil {
		return nil, fmt.Errorf("reading the database's clock: %w", err)
	}
	return r, nil
}
