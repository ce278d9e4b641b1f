package e2

import (
	"context"
	"time"

	"go.uber.org/zap"

	"github.com/viaduct-nys/viaduct/pkg/eclrs"
)

// listen wakes idle workers whenever Engine 1 commits new test results (NOTIFY on eclrs.NotifyChannel). It is only
// a shortcut: when the connection drops it reconnects with a growing pause, and polling carries on meanwhile.
func (e *Engine) listen(ctx context.Context) {
	pause := time.Second
	for ctx.Err() == nil {
		err := e.listenOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		e.logger.Warn("listening for new test results failed; polling only until it reconnects",
			zap.Error(err), zap.Duration("retry_in", pause))
		e.sleep(ctx, pause, nil)
		pause = min(2*pause, time.Minute)
	}
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
	for {
		if _, err := pc.WaitForNotification(ctx); err != nil {
			return err
		}
		e.logger.Debug("new test results announced")
		e.wake.wake()
	}
}
