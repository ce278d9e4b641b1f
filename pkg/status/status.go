// Package status holds the shapes every engine reports to `viaduct status` and to the daemon's /status page, so
// the terminal and the page show the same numbers and read them the same way.
//
// Counts of work done or failed reach back one hour; failure reasons reach back a day, so the night's failures are
// still listed in the morning.
package status

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// FailureWindow is how far back failure reasons reach, as a PostgreSQL interval.
const FailureWindow = "24 hours"

// MaxFailures is how many distinct reasons an engine lists: the newest ones. An operator needs the pattern, and
// the rest are in the events, River UI and the logs.
const MaxFailures = 5

// Failure is one reason an engine's work failed recently, how often, and when last.
type Failure struct {
	// Reason says what went wrong. It never quotes patient data: engines build it from error messages that leave
	// CommCare's 4xx bodies out, field names and file names.
	Reason string `json:"reason"`
	// Count is how many times it happened within FailureWindow.
	Count int64 `json:"count"`
	// Last is when it last happened.
	Last time.Time `json:"last"`
}

// Querier is the part of a pool, connection or transaction that Failures needs.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// Failures runs query, which selects rows of (reason text, count bigint, last timestamptz), and returns the
// MaxFailures newest. The query does its own grouping and its own time window (FailureWindow).
func Failures(ctx context.Context, db Querier, query string, args ...any) ([]Failure, error) {
	rows, err := db.Query(ctx, `SELECT reason, count, last FROM (`+query+`) f(reason, count, last)
		 ORDER BY last DESC, reason LIMIT `+fmt.Sprint(MaxFailures), args...)
	if err != nil {
		return nil, err
	}
	failures, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Failure, error) {
		var f Failure
		err := row.Scan(&f.Reason, &f.Count, &f.Last)
		return f, err
	})
	if err != nil {
		return nil, err
	}
	if failures == nil {
		failures = []Failure{} // JSON shows an empty list, not null
	}
	return failures, nil
}
