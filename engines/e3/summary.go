package e3

import (
	"context"
	"fmt"

	"github.com/viaduct-nys/viaduct/pkg/commcare"
	"github.com/viaduct-nys/viaduct/pkg/eclrs"
)

// Summary is Engine 3's side of `viaduct status`.
type Summary struct {
	// Waiting counts index cases that changed since their last hand-off: what the next pass enqueues.
	Waiting int64 `json:"waiting"`
	// Enqueued counts hand-offs to Engine 4 (send_to_commcare_enqueued events), EnqueuedLastHour the recent ones.
	Enqueued         int64 `json:"enqueued"`
	EnqueuedLastHour int64 `json:"enqueued_last_hour"`
}

// Summarize reads the Summary; run it in a repeatable-read transaction for numbers that add up.
func Summarize(ctx context.Context, db eclrs.DBTX) (*Summary, error) {
	s := &Summary{}
	err := db.QueryRow(ctx, `SELECT
		    (SELECT count(*) FROM index_cases ic WHERE ic.id > $1 AND `+changedCondition+`),
		    (SELECT count(*) FROM events WHERE type = $2),
		    (SELECT count(*) FROM events WHERE type = $2 AND inserted_at > now() - interval '1 hour')`,
		int64(0), commcare.EventSendToCommCareEnqueued, commcare.ChangeEventTypes, commcare.HandOffEventTypes).
		Scan(&s.Waiting, &s.Enqueued, &s.EnqueuedLastHour)
	if err != nil {
		return nil, fmt.Errorf("counting Engine 3's work: %w", err)
	}
	return s, nil
}
