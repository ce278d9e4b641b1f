package e3

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/viaduct-nys/viaduct/pkg/casedb"
	"github.com/viaduct-nys/viaduct/pkg/tally"
)

// Summary is Engine 3's side of `viaduct status`.
type Summary struct {
	// Waiting counts index cases that changed since their last hand-off: what the next pass enqueues.
	Waiting int64 `json:"waiting"`
	// OldestWaiting is when the longest-waiting case first changed after its last hand-off, and OldestWaitingAge
	// how long ago that was by the database's clock.
	OldestWaiting    *time.Time `json:"oldest_waiting,omitempty"`
	OldestWaitingAge float64    `json:"oldest_waiting_age_seconds"`
	// Enqueued counts hand-offs to Engine 4 (send_to_commcare_enqueued events), EnqueuedLastHour the recent ones.
	Enqueued         int64 `json:"enqueued"`
	EnqueuedLastHour int64 `json:"enqueued_last_hour"`
}

// Summarize reads the Summary; run it in a repeatable-read transaction for numbers that add up. counts are the
// tallies read in the same transaction. It costs what changed since the last pass, like a pass.
func Summarize(ctx context.Context, db casedb.DBTX, counts tally.Counts) (*Summary, error) {
	s := &Summary{Enqueued: counts[tally.EventName(casedb.EventSendToCommCareEnqueued)]}
	var h pgtype.Text
	if err := db.QueryRow(ctx, `SELECT horizon::text FROM e3_cursor`).Scan(&h); err != nil {
		return nil, fmt.Errorf("reading Engine 3's horizon: %w", err)
	}
	// A waiting case has waited since its first change after its newest hand-off.
	err := db.QueryRow(ctx, `WITH w AS (`+waitingCases+`),
		  waiting AS (
		  SELECT (SELECT min((SELECT e.inserted_at FROM events e WHERE e.id = x.event_id))
		            FROM `+casedb.CaseEventsSQL("w.id")+` x
		           WHERE x.type = ANY(`+changeTypes+`)
		             AND x.event_id > coalesce((SELECT max(y.event_id) FROM `+casedb.CaseEventsSQL("w.id")+` y
		                                         WHERE y.type = ANY(`+handOffTypes+`)), 0)) AS since
		    FROM w)
		SELECT (SELECT count(*) FROM waiting), (SELECT min(since) FROM waiting),
		       coalesce((SELECT extract(epoch FROM now() - min(since)) FROM waiting), 0)::float8,
		       (SELECT count(*) FROM events WHERE type = $2 AND inserted_at > now() - interval '1 hour')`,
		h, casedb.EventSendToCommCareEnqueued).
		Scan(&s.Waiting, &s.OldestWaiting, &s.OldestWaitingAge, &s.EnqueuedLastHour)
	if err != nil {
		return nil, fmt.Errorf("counting Engine 3's work: %w", err)
	}
	return s, nil
}
