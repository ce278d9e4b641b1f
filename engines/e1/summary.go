package e1

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/viaduct-nys/viaduct/pkg/eclrs"
	"github.com/viaduct-nys/viaduct/pkg/status"
	"github.com/viaduct-nys/viaduct/pkg/tally"
)

// Summary is Engine 1's side of `viaduct status`: how much has arrived and what went wrong.
type Summary struct {
	// Files counts files rows by status (importing, imported, failed, skipped).
	Files map[string]int64 `json:"files"`
	// TestResults counts test_results rows.
	TestResults int64 `json:"test_results"`
	// RowErrors counts malformed rows recorded in file_row_errors.
	RowErrors int64 `json:"row_errors"`
	// Counties counts counties rows.
	Counties int64 `json:"counties"`
	// LastImported is the most recently completed import, if any.
	LastImported *eclrs.File `json:"last_imported,omitempty"`
	// LastFailed is the most recent failed file, if any.
	LastFailed *eclrs.File `json:"last_failed,omitempty"`
	// ImportedLastHour, FailedLastHour and RowErrorsLastHour count the files imported and failed, and the malformed
	// rows recorded, in the last hour.
	ImportedLastHour  int64 `json:"imported_last_hour"`
	FailedLastHour    int64 `json:"failed_last_hour"`
	RowErrorsLastHour int64 `json:"row_errors_last_hour"`
	// OldestImporting is when the oldest file still importing was first announced, and OldestImportingAge how
	// long ago that was by the database's clock: a file that keeps failing for a reason that may pass (the database,
	// S3) is retried with its import restarted each time, and this counts from its first try.
	OldestImporting    *time.Time `json:"oldest_importing,omitempty"`
	OldestImportingAge float64    `json:"oldest_importing_age_seconds"`
	// Failures are the reasons files failed, and the fields of malformed rows, within status.FailureWindow. A
	// malformed row's own reason is not listed: it quotes the value, which may be patient data.
	Failures []status.Failure `json:"failures"`
}

// Summarize reads the Summary; run it in a repeatable-read transaction for numbers that add up. counts are the
// tallies read in the same transaction.
func Summarize(ctx context.Context, db eclrs.DBTX, counts tally.Counts) (*Summary, error) {
	s := &Summary{Files: map[string]int64{eclrs.FileImporting: 0, eclrs.FileImported: 0, eclrs.FileFailed: 0,
		eclrs.FileSkipped: 0}}
	rows, err := db.Query(ctx, `SELECT status, count(*) FROM files GROUP BY status`)
	if err != nil {
		return nil, fmt.Errorf("counting files: %w", err)
	}
	for rows.Next() {
		var status string
		var n int64
		if err := rows.Scan(&status, &n); err != nil {
			rows.Close()
			return nil, err
		}
		s.Files[status] = n
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("counting files: %w", err)
	}
	s.TestResults, s.RowErrors = counts[tally.TestResults], counts[tally.FileRowErrors]
	err = db.QueryRow(ctx, `SELECT count(*) FROM counties`).Scan(&s.Counties)
	if err != nil {
		return nil, fmt.Errorf("counting rows: %w", err)
	}
	err = db.QueryRow(ctx, `SELECT
		    (SELECT count(*) FROM files WHERE status = $1 AND processing_completed_at > now() - interval '1 hour'),
		    (SELECT count(*) FROM files WHERE status = $2 AND processing_completed_at > now() - interval '1 hour'),
		    (SELECT count(*) FROM file_row_errors WHERE inserted_at > now() - interval '1 hour'),
		    (SELECT min(inserted_at) FROM files WHERE status = $3),
		    (SELECT coalesce(extract(epoch FROM now() - min(inserted_at)), 0)::float8 FROM files WHERE status = $3)`,
		eclrs.FileImported, eclrs.FileFailed, eclrs.FileImporting).
		Scan(&s.ImportedLastHour, &s.FailedLastHour, &s.RowErrorsLastHour, &s.OldestImporting, &s.OldestImportingAge)
	if err != nil {
		return nil, fmt.Errorf("counting the last hour's files: %w", err)
	}
	// The newest occurrence of each: the newest file failed for the reason, the newest malformed row's file and line.
	s.Failures, err = status.Failures(ctx, db, `
		SELECT coalesce(failure_reason, 'no reason recorded'), count(*), max(processing_completed_at),
		       jsonb_build_object('file_id', (array_agg(id ORDER BY processing_completed_at DESC, id DESC))[1]) FROM files
		 WHERE status = $1 AND processing_completed_at > now() - interval '`+status.FailureWindow+`' GROUP BY 1
		UNION ALL
		SELECT reason, n, last, (SELECT jsonb_build_object('file_id', r.file_id, 'line', r.line_number)
		                           FROM file_row_errors r WHERE r.id = newest)
		  FROM (SELECT CASE field WHEN '' THEN 'malformed rows' ELSE 'malformed rows: field ' || field END
		               || ' (line and reason in file_row_errors)' AS reason, count(*) AS n, max(inserted_at) AS last,
		               (array_agg(id ORDER BY inserted_at DESC, id DESC))[1] AS newest FROM file_row_errors
		         WHERE inserted_at > now() - interval '`+status.FailureWindow+`' GROUP BY field) g`, eclrs.FileFailed)
	if err != nil {
		return nil, fmt.Errorf("reading Engine 1's failures: %w", err)
	}
	if s.LastImported, err = lastFile(ctx, db, eclrs.FileImported); err != nil {
		return nil, err
	}
	if s.LastFailed, err = lastFile(ctx, db, eclrs.FileFailed); err != nil {
		return nil, err
	}
	return s, nil
}

// lastFile returns the file in status completed last, nil when there is none.
func lastFile(ctx context.Context, db eclrs.DBTX, status string) (*eclrs.File, error) {
	var id int64
	err := db.QueryRow(ctx, `SELECT id FROM files WHERE status = $1
		ORDER BY processing_completed_at DESC NULLS LAST, id DESC LIMIT 1`, status).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the last %s file: %w", status, err)
	}
	f, err := eclrs.GetFile(ctx, db, id)
	if err != nil {
		return nil, fmt.Errorf("reading the last %s file: %w", status, err)
	}
	return f, nil
}
