package e2

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"

	"github.com/viaduct-nys/viaduct/pkg/eclrs"
)

// claimed is a test result taken for processing, with its earlier failed attempts.
type claimed struct {
	eclrs.TestResult
	attempts int
}

// unfinished is the data-at-rest contract with Engine 1: test result tr has no finished event (processed or
// processing_failed). $1 is a lower bound on tr.id; repeating it on f.test_result_id lets the anti-join start both
// of its index scans there instead of reading every finished result from the first.
const unfinished = `NOT EXISTS (SELECT 1 FROM test_result_events f
	                 WHERE f.test_result_id = tr.id AND f.finished AND f.test_result_id > $1)`

// readyCondition: a test result is ready when it is unfinished and not waiting for a retry.
const readyCondition = unfinished + `
	AND NOT EXISTS (SELECT 1 FROM test_result_attempts w WHERE w.test_result_id = tr.id AND w.next_attempt_at > now())`

// claimAfter locks up to limit ready test results with ids above after, in id order, from the worker's share:
// results whose patient key hashes to worker modulo workers. Rows another transaction holds are skipped, so several
// workers and daemons never take the same result. The shares keep a daemon's workers apart: results with the same
// patient key always go to the same worker, so two workers rarely wait for each other's person locks.
func claimAfter(ctx context.Context, tx pgx.Tx, after int64, limit, worker, workers int) ([]claimed, error) {
	return claim(ctx, tx, `tr.id > $1 AND `+readyCondition+`
		AND ($3 = 1 OR abs(hashtext(coalesce(tr.patient_key, '')) % $3) = $4)
		ORDER BY tr.id LIMIT $2`, after, limit, workers, worker)
}

// claimIDs locks the given test results if they are still ready.
func claimIDs(ctx context.Context, tx pgx.Tx, ids []int64) ([]claimed, error) {
	return claim(ctx, tx, `tr.id = ANY($2) AND tr.id > $1 AND `+readyCondition+` ORDER BY tr.id`, int64(0), ids)
}

func claim(ctx context.Context, tx pgx.Tx, where string, args ...any) ([]claimed, error) {
	rows, err := tx.Query(ctx, `SELECT `+eclrs.TestResultSelectList+`,
		       coalesce((SELECT a.attempts FROM test_result_attempts a WHERE a.test_result_id = tr.id), 0)
		  FROM test_results tr
		 WHERE `+where+`
		   FOR UPDATE OF tr SKIP LOCKED`, args...)
	if err != nil {
		return nil, fmt.Errorf("claiming test results: %w", err)
	}
	defer rows.Close()
	var out []claimed
	for rows.Next() {
		var c claimed
		tr, err := eclrs.ScanTestResult(scanWithAttempts{rows, &c.attempts})
		if err != nil {
			return nil, fmt.Errorf("reading a claimed test result: %w", err)
		}
		c.TestResult = tr
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("claiming test results: %w", err)
	}
	return out, nil
}

// scanWithAttempts lets eclrs.ScanTestResult read a row that has one extra column, the attempts so far.
type scanWithAttempts struct {
	pgx.Rows
	attempts *int
}

func (s scanWithAttempts) Scan(dest ...any) error { return s.Rows.Scan(append(dest, s.attempts)...) }

// nextFloor returns the highest id at or below which every test result is finished, starting from floor. Engine 1
// imports one file at a time under a database-wide lock, so test result ids are committed in increasing order and a
// row can never appear below the floor later; the floor is still reset now and then (see runBatch) so that a row
// inserted some other way is found.
func nextFloor(ctx context.Context, db eclrs.DBTX, floor int64) (int64, error) {
	var next int64
	err := db.QueryRow(ctx, `SELECT coalesce(
		    (SELECT tr.id - 1 FROM test_results tr
		      WHERE tr.id > $1 AND `+unfinished+`
		      ORDER BY tr.id LIMIT 1),
		    (SELECT coalesce(max(id), 0) FROM test_results))`, floor).Scan(&next)
	if err != nil {
		return floor, fmt.Errorf("finding the first unfinished test result: %w", err)
	}
	return max(next, floor), nil
}

// floorRescanInterval is how often the floor goes back to zero, as a safety net for rows inserted out of order.
const floorRescanInterval = 10 * time.Minute

// runBatch claims up to BatchSize ready test results and processes them in one transaction, and returns how many it
// claimed. When that transaction fails, each of its results is tried alone in a transaction of its own, so one bad
// result cannot hold back the others; a result that fails alone has the failure recorded: a retry later, or after
// the last attempt a processing_failed event with the reason.
func (e *Engine) runBatch(ctx context.Context, worker int) (int, error) {
	e.mu.Lock()
	floor := e.floor
	e.mu.Unlock()

	ids, err := e.processBatch(ctx, func(tx pgx.Tx) ([]claimed, error) {
		return claimAfter(ctx, tx, floor, e.config.BatchSize, worker, e.config.Workers)
	})
	if err != nil && len(ids) == 0 {
		return 0, err
	}
	if err != nil && ctx.Err() == nil {
		// Most failures are a collision with another daemon's batch over a new person; once that one has
		// committed, the same batch goes through.
		e.logger.Warn("batch failed; trying it again", zap.Int("test_results", len(ids)), zap.Error(err))
		_, err = e.processBatch(ctx, func(tx pgx.Tx) ([]claimed, error) { return claimIDs(ctx, tx, ids) })
	}
	if err != nil {
		if ctx.Err() != nil {
			return 0, nil
		}
		e.logger.Warn("batch failed twice; processing its test results one at a time",
			zap.Int("test_results", len(ids)), zap.Error(err))
		for _, id := range ids {
			if _, err := e.processBatch(ctx, func(tx pgx.Tx) ([]claimed, error) { return claimIDs(ctx, tx, []int64{id}) }); err != nil {
				if ctx.Err() != nil {
					return 0, nil
				}
				if err := e.recordFailure(ctx, id, err); err != nil {
					return 0, err
				}
			}
		}
		return len(ids), nil
	}
	if next, err := nextFloor(ctx, e.deps.Pool, floor); err == nil {
		e.mu.Lock()
		e.floor = max(e.floor, next)
		if time.Since(e.floorSetAt) > floorRescanInterval {
			e.floor, e.floorSetAt = 0, time.Now()
		}
		e.mu.Unlock()
	} else if ctx.Err() == nil {
		e.logger.Warn("could not advance the scan floor", zap.Error(err))
	}
	return len(ids), nil
}
