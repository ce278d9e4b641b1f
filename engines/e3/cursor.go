package e3

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/viaduct-nys/viaduct/pkg/casedb"
)

// changed is the reference's selection rule (§4.1) as SQL, by event id and never by time: among the change and
// hand-off events (casedb.ChangeEventTypes, casedb.HandOffEventTypes) of the index case whose id is the SQL
// expression caseID, the newest change is newer than the newest hand-off, or there is no hand-off. Other event types
// do not count. It reads that case's events only; which cases it is evaluated on is the horizon's business
// (candidatesSince). The type lists are written into the text, so no query has to pass them.
func changed(caseID string) string {
	return `EXISTS (
	SELECT 1
	  FROM (SELECT max(x.event_id) FILTER (WHERE x.type = ANY(` + changeTypes + `)) AS found,
	               max(x.event_id) FILTER (WHERE x.type = ANY(` + handOffTypes + `)) AS handed
	          FROM ` + casedb.CaseEventsSQL(caseID) + ` x) m
	 WHERE m.found IS NOT NULL AND (m.handed IS NULL OR m.handed < m.found))`
}

// changeTypes and handOffTypes are the event types the rule compares, as SQL text arrays.
var (
	changeTypes  = textArray(casedb.ChangeEventTypes)
	handOffTypes = textArray(casedb.HandOffEventTypes)
)

// textArray spells event type names, which are identifiers of our own, as a SQL text array literal.
func textArray(names []string) string {
	return "'{" + strings.Join(names, ",") + "}'::text[]"
}

// candidatesSince selects the index cases that may have changed since horizon $1: those with an event of any type
// written by a transaction at or above the horizon, and the deferred ones. Any type, not only changes: a case is
// also worth another look when its job reports back (a discarded job leaves its case changed), and the rule decides.
const candidatesSince = `SELECT index_case_id FROM index_case_events WHERE xid >= $1::text::xid8 AND xid IS NOT NULL
	UNION SELECT index_case_id FROM e3_deferred`

// everyCase selects every index case: the candidates when there is no horizon yet (a database migrated from before
// horizons existed, whose older events carry no transaction id).
const everyCase = `SELECT id FROM index_cases`

// horizon is where a pass starts: the stored horizon (invalid when there is none yet) and the next one, the xmin of
// a snapshot taken before the candidates are read. Every transaction below that xmin has ended, so its events are
// among the candidates this pass reads; everything at or above it is read again by the next pass.
type horizon struct {
	from pgtype.Text // xid8 as text: pgx has no xid8 type
	next string
}

// readHorizon reads the stored horizon and the next one, in one statement so the next one is taken before any
// candidate is read.
func readHorizon(ctx context.Context, db casedb.DBTX) (horizon, error) {
	var h horizon
	err := db.QueryRow(ctx, `SELECT horizon::text, pg_snapshot_xmin(pg_current_snapshot())::text FROM e3_cursor`).
		Scan(&h.from, &h.next)
	if err != nil {
		return h, fmt.Errorf("reading Engine 3's horizon: %w", err)
	}
	return h, nil
}

// waiting returns, in id order, the ids of the index cases waiting for Engine 3 as seen from h: the changed ones
// among the candidates of a pass starting at h.
func waiting(ctx context.Context, db casedb.DBTX, h horizon) ([]int64, error) {
	rows, err := db.Query(ctx, waitingCases+` ORDER BY ic.id`, h.from)
	if err != nil {
		return nil, fmt.Errorf("reading the index cases changed since the last pass: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("reading the index cases changed since the last pass: %w", err)
	}
	return ids, nil
}

// forgetDeferred drops the deferred cases that are no longer waiting: someone handed them off, or their job did.
// A change committed after the read of waiting has a transaction id at or above the next horizon, so the next pass
// reads it whatever this forgets.
func forgetDeferred(ctx context.Context, db casedb.DBTX, waiting []int64) error {
	if _, err := db.Exec(ctx, `DELETE FROM e3_deferred WHERE index_case_id <> ALL(coalesce($1::bigint[], '{}'))`, waiting); err != nil {
		return fmt.Errorf("forgetting deferred index cases: %w", err)
	}
	return nil
}

// advanceHorizon stores h's next horizon, once every candidate of the pass has been handed off, found unchanged or
// deferred. Passes hold the pass lock, so the horizon only moves forward; the guard makes that explicit.
func advanceHorizon(ctx context.Context, db casedb.DBTX, h horizon) error {
	_, err := db.Exec(ctx, `UPDATE e3_cursor SET horizon = $1::text::xid8, updated_at = now()
		 WHERE horizon IS NULL OR horizon < $1::text::xid8`, h.next)
	if err != nil {
		return fmt.Errorf("advancing Engine 3's horizon: %w", err)
	}
	return nil
}

// waitingCases selects the index cases waiting for Engine 3: the candidates of a pass starting at horizon $1 (text,
// NULL when there is none yet) that the rule selects. Every changed case is among the candidates (see doc.go), so
// this is exact, and it costs what changed since the horizon, not what the history holds. Passes and the status
// page both read it.
var waitingCases = `SELECT ic.id FROM index_cases ic
	 WHERE ic.id IN (SELECT id FROM (` + candidatesSince + `) c(id) WHERE $1::text IS NOT NULL
	                 UNION ALL (` + everyCase + ` WHERE $1::text IS NULL))
	   AND ` + changed("ic.id")
