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
	poll.Listen(ctx, e.deps.Pool, e.wake, poll.ListenConfig{
		Channel: eclrs.NotifyChannel,
		ErrorFunc: func(err error, retryIn time.Duration) {
			e.logger.Warn("listening for new test results failed; polling only until it reconnects",
				zap.Error(err), zap.Duration("retry_in", retryIn))
		},
		NotifiedFunc:  func() { e.logger.Debug("new test results announced") },
		ListeningFunc: func() { e.TestSignals.Listening.Signal(struct{}{}) },
	})
}
