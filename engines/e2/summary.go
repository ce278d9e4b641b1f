package e2

import (
	"context"
	"fmt"
	"time"

	"github.com/viaduct-nys/viaduct/pkg/eclrs"
	"github.com/viaduct-nys/viaduct/pkg/status"
	"github.com/viaduct-nys/viaduct/pkg/tally"
)

// Summary is Engine 2's side of `viaduct status`: what became of the test results and what is still waiting.
type Summary struct {
	// Processed counts test results with a processed event, Ignored the part of them that was ignored.
	Processed int64 `json:"processed"`
	Ignored   int64 `json:"ignored"`
	// Failed counts test results marked processing_failed.
	Failed int64 `json:"failed"`
	// Waiting counts test results not finished yet; Retrying is the part of them waiting for another attempt.
	Waiting  int64 `json:"waiting"`
	Retrying int64 `json:"retrying"`
	// OldestWaiting is when the oldest waiting test result was imported, if any waits, and OldestWaitingAge how
	// long ago that was by the database's clock: the number to alert on.
	OldestWaiting    *time.Time `json:"oldest_waiting,omitempty"`
	OldestWaitingAge float64    `json:"oldest_waiting_age_seconds"`
	// People, IndexCases and LabResults count the rows Engine 2 (and later engines) have made.
	People     int64 `json:"people"`
	IndexCases int64 `json:"index_cases"`
	LabResults int64 `json:"lab_results"`
	// ProcessedLastHour and FailedLastHour count the processed and processing_failed events of the last hour.
	ProcessedLastHour int64 `json:"processed_last_hour"`
	FailedLastHour    int64 `json:"failed_last_hour"`
	// Failures are the reasons of processing_failed events within status.FailureWindow.
	Failures []status.Failure `json:"failures"`
}

// Summarize reads the Summary; run it in a repeatable-read transaction for numbers that add up. counts are the
// tallies read in the same transaction. Nothing here reads the whole history: totals come from the tallies, and
// the waiting results from above the claim floor.
func Summarize(ctx context.Context, db eclrs.DBTX, counts tally.Counts) (*Summary, error) {
	s := &Summary{
		Processed:  counts[tally.EventName(eclrs.EventProcessed)],
		Failed:     counts[tally.EventName(eclrs.EventProcessingFailed)],
		Ignored:    counts[tally.EventName(eclrs.EventTestResultIgnored)],
		People:     counts[tally.People],
		IndexCases: counts[tally.IndexCases],
		LabResults: counts[tally.LabResults],
	}
	floor, err := storedFloor(ctx, db)
	if err != nil {
		return nil, err
	}
	err = db.QueryRow(ctx, `SELECT
		    (SELECT count(*) FROM test_result_attempts),
		    (SELECT count(*) FROM events WHERE type = $1 AND inserted_at > now() - interval '1 hour'),
		    (SELECT count(*) FROM events WHERE type = $2 AND inserted_at > now() - interval '1 hour')`,
		eclrs.EventProcessed, eclrs.EventProcessingFailed).
		Scan(&s.Retrying, &s.ProcessedLastHour, &s.FailedLastHour)
	if err != nil {
		return nil, fmt.Errorf("counting Engine 2's work: %w", err)
	}
	err = db.QueryRow(ctx, `SELECT count(*), min(inserted_at),
		       coalesce(extract(epoch FROM now() - min(inserted_at)), 0)::float8
		  FROM (`+waitingResults+`) w`, floor).
		Scan(&s.Waiting, &s.OldestWaiting, &s.OldestWaitingAge)
	if err != nil {
		return nil, fmt.Errorf("counting waiting test results: %w", err)
	}
	// The newest occurrence of each reason is the file and line of the newest result that failed for it.
	s.Failures, err = status.Failures(ctx, db, `SELECT reason, n, last,
		    (SELECT jsonb_build_object('file_id', tr.file_id, 'line', tr.line_number)
		       FROM test_result_events j JOIN test_results tr ON tr.id = j.test_result_id WHERE j.event_id = newest)
		  FROM (SELECT coalesce(data->>'reason', 'no reason recorded') AS reason, count(*) AS n,
		               max(inserted_at) AS last, (array_agg(id ORDER BY inserted_at DESC, id DESC))[1] AS newest FROM events
		         WHERE type = $1 AND inserted_at > now() - interval '`+status.FailureWindow+`' GROUP BY 1) g`,
		eclrs.EventProcessingFailed)
	if err != nil {
		return nil, fmt.Errorf("reading Engine 2's failures: %w", err)
	}
	return s, nil
}
