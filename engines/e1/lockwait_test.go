package e1

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/viaduct-nys/viaduct/pkg/awstest"
	"github.com/viaduct-nys/viaduct/pkg/eclrs"
)

// TestLockWaitSpendsNoReceives: an import that waits for another daemon's import for longer than the queue's own
// visibility timeout keeps its message hidden from the start, so the message is received once, not once per
// visibility timeout (each receive counts towards the dead-letter redrive).
func TestLockWaitSpendsNoReceives(t *testing.T) {
	t.Parallel()
	const queueVisibility = 2 * time.Second
	ctx := context.Background()
	env, stop, err := awstest.Start(ctx)
	require.NoError(t, err)
	t.Cleanup(stop)
	reg := prometheus.NewRegistry()
	engine := newQueueEngine(t, env, "e1lock", &awstest.CreateOpts{VisibilityTimeout: queueVisibility},
		func(_ *Config, d *Deps) { d.Metrics = NewMetrics(reg) })
	db, res := engine.db, engine.res

	// Another daemon's import holds the lock.
	other, err := db.Pool.Begin(ctx)
	require.NoError(t, err)
	defer other.Rollback(ctx) //nolint:errcheck
	_, err = other.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, importLock)
	require.NoError(t, err)

	const key = "waiting.txt"
	require.NoError(t, env.Upload(ctx, res.Names.Bucket, key, strings.NewReader(eclrs.V3.Header()+"\n")))
	require.NoError(t, env.Announce(ctx, res, res.Names.Bucket, key, awstest.AnnounceOpts{EventTime: time.Now()}))
	done := make(chan error, 1)
	go func() { done <- engine.Run(ctx) }()

	// The import has started and waits for the lock: its files row is there.
	for {
		var n int
		require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*) FROM files WHERE key = $1`, key).Scan(&n))
		if n > 0 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Three of the queue's visibility timeouts: without the extension the message would have come back twice.
	time.Sleep(3 * queueVisibility)
	require.NoError(t, other.Rollback(ctx))
	require.NoError(t, <-done)

	var status string
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT status FROM files WHERE key = $1`, key).Scan(&status))
	require.Equal(t, eclrs.FileImported, status)
	families, err := reg.Gather()
	require.NoError(t, err)
	received := 0.0
	for _, f := range families {
		if f.GetName() == "viaduct_e1_notifications_total" {
			for _, m := range f.GetMetric() {
				received += m.GetCounter().GetValue()
			}
		}
	}
	require.Equal(t, 1.0, received, "the message was received once")
}
