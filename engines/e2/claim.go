package e2

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"

	"github.com/viaduct-nys/viaduct/pkg/eclrs"
)

// claimed is a test result taken for processing, with its earlier failed attempts.
type claimed struct {
	eclrs.TestResult
	attempts int
	// queued is true when the result has a test_result_attempts row: failed attempts, or an operator's retry
	// (`viaduct retry e2`, which records none). Finishing the result deletes the row.
	queued bool
}

// unfinished is the data-at-rest contract with Engine 1, as SQL: test result tr has no finished event (processed or
// processing_failed). above is a SQL expression below every id the caller asks about (tr.id > above); repeating it
// on f.test_result_id lets the anti-join start both of its index scans there instead of reading every finished
// result from the first.
func unfinished(above string) string {
	return `NOT EXISTS (SELECT 1 FROM test_result_events f
	                 WHERE f.test_result_id = tr.id AND f.finished AND f.test_result_id > ` + above + `)`
}

// ready is the rule for what Engine 2 may claim, as SQL: test result tr is unfinished (above as for unfinished) and
// not waiting for a retry.
func ready(above string) string {
	return unfinished(above) + `
	AND NOT EXISTS (SELECT 1 FROM test_result_attempts w WHERE w.test_result_id = tr.id AND w.next_attempt_at > now())`
}

// claimAfter locks up to limit ready test results from the worker's share, in id order: first those below the
// floor that wait for a retry which is now due, then those above the floor. The share is the results whose patient
// key hashes to worker modulo workers: results with the same patient key always go to the same worker, so two
// workers rarely wait for each other's person locks. Rows another transaction holds are skipped, so several workers
// and daemons never take the same result.
func claimAfter(ctx context.Context, tx pgx.Tx, floor int64, limit, worker, workers int) ([]claimed, error) {
	const share = `($3 = 1 OR abs(hashtext(coalesce(tr.patient_key, '')) % $3) = $4)`
	retries, err := claim(ctx, tx, `tr.id <= $1 AND tr.id IN (SELECT a.test_result_id FROM test_result_attempts a
		  WHERE a.test_result_id <= $1 AND a.next_attempt_at <= now())
		AND `+ready("0")+` AND `+share+` ORDER BY tr.id LIMIT $2`, floor, limit, workers, worker)
	if err != nil || len(retries) == limit {
		return retries, err
	}
	fresh, err := claim(ctx, tx, `tr.id > $1 AND `+ready("$1")+` AND `+share+`
		ORDER BY tr.id LIMIT $2`, floor, limit-len(retries), workers, worker)
	return append(retries, fresh...), err
}

// claimIDs locks the given test results if they are still ready.
func claimIDs(ctx context.Context, tx pgx.Tx, ids []int64) ([]claimed, error) {
	return claim(ctx, tx, `tr.id = ANY($1) AND `+ready("0")+` ORDER BY tr.id`, ids)
}

