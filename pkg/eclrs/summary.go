package eclrs

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
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
	LastImported *File `json:"last_imported,omitempty"`
	// LastFailed is the most recent failed file, if any.
	LastFailed *File `json:"last_failed,omitempty"`
}

// Summarize reads the Summary in one snapshot.
func Summarize(ctx context.Context, db DBTX) (*Summary, error) {
	s := &Summary{Files: map[string]int64{FileImporting: 0, FileImported: 0, FileFailed: 0, FileSkipped: 0}}
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
	err = db.QueryRow(ctx, `SELECT (SELECT count(*) FROM test_results), (SELECT count(*) FROM file_row_errors),
		(SELECT count(*) FROM counties)`).Scan(&s.TestResults, &s.RowErrors, &s.Counties)
	if err != nil {
		return nil, fmt.Errorf("counting rows: %w", err)
	}
	if s.LastImported, err = lastFile(ctx, db, FileImported); err != nil {
		return nil, err
	}
	if s.LastFailed, err = lastFile(ctx, db, FileFailed); err != nil {
		return nil, err
	}
	return s, nil
}

func lastFile(ctx context.Context, db DBTX, status string) (*File, error) {
	f, err := scanFile(db.QueryRow(ctx, `SELECT `+fileColumns+` FROM files WHERE status = $1
		ORDER BY processing_completed_at DESC NULLS LAST, id DESC LIMIT 1`, status))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the last %s file: %w", status, err)
	}
	return f, nil
}
