// Package status holds the shapes every engine reports to `viaduct status` and to the daemon's /status page, so
// the terminal and the page show the same numbers and read them the same way.
//
// Counts of work done or failed reach back one hour; failure reasons reach back a day, so the night's failures are
// still listed in the morning.
package status

import (
	"context"
	"encoding/json"
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
	// Retried says the work that failed is retried by itself: a person need not act yet.
	Retried bool `json:"retried,omitempty"`
	// Newest names the newest occurrence, so that it can be followed (a file, a test result's line, a case, a River
	// job); nil when the engine records nothing to follow.
	Newest *Occurrence `json:"newest,omitempty"`
}

// Occurrence names one occurrence of a failure by what an operator can look up: the file and line it came from
// (`viaduct trace --file F --line N`), the CommCare case (`viaduct trace --case-id`) and the River job
// (/riverui/jobs/ID). Only what the engine records is set; none of it is patient data.
type Occurrence struct {
	FileID int64  `json:"file_id,omitempty"`
	Line   int64  `json:"line,omitempty"`
	CaseID string `json:"case_id,omitempty"`
	JobID  int64  `json:"job_id,omitempty"`
}

// Querier is the part of a pool, connection or transaction that Failures needs.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// Failures runs query, which selects rows of (reason text, count bigint, last timestamptz, newest jsonb), and
// returns the MaxFailures newest. newest is an Occurrence as JSON, or NULL. The query does its own grouping and its
// own time window (FailureWindow).
func Failures(ctx context.Context, db Querier, query string, args ...any) ([]Failure, error) {
	rows, err := db.Query(ctx, `SELECT reason, count, last, newest FROM (`+query+`) f(reason, count, last, newest)
		 ORDER BY last DESC, reason LIMIT `+fmt.Sprint(MaxFailures), args...)
	if err != nil {
		return nil, err
	}
	failures, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Failure, error) {
		var f Failure
		var newest []byte
		if err := row.Scan(&f.Reason, &f.Count, &f.Last, &newest); err != nil {
			return f, err
		}
		if newest != nil {
			var o Occurrence
			if err := json.Unmarshal(newest, &o); err != nil {
				return f, fmt.Errorf("reading the newest occurrence of %q: %w", f.Reason, err)
			}
			if o != (Occurrence{}) {
				f.Newest = &o
			}
		}
		return f, nil
	})
	if err != nil {
		return nil, err
	}
	if failures == nil {
		failures = []Failure{} // JSON shows an empty list, not null
	}
	return failures, nil
}