func claim(ctx context.Context, tx pgx.Tx, where string, args ...any) ([]claimed, error) {
	rows, err := tx.Query(ctx, `SELECT `+eclrs.TestResultSelectList+`,
		       (SELECT a.attempts FROM test_result_attempts a WHERE a.test_result_id = tr.id)
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
		var attempts *int
		tr, err := eclrs.ScanTestResult(scanWithAttempts{rows, &attempts})
		if err != nil {
			return nil, fmt.Errorf("reading a claimed test result: %w", err)
		}
		c.TestResult = tr
		if attempts != nil {
			c.attempts, c.queued = *attempts, true
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("claiming test results: %w", err)
	}
	return dropFinished(ctx, tx, out)
}

// dropFinished drops the claimed results that are finished after all. The claim chose them on its statement's
// snapshot; a result another daemon finished and committed since then is locked by nobody any more, so the claim's
// lock does not tell. A fresh statement sees its finished event. Without it the batch would be processed twice and
// then refused by the unique index on finished events.
func dropFinished(ctx context.Context, tx pgx.Tx, taken []claimed) ([]claimed, error) {
	if len(taken) == 0 {
		return taken, nil
	}
	ids := make([]int64, len(taken))
	for i := range taken {
		ids[i] = taken[i].ID
	}
	rows, err := tx.Query(ctx, `SELECT test_result_id FROM test_result_events WHERE test_result_id = ANY($1) AND finished`, ids)
	if err != nil {
		return nil, fmt.Errorf("checking claimed test results: %w", err)
	}
	finished, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("checking claimed test results: %w", err)
	}
	if len(finished) == 0 {
		return taken, nil
	}
	return slices.DeleteFunc(taken, func(c claimed) bool { return slices.Contains(finished, c.ID) }), nil
}

// scanWithAttempts lets eclrs.ScanTestResult read a row that has one extra column, the attempts so far (NULL
// when the result has no test_result_attempts row).
type scanWithAttempts struct {
	pgx.Rows
	attempts **int
}

func (s scanWithAttempts) Scan(dest ...any) error { return s.Rows.Scan(append(dest, s.attempts)...) }

// nextFloor returns the highest id at or below which every test result is finished or waits for a retry in
// test_result_attempts (claimAfter takes those from there), starting from floor. Engine 1 inserts test results only
// under its import lock, taking their ids inside it, so ids commit in increasing order: a row can never appear
// below the floor later, and a row still being imported has an id above every row this statement sees.
func nextFloor(ctx context.Context, db eclrs.DBTX, floor int64) (int64, error) {
	var next int64
	err := db.QueryRow(ctx, `SELECT coalesce(
		    (SELECT tr.id - 1 FROM test_results tr
		      WHERE tr.id > $1 AND `+unfinished("$1")+`
		        AND NOT EXISTS (SELECT 1 FROM test_result_attempts a WHERE a.test_result_id = tr.id)
		      ORDER BY tr.id LIMIT 1),
		    (SELECT coalesce(max(id), 0) FROM test_results))`, floor).Scan(&next)
	if err != nil {
		return floor, fmt.Errorf("finding the first unfinished test result: %w", err)
	}
	return max(next, floor), nil
}

// saveFloor stores floor as the claim floor unless another daemon stored a higher one, and returns the stored one:
// a daemon starts from it, and each daemon picks up the others' progress.
func saveFloor(ctx context.Context, db eclrs.DBTX, floor int64) (int64, error) {
	var stored int64
	err := db.QueryRow(ctx, `UPDATE e2_claim_floor SET test_result_id = greatest(test_result_id, $1),
		    updated_at = CASE WHEN test_result_id < $1 THEN now() ELSE updated_at END
		RETURNING test_result_id`, floor).Scan(&stored)
	if err != nil {
		return floor, fmt.Errorf("storing the claim floor: %w", err)
	}
	return stored, nil
}

// floorSaveInterval is how often a daemon stores its floor at most: often enough that a restart finds it close to
// where it was (and claims from there, not from the first result), rarely enough not to add a write per batch.
const floorSaveInterval = time.Second

// waitingResults selects the unfinished test results (id, inserted_at) given the stored claim floor $1: those above
// it, and those below it that wait for a retry. The status page counts them; it costs what is above the floor.
var waitingResults = `SELECT tr.id, tr.inserted_at FROM test_results tr WHERE tr.id > $1 AND ` + unfinished("$1") + `
	UNION ALL
	SELECT tr.id, tr.inserted_at FROM test_result_attempts a JOIN test_results tr ON tr.id = a.test_result_id
	 WHERE a.test_result_id <= $1 AND ` + unfinished("0")

// storedFloor reads the claim floor every daemon has reached.
func storedFloor(ctx context.Context, db eclrs.DBTX) (int64, error) {
	var floor int64
	if err := db.QueryRow(ctx, `SELECT test_result_id FROM e2_claim_floor`).Scan(&floor); err != nil {
		return 0, fmt.Errorf("reading the claim floor: %w", err)
	}
	return floor, nil
}

// runBatch claims up to BatchSize ready test results and processes them in one transaction, and returns how many it
// claimed. When that transaction fails, each of its results is tried alone in a transaction of its own, so one bad
// result cannot hold back the others; a result that fails alone has the failure recorded: a retry later, or after
// the last attempt a processing_failed event with the reason.
func (e *Engine) runBatch(ctx context.Context, worker int) (int, error) {
	floor, err := e.claimFloor(ctx)
	if err != nil {
		return 0, err
	}

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
	if err := e.advanceFloor(ctx, floor, false); err != nil && ctx.Err() == nil {
		e.logger.Warn("could not advance the claim floor", zap.Error(err))
	}
	return len(ids), nil
}

// claimFloor returns the floor to claim above, reading the stored one on first use: a daemon that starts claims
// from where every daemon had got to, not from the first test result ever imported.
func (e *Engine) claimFloor(ctx context.Context) (int64, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.floorRead {
		stored, err := storedFloor(ctx, e.deps.Pool)
		if err != nil {
			return 0, err
		}
		e.floor, e.floorRead = max(e.floor, stored), true
	}
	return e.floor, nil
}

// advanceFloor moves the floor past the results finished since from, and stores it at most every
// floorSaveInterval (always when force is set).
func (e *Engine) advanceFloor(ctx context.Context, from int64, force bool) error {
	next, err := nextFloor(ctx, e.deps.Pool, from)
	if err != nil {
		return err
	}
	e.mu.Lock()
	e.floor = max(e.floor, next)
	floor, save := e.floor, force || time.Since(e.floorSavedAt) >= floorSaveInterval
	if save {
		e.floorSavedAt = time.Now()
	}
	e.mu.Unlock()
	if !save {
		return nil
	}
	stored, err := saveFloor(ctx, e.deps.Pool, floor)
	if err != nil {
		return err
	}
	e.mu.Lock()
	e.floor = max(e.floor, stored)
	e.mu.Unlock()
	return nil
}
