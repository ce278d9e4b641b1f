package daemons_test

import (
	"context"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"

	"github.com/viaduct-nys/viaduct/pkg/daemons"
	"github.com/viaduct-nys/viaduct/pkg/pgtest"
)

// TestHeartbeat runs a daemon's heartbeat: while it beats the daemon is live and listed as running its engines,
// with its problems; once stopped it is listed, not live; a daemon whose beats stopped without a word (killed) is
// not live either.
func TestHeartbeat(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	h := &daemons.Heartbeat{ID: uuid.New(), Version: "v1.2.3", Engines: []string{"e1", "e2"}, Logger: zaptest.NewLogger(t),
		ProblemsFunc: func() daemons.Problems { return daemons.Problems{"e1": map[string]string{"reason": "queue_missing"}} }}
	h.TestSignals.Init(t)
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- h.Run(runCtx, db.Pool) }()
	require.NoError(t, h.TestSignals.Beat.WaitOrTimeout())

	// A daemon killed an hour ago, and one that stopped cleanly a minute ago.
	_, err := db.Pool.Exec(ctx, `INSERT INTO daemons (id, hostname, pid, version, engines, started_at, beat_at, stopped_at)
		VALUES ($1, 'old-host', 1, 'v1.0.0', '{e3}', now() - interval '2 hours', now() - interval '1 hour', NULL),
		       ($2, 'other-host', 2, 'v1.2.3', '{e2,e4}', now() - interval '1 hour', now() - interval '1 minute',
		        now() - interval '1 minute')`, uuid.New(), uuid.New())
	require.NoError(t, err)

	ds, err := daemons.List(ctx, db.Pool)
	require.NoError(t, err)
	require.Len(t, ds, 3)
	require.Equal(t, h.ID, ds[0].ID, "the live daemon first")
	require.True(t, ds[0].Live)
	require.Equal(t, []string{"e1", "e2"}, ds[0].Engines)
	require.JSONEq(t, `{"reason": "queue_missing"}`, string(ds[0].Problems["e1"]))
	require.False(t, ds[1].Live)
	require.False(t, ds[2].Live)

	require.Len(t, daemons.Running(ds, "e2"), 1, "the stopped daemon does not count")
	require.Empty(t, daemons.Running(ds, "e3"), "nor does the killed one")
	require.Empty(t, daemons.Running(ds, "e5"))

	stop()
	require.NoError(t, <-done)
	ds, err = daemons.List(ctx, db.Pool)
	require.NoError(t, err)
	require.Empty(t, daemons.Running(ds, "e1"), "a stopped daemon runs nothing")
	for _, d := range ds {
		if d.ID == h.ID {
			require.NotNil(t, d.StoppedAt)
		}
	}
}
