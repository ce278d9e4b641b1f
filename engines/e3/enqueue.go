package e3

import (
	"context"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/viaduct-nys/viaduct/pkg/casedb"
)

// batchResult is what one batch did.
type batchResult struct {
	enqueued int // jobs inserted or found waiting, each with its hand-off event
	deferred int // changed cases left for a later pass: their job is running, or another transaction held the case
}

// enqueueBatch looks at the candidate index cases ids and, in one transaction, inserts an Engine 4 job and a
// send_to_commcare_enqueued event for each that changed since its last hand-off. A case whose job is already waiting
// gets the event too (that job will send the newest data). A case whose job is running, or that another transaction
// holds locked, is deferred: e3_deferred keeps it a candidate of every pass until it is handed off or found
// unchanged, so the horizon can move past its events without losing it.
func (e *Engine) enqueueBatch(ctx context.Context, ids []int64) (batchResult, error) {
	var res batchResult
	tx, err := e.deps.Pool.Begin(ctx)
	if err != nil {
		return res, fmt.Errorf("beginning a transaction: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck

	// Skipping locked rows rather than waiting keeps Engine 3 out of lock cycles with the engines that lock several
	// cases at once; what it skips, it defers.
	rows, err := tx.Query(ctx, `SELECT id FROM index_cases WHERE id = ANY($1) ORDER BY id FOR UPDATE SKIP LOCKED`, ids)
	if err != nil {
		return res, fmt.Errorf("locking index cases: %w", err)
	}
	locked, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return res, fmt.Errorf("locking index cases: %w", err)
	}
	var later []int64
	for _, id := range ids {
		if _, found := slices.BinarySearch(locked, id); !found {
			later = append(later, id)
		}
	}

	// The rule is read after the lock, by a statement that sees every event committed so far: a hand-off another
	// daemon committed a moment ago, or a change that came in after the candidates were read.
	changed, params, err := changedAmong(ctx, tx, locked)
	if err != nil {
		return res, err
	}
	var handed []int64
	if len(params) > 0 {
		inserted, err := e.deps.Jobs.InsertManyTx(ctx, tx, params)
		if err != nil {
			return res, fmt.Errorf("inserting %d jobs: %w", len(params), err)
		}
		for i, r := range inserted {
			if r.UniqueSkippedAsDuplicate && r.Job != nil && r.Job.State == rivertype.JobStateRunning {
				// The running job may have read the case already; it is handed off again once that job ends.
				later = append(later, changed[i])
				continue
			}
			handed = append(handed, changed[i])
		}
	}
	if err := recordEnqueued(ctx, tx, handed); err != nil {
		return res, err
	}
	if err := settleDeferred(ctx, tx, locked, later); err != nil {
		return res, err
	}
	if err := tx.Commit(ctx); err != nil {
		return res, fmt.Errorf("committing: %w", err)
	}
	res.enqueued, res.deferred = len(handed), len(later)
	return res, nil
}

// changedAmong returns which of the locked index cases the rule selects, with the job for each.
func changedAmong(ctx context.Context, db casedb.DBTX, ids []int64) ([]int64, []river.InsertManyParams, error) {
	if len(ids) == 0 {
		return nil, nil, nil
	}
	rows, err := db.Query(ctx, `SELECT ic.id, ic.case_id, ic.county_id FROM index_cases ic
		 WHERE ic.id = ANY($1) AND `+changed("ic.id")+` ORDER BY ic.id`, ids)
	if err != nil {
		return nil, nil, fmt.Errorf("selecting changed index cases: %w", err)
	}
	defer rows.Close()
	var changed []int64
	var params []river.InsertManyParams
	for rows.Next() {
		var id int64
		var args casedb.CaseLoaderArgs
		if err := rows.Scan(&id, &args.CaseID, &args.CountyID); err != nil {
			return nil, nil, fmt.Errorf("reading an index case: %w", err)
		}
		changed = append(changed, id)
		params = append(params, river.InsertManyParams{Args: args})
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("selecting changed index cases: %w", err)
	}
	return changed, params, nil
}

// recordEnqueued saves a send_to_commcare_enqueued event on each index case.
func recordEnqueued(ctx context.Context, db casedb.DBTX, caseIDs []int64) error {
	if len(caseIDs) == 0 {
		return nil
	}
	_, err := db.Exec(ctx, `WITH ids AS (SELECT c, nextval('events_id_seq') AS e FROM unnest($2::bigint[]) AS c),
		     ev AS (INSERT INTO events (id, type) SELECT e, $1 FROM ids)
		INSERT INTO index_case_events (index_case_id, event_id) SELECT c, e FROM ids`,
		casedb.EventSendToCommCareEnqueued, caseIDs)
	if err != nil {
		return fmt.Errorf("recording the hand-off of %d index cases: %w", len(caseIDs), err)
	}
	return nil
}

// settleDeferred keeps the cases of later deferred and forgets the other locked ones: each was handed off or found
// unchanged in this transaction.
func settleDeferred(ctx context.Context, db casedb.DBTX, locked, later []int64) error {
	if len(later) > 0 {
		if _, err := db.Exec(ctx, `INSERT INTO e3_deferred (index_case_id) SELECT unnest($1::bigint[])
			ON CONFLICT (index_case_id) DO NOTHING`, later); err != nil {
			return fmt.Errorf("deferring %d index cases: %w", len(later), err)
		}
	}
	if len(locked) > 0 {
		if _, err := db.Exec(ctx, `DELETE FROM e3_deferred WHERE index_case_id = ANY($1) AND index_case_id <> ALL(coalesce($2::bigint[], '{}'))`,
			locked, later); err != nil {
			return fmt.Errorf("settling deferred index cases: %w", err)
		}
	}
	return nil
}
