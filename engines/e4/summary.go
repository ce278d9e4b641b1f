package e4

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/viaduct-nys/viaduct/pkg/casedb"
	"github.com/viaduct-nys/viaduct/pkg/status"
)

// Summary is Engine 4's side of `viaduct status`.
type Summary struct {
	// Jobs counts the case loader jobs by River state: available, scheduled (including snoozed), running,
	// retryable, completed, cancelled, discarded. Completed jobs are kept for River's retention period (a day).
	Jobs map[string]int64 `json:"jobs"`
	// Posted, Unchanged, DryRun, Failed and Discarded count the post outcomes recorded in the last hour: posted and
	// accepted, skipped as unchanged, not posted because posting is off, failed (to be retried), given up on.
	Posted    int64 `json:"posted_last_hour"`
	Unchanged int64 `json:"unchanged_last_hour"`
	DryRun    int64 `json:"dry_run_last_hour"`
	Failed    int64 `json:"failed_last_hour"`
	Discarded int64 `json:"discarded_last_hour"`
	// RateLimited counts the posts CommCare asked to wait for (429) in the last hour: each job waits as asked,
	// without spending an attempt, so these are not among Failed.
	RateLimited int64 `json:"rate_limited_last_hour"`
	// Exhausted counts the jobs River discarded in the last hour because their last attempt failed: given up
	// without a send_to_commcare_discarded event (the case is sent again when it next changes).
	Exhausted int64 `json:"exhausted_last_hour"`
	// OldestWaiting is when the oldest job still to be worked (available, or retryable) was created, and
	// OldestWaitingAge how long ago that was by the database's clock.
	OldestWaiting    *time.Time `json:"oldest_waiting,omitempty"`
	OldestWaitingAge float64    `json:"oldest_waiting_age_seconds"`
	// OldestRunning is when the longest-running job's attempt started, and OldestRunningAge how long ago: a job
	// running much longer than the job timeout was left by a dead daemon and waits for River's rescue.
	OldestRunning    *time.Time `json:"oldest_running,omitempty"`
	OldestRunningAge float64    `json:"oldest_running_age_seconds"`
	// Failures are the reasons posts failed (send_to_commcare_failed, retried) or were given up on
	// (send_to_commcare_discarded) within status.FailureWindow. An HTTP error shows as its status: CommCare's 4xx
	// bodies may quote patient data and stay in the case's events. The newest occurrence names its River job (events
	// recorded since the job id was) and, while River keeps the job, its case.
	Failures []status.Failure `json:"failures"`
}

// retriedPrefix begins the reason of a failed post whose job retries it.
const retriedPrefix = "will retry: "

// Queued counts the jobs waiting to be worked: available, scheduled (snoozed included) and retryable.
func (s *Summary) Queued() int64 {
	return s.Jobs["available"] + s.Jobs["scheduled"] + s.Jobs["retryable"]
}

// Summarize reads the Summary; run it in a repeatable-read transaction for numbers that add up.
func Summarize(ctx context.Context, db casedb.DBTX) (*Summary, error) {
	s := &Summary{Jobs: map[string]int64{}}
	kind := casedb.CaseLoaderArgs{}.Kind()
	rows, err := db.Query(ctx, `SELECT state::text, count(*) FROM river_job WHERE kind = $1 GROUP BY state`, kind)
	if err != nil {
		return nil, fmt.Errorf("counting Engine 4's jobs: %w", err)
	}
	for rows.Next() {
		var state string
		var n int64
		if err := rows.Scan(&state, &n); err != nil {
			rows.Close()
			return nil, fmt.Errorf("counting Engine 4's jobs: %w", err)
		}
		s.Jobs[state] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("counting Engine 4's jobs: %w", err)
	}
	err = db.QueryRow(ctx, `SELECT
		    count(*) FILTER (WHERE type = $1 AND data ? 'response' AND data->>'response' <> $4),
		    count(*) FILTER (WHERE type = $1 AND data ? 'skipped'),
		    count(*) FILTER (WHERE type = $1 AND data->>'response' = $4),
		    count(*) FILTER (WHERE type = $2 AND data->>'response' IS DISTINCT FROM $5),
		    count(*) FILTER (WHERE type = $3),
		    count(*) FILTER (WHERE type = $2 AND data->>'response' = $5)
		  FROM events WHERE type IN ($1, $2, $3) AND inserted_at > now() - interval '1 hour'`,
		casedb.EventSendToCommCareSucceeded, casedb.EventSendToCommCareFailed, casedb.EventSendToCommCareDiscarded,
		dryRunResponse, rateLimitedResponse).Scan(&s.Posted, &s.Unchanged, &s.DryRun, &s.Failed, &s.Discarded, &s.RateLimited)
	if err != nil {
		return nil, fmt.Errorf("counting Engine 4's posts: %w", err)
	}
	err = db.QueryRow(ctx, `SELECT min(created_at) FILTER (WHERE state IN ('available', 'retryable')),
		       coalesce(extract(epoch FROM now() - min(created_at) FILTER (WHERE state IN ('available', 'retryable'))), 0)::float8,
		       min(attempted_at) FILTER (WHERE state = 'running'),
		       coalesce(extract(epoch FROM now() - min(attempted_at) FILTER (WHERE state = 'running')), 0)::float8,
		       (SELECT count(*) FROM river_job WHERE kind = $1 AND state = 'discarded'
		           AND finalized_at > now() - interval '1 hour')
		  FROM river_job WHERE kind = $1 AND state IN ('available', 'retryable', 'running')`, kind).
		Scan(&s.OldestWaiting, &s.OldestWaitingAge, &s.OldestRunning, &s.OldestRunningAge, &s.Exhausted)
	if err != nil {
		return nil, fmt.Errorf("reading Engine 4's oldest job: %w", err)
	}
	// Reasons quote request URLs; without their queries and case ids, one cause is one line however many cases it hit.
	s.Failures, err = status.Failures(ctx, db, `SELECT reason, n, last,
		    (SELECT jsonb_strip_nulls(jsonb_build_object('job_id', (e.data->>'job_id')::bigint, 'case_id',
		              (SELECT j.args->>'case_id' FROM river_job j WHERE j.id = (e.data->>'job_id')::bigint)))
		       FROM events e WHERE e.id = newest)
		  FROM (SELECT
		    CASE type WHEN $1 THEN 'given up: ' ELSE '`+retriedPrefix+`' END || regexp_replace(regexp_replace(
		      coalesce(data->>'reason',
		        CASE WHEN data ? 'status' THEN 'CommCare answered HTTP ' || (data->>'status') ELSE data->>'response' END,
		        'no reason recorded'),
		      '\?[^\s":]*', '', 'g'), '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}', '…', 'gi') AS reason,
		    count(*) AS n, max(inserted_at) AS last, (array_agg(id ORDER BY inserted_at DESC, id DESC))[1] AS newest
		  FROM events WHERE type IN ($1, $2) AND inserted_at > now() - interval '`+status.FailureWindow+`' GROUP BY 1) g`,
		casedb.EventSendToCommCareDiscarded, casedb.EventSendToCommCareFailed)
	if err != nil {
		return nil, fmt.Errorf("reading Engine 4's failures: %w", err)
	}
	for i := range s.Failures {
		s.Failures[i].Retried = strings.HasPrefix(s.Failures[i].Reason, retriedPrefix)
	}
	return s, nil
}
