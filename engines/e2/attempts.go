package e2

import (
	"context"
	"fmt"
	"time"

	"github.com/cenkalti/backoff/v4"
	"go.uber.org/zap"

	"github.com/viaduct-nys/viaduct/pkg/eclrs"
)

// retry is a failed attempt that will be tried again after delay.
type retry struct {
	id       int64
	attempts int
	reason   string
	delay    time.Duration
}

// failAttempt records that the planned test result failed: another attempt later, or after the last attempt (or
// when no retry can help) a processing_failed event with the reason, which finishes it.
func (b *batch) failAttempt(p *plan) {
	n := p.attempts + 1
	id := p.tr.ID
	if p.final || n >= b.engine.config.MaxAttempts {
		b.failed++
		b.events = append(b.events, event{typ: eclrs.EventProcessingFailed, testResult: id, finished: true,
			data: eventData{reason: p.reason, attempts: n}})
		if p.queued {
			b.clearAttempts = append(b.clearAttempts, id)
		}
		b.engine.logger.Warn("test result failed; giving up", zap.Int64("test_result_id", id),
			zap.Int64("file_id", p.tr.FileID), zap.Int("attempts", n), zap.String("reason", p.reason))
		return
	}
	r := retry{id: id, attempts: n, reason: p.reason, delay: b.engine.retryDelay(n)}
	b.retries = append(b.retries, r)
	b.engine.logger.Warn("test result failed; will retry", zap.Int64("test_result_id", id),
		zap.Int64("file_id", p.tr.FileID), zap.Int("attempts", n), zap.Duration("retry_in", r.delay), zap.String("reason", p.reason))
}

// retryDelay is the wait before attempt n+1: exponential from RetryInitial, capped at RetryMax, with jitter so that
// results that failed together do not all come back at once.
func (e *Engine) retryDelay(n int) time.Duration {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = e.config.RetryInitial
	b.MaxInterval = e.config.RetryMax
	b.MaxElapsedTime = 0
	b.Reset()
	d := b.NextBackOff()
	for range n - 1 {
		d = b.NextBackOff()
	}
	return d
}

// recordFailure records a failed attempt at test result id, which failed alone in its own transaction with err.
// The result is claimed again first: if another worker has it or it is finished, there is nothing to record.
func (e *Engine) recordFailure(ctx context.Context, id int64, cause error) error {
	tx, err := e.deps.Pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("recording a failed attempt: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck
	results, err := claimIDs(ctx, tx, []int64{id})
	if err != nil || len(results) == 0 {
		return err
	}
	b := e.newBatch(results)
	p := plan{tr: &results[0].TestResult, attempts: results[0].attempts, queued: results[0].queued}
	p.fail(false, cause.Error())
	b.apply(&p)
	if err := b.write(ctx, tx); err != nil {
		return fmt.Errorf("recording a failed attempt at test result %d: %w", id, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("recording a failed attempt at test result %d: %w", id, err)
	}
	e.mu.Lock()
	e.stats.Results += b.failed
	e.stats.Failed += b.failed
	e.stats.Retried += len(b.retries)
	e.mu.Unlock()
	e.deps.Metrics.observeFailure(b.failed > 0)
	return nil
}
