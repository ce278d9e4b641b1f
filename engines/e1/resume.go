package e1

import (
	"context"
	"fmt"
	"time"

	"github.com/cenkalti/backoff/v4"
	"go.uber.org/zap"

	"github.com/viaduct-nys/viaduct/pkg/eclrs"
)

// record records obj as announced (eclrs.RecordFile), trying again with backoff while the database does not answer,
// until ctx ends. The message stays hidden meanwhile (its visibility is being extended), so an outage spends no
// receives: a message that reaches the dead-letter queue is never the only record of an export.
func (e *Engine) record(ctx context.Context, log *zap.Logger, obj eclrs.Object) (*eclrs.File, error) {
	b := backoff.WithContext(backoff.NewExponentialBackOff(backoff.WithMaxInterval(30*time.Second),
		backoff.WithMaxElapsedTime(0)), ctx)
	return backoff.RetryNotifyWithData(func() (*eclrs.File, error) {
		return eclrs.RecordFile(ctx, e.deps.Pool, obj)
	}, b, func(err error, wait time.Duration) {
		log.Warn("cannot record the announced file; trying again", zap.Error(err), zap.Duration("retry_in", wait))
	})
}

// attempt makes one import attempt at the recorded file f, reading object obj from S3. A file that has had
// MaxAttempts attempts is marked failed with the last attempt's reason instead: Engine 1 turns red, and a person
// looks. A failed attempt is noted on the file, which stays importing and is resumed once stale.
func (e *Engine) attempt(ctx context.Context, f *eclrs.File, obj eclrs.Object) (*Result, error) {
	if f.Status == eclrs.FileImporting && f.Attempts >= e.config.MaxAttempts {
		reason := fmt.Sprintf("gave up after %d attempts; the last failed with: %s", f.Attempts, f.FailureReason)
		if err := eclrs.FinishFile(ctx, e.deps.Pool, f.ID, eclrs.FileOutcome{Status: eclrs.FileFailed, FailureReason: reason}); err != nil {
			return nil, err
		}
		return &Result{File: f.Filename, FileID: f.ID, Status: eclrs.FileFailed, Reason: reason}, nil
	}
	res, err := e.importer.Import(ctx, obj, e.opener(obj))
	if err != nil && ctx.Err() == nil {
		if nerr := eclrs.NoteAttemptFailed(ctx, e.deps.Pool, f.ID, err.Error()); nerr != nil {
			e.logger.Warn("recording a failed import attempt", zap.Error(nerr))
		}
	}
	return res, err
}

// resumeStale resumes, one after the other, the announced files that have been importing for longer than staleAfter
// with no import under way, reading each again from S3, and returns how many it tried. Whatever became of their
// notifications (acknowledged after a failed attempt, lost with a dead daemon, moved to a dead-letter queue), the
// files row is the record that they are still to import.
func (e *Engine) resumeStale(ctx context.Context, staleAfter time.Duration) (int, error) {
	tried := 0
	for ctx.Err() == nil {
		f, obj, err := eclrs.ClaimStaleFile(ctx, e.deps.Pool, staleAfter)
		if err != nil || f == nil {
			return tried, err
		}
		tried++
		log := e.logger.With(zap.String("file", f.Filename), zap.Int64("file_id", f.ID), zap.Int("attempts", f.Attempts))
		log.Info("resuming an import that did not finish")
		res, err := e.attempt(ctx, f, obj)
		if err != nil {
			if ctx.Err() == nil {
				log.Error("resumed import failed; the file stays importing and is tried again", zap.Error(err),
					zap.Duration("retry_after", staleAfter))
			}
			continue
		}
		e.deps.Metrics.observeImport(res)
		logResult(log, res)
	}
	return tried, nil
}

// resumeLoop runs resumeStale every resumeInterval until ctx ends.
func (e *Engine) resumeLoop(ctx context.Context) {
	interval := min(e.config.ResumeAfter/2, time.Minute)
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		if _, err := e.resumeStale(ctx, e.config.ResumeAfter); err != nil && ctx.Err() == nil {
			e.logger.Warn("looking for imports to resume", zap.Error(err))
		}
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}
