package e2

import (
	"context"
	"time"

	"go.uber.org/zap"

	"github.com/viaduct-nys/viaduct/pkg/eclrs"
	"github.com/viaduct-nys/viaduct/pkg/poll"
)

// listen wakes idle workers whenever Engine 1 commits new test results (NOTIFY on eclrs.NotifyChannel). It is only
// a shortcut: when the connection drops it reconnects with a growing pause, and polling carries on meanwhile.
func (e *Engine) listen(ctx context.Context) {
	// listenOnce returns only when listening failed, so every pass is a failure: the pause starts at a second and
	// doubles (with jitter) up to a minute.
	poll.New(poll.Config{
		BackoffInitial: time.Second,
		BackoffMax:     time.Minute,
		ErrorFunc: func(err error, retryIn time.Duration) {
			e.logger.Warn("listening for new test results failed; polling only until it reconnects",
				zap.Error(err), zap.Duration("retry_in", retryIn))
		},
	}, func(ctx context.Context) (poll.Result, error) {
		return poll.Idle, e.listenOnce(ctx)
	}).Run(ctx)
}

func (e *Engine) listenOnce(ctx context.Context) error {
	conn, err := e.deps.Pool.Acquire(ctx)
	if err != nil {
		return err
	}
	// The connection leaves the pool: it stays in LISTEN mode until it is closed.
	pc := conn.Hijack()
	defer pc.Close(context.WithoutCancel(ctx)) //nolint:errcheck
	if _, err := pc.Exec(ctx, "LISTEN "+eclrs.NotifyChannel); err != nil {
		return err
	}
	// Results committed before LISTEN took effect are found by this poll.
	e.wake.wake()
	e.TestSignals.Listening.Signal(struct{}{})
	for {
		if _, err := pc.WaitForNotification(ctx); err != nil {
			return err
		}
		e.logger.Debug("new test results announced")
		e.wake.wake()
	}
}
