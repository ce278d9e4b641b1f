package e3

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"

	"github.com/viaduct-nys/viaduct/pkg/casedb"
	"github.com/viaduct-nys/viaduct/pkg/poll"
)

// TestPassesMoveTheMetrics: every pass is counted by its result, with the cases it handed off or deferred and its
// time; a pass that found the lock taken, or failed, is counted as such. Until-idle runs end on their own, and the
// loop's test signals say when a pass was skipped or failed: nothing sleeps.
func TestPassesMoveTheMetrics(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	// Each engine shares the metrics, as the daemon's one Engine 3 would across its passes, and has its own signals.
	newEngine := func() *Engine {
		t.Helper()
		e, err := New(Config{UntilIdle: true, BusyPollInterval: time.Millisecond, IdlePollInterval: 10 * time.Millisecond},
			Deps{Pool: f.db.Pool, Jobs: f.client, Metrics: m})
		require.NoError(t, err)
		e.TestSignals.Init(t)
		return e
	}
	e := newEngine()
	passes := func(result string) float64 { return value(t, m.passes.WithLabelValues(result)) }
	cases := func(outcome string) float64 { return value(t, m.cases.WithLabelValues(outcome)) }
	timed := func() uint64 {
		t.Helper()
		families, err := reg.Gather()
		require.NoError(t, err)
		for _, mf := range families {
			if mf.GetName() == "viaduct_e3_pass_seconds" {
				return mf.GetMetric()[0].GetHistogram().GetSampleCount()
			}
		}
		t.Fatal("viaduct_e3_pass_seconds not gathered")
		return 0
	}

	// Three changed cases: one pass hands them off, the next finds nothing and the until-idle run ends.
	first := f.addCase(t, casedb.EventIndexCaseCreated)
	f.addCase(t, casedb.EventIndexCaseCreated)
	f.addCase(t, casedb.EventIndexCaseCreated)
	require.Zero(t, value(t, m.lastComplete), "no pass yet")
	require.NoError(t, e.Run(ctx))
	require.Equal(t, 2.0, passes("ok"))
	require.Equal(t, 3.0, cases("enqueued"))
	require.Zero(t, cases("deferred"))
	require.Equal(t, uint64(2), timed())
	require.InDelta(t, float64(time.Now().Unix()), value(t, m.lastComplete), 60)

	// A case changed while its job runs is deferred.
	_, err := f.db.Pool.Exec(ctx, `UPDATE river_job SET state = 'running', attempt = 1, attempted_at = now()
		 WHERE args->>'case_id' = $1`, f.caseID(t, first))
	require.NoError(t, err)
	f.addEvents(t, first, casedb.EventLabResultCreated)
	require.NoError(t, e.Run(ctx))
	require.Equal(t, 3.0, passes("ok"))
	require.Equal(t, 3.0, cases("enqueued"))
	require.Equal(t, 1.0, cases("deferred"))
	require.Equal(t, uint64(3), timed())

	// Another daemon's pass holds the lock: passes are skipped until it lets go.
	conn, err := f.db.Pool.Acquire(ctx)
	require.NoError(t, err)
	defer conn.Release()
	_, err = conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, passLock)
	require.NoError(t, err)
	e = newEngine()
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	require.Equal(t, poll.Skipped, e.TestSignals.Poll.PassDone.WaitOrTimeout().Result)
	require.GreaterOrEqual(t, passes("skipped"), 1.0)
	_, err = conn.Exec(ctx, `SELECT pg_advisory_unlock($1)`, passLock)
	require.NoError(t, err)
	require.NoError(t, <-done)
	require.Equal(t, 4.0, passes("ok"), "one pass once the lock was free")
	require.Equal(t, 2.0, cases("deferred"), "the case whose job runs, deferred again")
	require.Equal(t, uint64(4), timed(), "skipped passes are not timed")

	// A pass that fails is counted, and retried.
	_, err = f.db.Pool.Exec(ctx, `ALTER TABLE e3_cursor RENAME TO e3_cursor_away`)
	require.NoError(t, err)
	e = newEngine()
	go func() { done <- e.Run(ctx) }()
	require.Error(t, e.TestSignals.Poll.PassDone.WaitOrTimeout().Err)
	require.GreaterOrEqual(t, passes("failed"), 1.0)
	_, err = f.db.Pool.Exec(ctx, `ALTER TABLE e3_cursor_away RENAME TO e3_cursor`)
	require.NoError(t, err)
	require.NoError(t, <-done)
	require.Equal(t, 5.0, passes("ok"))
	require.Zero(t, passes("interrupted"))
}

// value reads a counter or gauge, as prometheus/testutil's ToFloat64 does (testutil would add a module to go.mod).
func value(t *testing.T, m prometheus.Metric) float64 {
	t.Helper()
	var out dto.Metric
	require.NoError(t, m.Write(&out))
	switch {
	case out.Counter != nil:
		return out.Counter.GetValue()
	case out.Gauge != nil:
		return out.Gauge.GetValue()
	}
	t.Fatalf("%s is neither a counter nor a gauge", m.Desc())
	return 0
}
