// Package jobqueue runs the process's one River client: started when the daemon starts, stopped when it stops, with
// the jobs in flight given time to finish. Engines register their workers in the client's config (Engine 4's case
// loader, Engine 5's importer of forwarded cases) and insert jobs through it; none of them starts or stops it, so
// the client works every registered queue whichever engines are enabled.
package jobqueue

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"go.uber.org/zap"
)

// Run starts client and works its queues until ctx is done. Then it stops the client: jobs in flight have
// stopTimeout to finish; after that they are cancelled (each records what it can, and River makes it available
// again) and Run waits a little longer for them to return. It returns nil after a clean stop.
func Run(ctx context.Context, client *river.Client[pgx.Tx], stopTimeout time.Duration, logger *zap.Logger) error {
	// The client runs on a context of its own: cancelling ctx must not cut jobs off before the stop timeout.
	if err := client.Start(context.WithoutCancel(ctx)); err != nil {
		return fmt.Errorf("starting the River client: %w", err)
	}
	<-ctx.Done()
	stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stopTimeout)
	defer cancel()
	if err := client.Stop(stopCtx); err == nil {
		return nil
	}
	logger.Warn("jobs in flight did not finish in time; cancelling them", zap.Duration("stop_timeout", stopTimeout))
	hardCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), min(max(stopTimeout/4, 100*time.Millisecond), 5*time.Second))
	defer cancel()
	if err := client.StopAndCancel(hardCtx); err != nil {
		return fmt.Errorf("stopping the River client: %w", err)
	}
	return nil
}
