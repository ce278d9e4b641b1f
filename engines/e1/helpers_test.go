package e1

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"

	"github.com/viaduct-nys/viaduct/pkg/awstest"
	"github.com/viaduct-nys/viaduct/pkg/pgtest"
)

// queueEngine is an Engine on a fresh database and a fresh bucket and queue of env, as the tests use it.
type queueEngine struct {
	*Engine
	db  *pgtest.DB
	res awstest.Resources
}

// newQueueEngine makes a queueEngine: until idle, with short waits, the queue created with queue (nil: the
// defaults); adjust may change the configuration and the dependencies before the engine is built.
func newQueueEngine(t *testing.T, env *awstest.Env, prefix string, queue *awstest.CreateOpts,
	adjust func(*Config, *Deps)) *queueEngine {
	t.Helper()
	db := pgtest.New(t)
	res, err := env.CreateResources(context.Background(), awstest.UniqueNames(prefix), queue)
	require.NoError(t, err)
	cfg := Config{QueueURL: res.QueueURL, WaitTime: time.Second, UntilIdle: true,
		IdleCheckInterval: 100 * time.Millisecond, VisibilityTimeout: 30 * time.Second}
	deps := Deps{Pool: db.Pool, AWSConfig: env.AWSConfig, S3: env.S3, Logger: zaptest.NewLogger(t)}
	if adjust != nil {
		adjust(&cfg, &deps)
	}
	e, err := New(cfg, deps)
	require.NoError(t, err)
	return &queueEngine{Engine: e, db: db, res: res}
}

// runUntilIdle runs the engine until it is idle; a stuck engine fails the test instead of hanging it.
func (q *queueEngine) runUntilIdle(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	require.NoError(t, q.Run(ctx))
	require.NoError(t, ctx.Err(), "the engine stopped because it was idle, not because time ran out")
}
