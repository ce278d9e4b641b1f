package e3

import (
	"context"
	"fmt"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/viaduct-nys/viaduct/pkg/commcare"
	"github.com/viaduct-nys/viaduct/pkg/eclrs"
)

// changedCondition is the reference's selection rule (§4.1), by event id and never by time: among a case's change
// and hand-off events (commcare.ChangeEventTypes, commcare.HandOffEventTypes, passed as $3 and $4), the newest
// change is newer than the newest hand-off, or there is no hand-off. Other event types do not count.
const changedCondition = `EXISTS (
	SELECT 1
	  FROM (SELECT max(e.id) FILTER (WHERE e.type = ANY($3)) AS found,
	               max(e.id) FILTER (WHERE e.type = ANY($4)) AS handed
	          FROM index_case_events j JOIN events e ON e.id = j.event_id
	         WHERE j.index_case_id = ic.id AND e.type = ANY($3 || $4)) m
	 WHERE m.found IS NOT NULL AND (m.handed IS NULL OR m.handed < m.found))`

// batchResult is what one batch did.
type batchResult struct {
	last     int64 // the highest index case id looked at; 0 when the pass is over
	enqueued int   // jobs inserted (with their event)
	deferred int   // cases whose job is running now: enqueued again on a later pass
}

// enqueueBatch claims up to BatchSize changed index cases with ids above after and, in one transaction, inserts an
// Engine 4 job and a send_to_commcare_enqueued event for each. A case whose job is already waiting gets the event
// too (that job will send the newest data); a case whose job is running is left changed, so a later pass enqueues
// it again once that job is done.
func (e *Engine) enqueueBatch(ctx context.Context, after int64) (batchResult, error) {
	var res batchResult
	tx, err := e.deps.Pool.Begin(ctx)
	if err != nil {
		return res, fmt.Errorf("beginning a transaction: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck

	rows, err := tx.Query(ctx, `SELECT ic.id, ic.case_id, ic.county_id FROM index_cases ic
		 WHERE ic.id > $1 AND `+changedCondition+`
		 ORDER BY ic.id LIMIT $2
		   FOR UPDATE OF ic SKIP LOCKED`, after, e.config.BatchSize, commcare.ChangeEventTypes, commcare.HandOffEventTypes)
	if err != nil {
		return res, fmt.Errorf("selecting changed index cases: %w", err)
	}
	var ids []int64
	var params []river.InsertManyParams
	for rows.Next() {
		var id int64
		var args commcare.CaseLoaderArgs
		if err := rows.Scan(&id, &args.CaseID, &args.CountyID); err != nil {
			rows.Close()
			return res, fmt.Errorf("reading an index case: %w", err)
		}
		ids = append(ids, id)
		params = append(params, river.InsertManyParams{Args: args})
	}
	if err := rows.Err(); err != nil {
		return res, fmt.Errorf("selecting changed index cases: %w", err)
	}
	if len(ids) == 0 {
		return res, tx.Commit(ctx)
	}
	res.last = ids[len(ids)-1]
	// The rows were chosen on the statement's snapshot. Another daemon may have handed one of them off and committed
	// between that snapshot and our lock; a fresh statement sees its events, so the rule is checked again.
	ids, params, err = stillChanged(ctx, tx, ids, params)
	if err != nil {
		return res, err
	}

	inserted, err := e.deps.Jobs.InsertManyTx(ctx, tx, params)
	if err != nil {
		return res, fmt.Errorf("inserting %d jobs: %w", len(params), err)
	}
	var handed []int64
	for i, r := range inserted {
		if r.UniqueSkippedAsDuplicate && r.Job != nil && r.Job.State == rivertype.JobStateRunning {
			res.deferred++
			continue
		}
		handed = append(handed, ids[i])
	}
	if err := recordEnqueued(ctx, tx, handed); err != nil {
		return res, err
	}
	if err := tx.Commit(ctx); err != nil {
		return res, fmt.Errorf("committing: %w", err)
	}
	res.enqueued = len(handed)
	return res, nil
}

// recordEnqueued saves a send_to_commcare_enqueued event on each index case.
func recordEnqueued(ctx context.Context, db eclrs.DBTX, caseIDs []int64) error {
	if len(caseIDs) == 0 {
		return nil
	}
	_, err := db.Exec(ctx, `WITH ids AS (SELECT c, nextval('events_id_seq') AS e FROM unnest($2::bigint[]) AS c),
		     ev AS (INSERT INTO events (id, type) SELECT e, $1 FROM ids)
		INSERT INTO index_case_events (index_case_id, event_id) SELECT c, e FROM ids`,
		commcare.EventSendToCommCareEnqueued, caseIDs)
	if err != nil {
		return fmt.Errorf("recording the hand-off of %d index cases: %w", len(caseIDs), err)
	}
	return nil
}

// stillChanged keeps the claimed cases that are still changed, by a statement that sees every hand-off committed
// so far.
func stillChanged(ctx context.Context, db eclrs.DBTX, ids []int64, params []river.InsertManyParams) ([]int64, []river.InsertManyParams, error) {
	rows, err := db.Query(ctx, `SELECT ic.id FROM index_cases ic WHERE ic.id = ANY($1) AND ic.id > $2 AND `+
		changedCondition, ids, int64(0), commcare.ChangeEventTypes, commcare.HandOffEventTypes)
	if err != nil {
		return nil, nil, fmt.Errorf("checking claimed index cases: %w", err)
	}
	keep := map[int64]bool{}
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return nil, nil, fmt.Errorf("checking claimed index cases: %w", err)
		}
		keep[id] = true
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("checking claimed index cases: %w", err)
	}
	var keptIDs []int64
	var keptParams []river.InsertManyParams
	for i, id := range ids {
		if keep[id] {
			keptIDs = append(keptIDs, id)
			keptParams = append(keptParams, params[i])
		}
	}
	return keptIDs, keptParams, nil
}
