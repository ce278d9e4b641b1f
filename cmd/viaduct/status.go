package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/viaduct-nys/viaduct/engines/e2"
	"github.com/viaduct-nys/viaduct/engines/e3"
	"github.com/viaduct-nys/viaduct/engines/e4"
	"github.com/viaduct-nys/viaduct/engines/e5"
	"github.com/viaduct-nys/viaduct/pkg/eclrs"
)

// statusReport is what `viaduct status` shows, one section per engine.
type statusReport struct {
	E1 *eclrs.Summary `json:"e1"`
	E2 *e2.Summary    `json:"e2"`
	E3 *e3.Summary    `json:"e3"`
	E4 *e4.Summary    `json:"e4"`
	E5 *e5.Summary    `json:"e5"`
}

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
	report, err := readStatus(ctx, pool)
	if err != nil {
		return err
	}
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(report)
	}
	printStatus(w, report)
	return nil
}

// readStatus reads every engine's counts in one repeatable-read snapshot, so the numbers add up.
func readStatus(ctx context.Context, db interface {
	BeginTx(context.Context, pgx.TxOptions) (pgx.Tx, error)
}) (*statusReport, error) {
	tx, err := db.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, err
	}
	defer tx.Rollback(ctx) //nolint:errcheck
	e1, err := eclrs.Summarize(ctx, tx)
	if err != nil {
		return nil, err
	}
	e2Summary, err := e2.Summarize(ctx, tx)
	if err != nil {
		return nil, err
	}
	e3Summary, err := e3.Summarize(ctx, tx)
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
	return &statusReport{E1: e1, E2: e2Summary, E3: e3Summary, E4: e4Summary, E5: e5Summary}, nil
}

func printStatus(w io.Writer, r *statusReport) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "STAGE\tWHAT\tCOUNT\t")
	row := func(stage, what string, n int64) { fmt.Fprintf(tw, "%s\t%s\t%d\t\n", stage, what, n) }
	row("e1", "files imported", r.E1.Files[eclrs.FileImported])
	row("e1", "files failed", r.E1.Files[eclrs.FileFailed])
	row("e1", "files skipped (older)", r.E1.Files[eclrs.FileSkipped])
	row("e1", "files importing", r.E1.Files[eclrs.FileImporting])
	row("e1", "test results", r.E1.TestResults)
	row("e1", "rows with errors", r.E1.RowErrors)
	row("e1", "counties", r.E1.Counties)
	row("e2", "test results processed", r.E2.Processed)
	row("e2", "  of which ignored", r.E2.Ignored)
	row("e2", "test results failed", r.E2.Failed)
	row("e2", "test results waiting", r.E2.Waiting)
	row("e2", "  of which retrying", r.E2.Retrying)
	row("e2", "people", r.E2.People)
	row("e2", "index cases", r.E2.IndexCases)
	row("e2", "lab results", r.E2.LabResults)
	row("e3", "index cases waiting", r.E3.Waiting)
	row("e3", "hand-offs to e4", r.E3.Enqueued)
	row("e3", "  in the last hour", r.E3.EnqueuedLastHour)
	for _, state := range []string{"available", "scheduled", "running", "retryable", "completed", "cancelled", "discarded"} {
		row("e4", "jobs "+state, r.E4.Jobs[state])
	}
	row("e4", "posted (last hour)", r.E4.Posted)
	row("e4", "unchanged, not posted (last hour)", r.E4.Unchanged)
	if r.E4.DryRun > 0 {
		row("e4", "dry run, not posted (last hour)", r.E4.DryRun)
	}
	row("e4", "posts failed (last hour)", r.E4.Failed)
	row("e4", "given up (last hour)", r.E4.Discarded)
	row("e5", "cases retrieved (last hour)", r.E5.RetrievedLastHour)
	row("e5", "cases updated from CommCare (last hour)", r.E5.UpdatedLastHour)
	_ = tw.Flush()
	if f := r.E1.LastImported; f != nil {
		fmt.Fprintf(w, "\nlast import: %s (file %d) at %s", f.Filename, f.ID, formatTime(f.CompletedAt))
		if st := f.Statistics; st != nil {
			fmt.Fprintf(w, ": %d new, %d matched, %d duplicate, %d errors", st.New.Total, st.Matched.Total, st.Duplicate.Total, st.Error.Total)
		}
		fmt.Fprintln(w)
	}
	if f := r.E1.LastFailed; f != nil {
		fmt.Fprintf(w, "last failure: %s (file %d) at %s: %s\n", f.Filename, f.ID, formatTime(f.CompletedAt), f.FailureReason)
	}
	if t := r.E2.OldestWaiting; t != nil {
		fmt.Fprintf(w, "oldest waiting test result: imported %s (%s ago)\n", formatTime(t),
			(time.Duration(r.E2.OldestWaitingAge) * time.Second).Round(time.Second))
	}
	if r.E2.LastFailure != "" {
		fmt.Fprintf(w, "last test result failure: %s\n", r.E2.LastFailure)
	}
	if t := r.E4.OldestWaiting; t != nil {
		fmt.Fprintf(w, "oldest waiting case loader job: created %s (%s ago)\n", formatTime(t),
			(time.Duration(r.E4.OldestWaitingAge) * time.Second).Round(time.Second))
	}
	if r.E4.LastError != "" {
		fmt.Fprintf(w, "last case loader error: %s\n", r.E4.LastError)
	}
	if len(r.E5.Domains) > 0 {
		fmt.Fprintln(w)
		tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "E5 DOMAIN\tREAD UP TO\tLAST ROUND COMPLETED\tLAST ERROR\t")
		for _, d := range r.E5.Domains {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t\n", d.Domain, formatTime(d.HighWater), formatTime(d.RoundCompletedAt), d.LastError)
		}
		_ = tw.Flush()
	}
}

func formatTime(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}
