package e3

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
	"golang.org/x/sync/errgroup"

	"github.com/viaduct-nys/viaduct/pkg/casedb"
	"github.com/viaduct-nys/viaduct/pkg/pgtest"
	"github.com/viaduct-nys/viaduct/pkg/poll"
	"github.com/viaduct-nys/viaduct/pkg/tally"
	"github.com/viaduct-nys/viaduct/pkg/testfactory"
)

type fixture struct {
	db     *pgtest.DB
	client *river.Client[pgx.Tx]
	person int64
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	db := pgtest.New(t)
	// An insert-only River client: no queues, no workers.
	client, err := river.NewClient(riverpgxv5.New(db.Pool), &river.Config{})
	require.NoError(t, err)
	f := &fixture{db: db, client: client}
	f.person = testfactory.Person(t, context.Background(), db.Pool, &testfactory.PersonOpts{PatientKeys: []string{"1"}})
	testfactory.County(t, context.Background(), db.Pool, 1111)
	return f
}

// testConfig keeps the pauses short; adjust tweaks it.
func (f *fixture) engine(t *testing.T, adjust func(*Config)) *Engine {
	t.Helper()
	cfg := Config{UntilIdle: true, BusyPollInterval: time.Millisecond, IdlePollInterval: 10 * time.Millisecond}
	if adjust != nil {
		adjust(&cfg)
	}
	e, err := New(cfg, Deps{Pool: f.db.Pool, Jobs: f.client})
	require.NoError(t, err)
	return e
}

func (f *fixture) drain(t *testing.T) {
	t.Helper()
	require.NoError(t, f.engine(t, nil).Run(context.Background()))
}

// addCase stores an index case with the given events, oldest first, and returns its id.
func (f *fixture) addCase(t *testing.T, events ...string) int64 {
	t.Helper()
	id := testfactory.IndexCase(t, context.Background(), f.db.Pool,
		&testfactory.IndexCaseOpts{PersonID: f.person, CountyID: 1111}).ID
	f.addEvents(t, id, events...)
	return id
}

func (f *fixture) addEvents(t *testing.T, caseID int64, events ...string) {
	t.Helper()
	for _, typ := range events {
		testfactory.Event(t, context.Background(), f.db.Pool, &testfactory.EventOpts{IndexCaseID: caseID, Type: typ})
	}
}

// jobs returns the case ids of Engine 4's jobs, in insertion order.
func (f *fixture) jobs(t *testing.T) []string {
	t.Helper()
	rows, err := f.db.Pool.Query(context.Background(),
		`SELECT args->>'case_id' FROM river_job WHERE kind = $1 ORDER BY id`, casedb.CaseLoaderArgs{}.Kind())
	require.NoError(t, err)
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	return ids
}

func (f *fixture) caseID(t *testing.T, id int64) string {
	t.Helper()
	var caseID string
	require.NoError(t, f.db.Pool.QueryRow(context.Background(), `SELECT case_id FROM index_cases WHERE id = $1`, id).Scan(&caseID))
	return caseID
}

func (f *fixture) enqueuedEvents(t *testing.T, id int64) int {
	t.Helper()
	var n int
	require.NoError(t, f.db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM index_case_events j
		JOIN events e ON e.id = j.event_id WHERE j.index_case_id = $1 AND e.type = $2`,
		id, casedb.EventSendToCommCareEnqueued).Scan(&n))
	return n
}

// TestSelectionTruthTable is the reference's table (§4.1) and a few more rows: events oldest first, and whether the
// case is enqueued.
func TestSelectionTruthTable(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		events   []string
		selected bool
	}{
		{[]string{"index_case_created", "lab_result_untouched"}, true},
		{[]string{"index_case_updated", "send_to_commcare_enqueued", "send_to_commcare_succeeded"}, false},
		{[]string{"lab_result_created", "send_to_commcare_failed"}, false},
		{[]string{"lab_result_updated", "lab_result_untouched"}, true},
		{[]string{"index_case_created", "send_to_commcare_enqueued", "index_case_updated"}, true},
		{nil, false},
		{[]string{"retrieved_from_commcare", "index_case_untouched", "lab_result_untouched"}, false},
		{[]string{"send_to_commcare_succeeded"}, false},
		{[]string{"send_to_commcare_succeeded", "lab_result_created"}, true},
		{[]string{"index_case_created", "send_to_commcare_discarded"}, true},
	} {
		name := "no events"
		if len(tc.events) > 0 {
			name = strings.Join(tc.events, ",")
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			id := f.addCase(t, tc.events...)
			before := f.enqueuedEvents(t, id)
			f.drain(t)
			if !tc.selected {
				require.Empty(t, f.jobs(t))
				require.Equal(t, before, f.enqueuedEvents(t, id))
				return
			}
			require.Equal(t, []string{f.caseID(t, id)}, f.jobs(t))
			require.Equal(t, before+1, f.enqueuedEvents(t, id))
			// Handed off, the case is no longer selected.
			f.drain(t)
			require.Len(t, f.jobs(t), 1)
			require.Equal(t, before+1, f.enqueuedEvents(t, id))
		})
	}
}

func TestJobCarriesCaseAndCounty(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	id := f.addCase(t, casedb.EventIndexCaseCreated)
	f.drain(t)
	var args casedb.CaseLoaderArgs
	var queue string
	var maxAttempts int
	require.NoError(t, f.db.Pool.QueryRow(context.Background(),
		`SELECT args, queue, max_attempts FROM river_job`).Scan(&args, &queue, &maxAttempts))
	require.Equal(t, casedb.CaseLoaderArgs{CaseID: f.caseID(t, id), CountyID: 1111}, args)
	require.Equal(t, casedb.CaseLoaderQueue, queue)
	require.Equal(t, casedb.CaseLoaderMaxAttempts, maxAttempts)
}

func TestChangeWhileJobWaitsOrRuns(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	id := f.addCase(t, casedb.EventIndexCaseCreated)
	f.drain(t)
	require.Len(t, f.jobs(t), 1)

	// Changed while its job still waits: that job will send the newest data, so there is no second job, but the
	// hand-off is recorded and the case is not selected again.
	f.addEvents(t, id, casedb.EventLabResultCreated)
	f.drain(t)
	require.Len(t, f.jobs(t), 1, "never queued twice at once")
	require.Equal(t, 2, f.enqueuedEvents(t, id))

	// Changed while its job runs: the running job may have read the data already, so the case stays changed ...
	_, err := f.db.Pool.Exec(ctx, `UPDATE river_job SET state = 'running', attempt = 1, attempted_at = now()`)
	require.NoError(t, err)
	f.addEvents(t, id, casedb.EventLabResultUpdated)
	res, err := f.engine(t, nil).pass(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, res.deferred)
	require.Zero(t, res.enqueued)
	require.Equal(t, 2, f.enqueuedEvents(t, id), "no hand-off recorded while the job runs")
	// The horizon has moved past the change; the case is remembered apart, so passes see it without a new event.
	var deferred []int64
	rows, err := f.db.Pool.Query(ctx, `SELECT index_case_id FROM e3_deferred`)
	require.NoError(t, err)
	deferred, err = pgx.CollectRows(rows, pgx.RowTo[int64])
	require.NoError(t, err)
	require.Equal(t, []int64{id}, deferred)

	// ... and once that job has finished it is queued again: the change is not lost.
	_, err = f.db.Pool.Exec(ctx, `UPDATE river_job SET state = 'completed', finalized_at = now()`)
	require.NoError(t, err)
	f.drain(t)
	require.Len(t, f.jobs(t), 2)
	require.Equal(t, 3, f.enqueuedEvents(t, id))
}

func TestTwoEnginesEnqueueEachCaseOnce(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	var ids []int64
	for range 300 {
		ids = append(ids, f.addCase(t, casedb.EventIndexCaseCreated, casedb.EventLabResultCreated))
	}
	var g errgroup.Group
	for range 2 {
		e := f.engine(t, func(c *Config) { c.BatchSize = 20 })
		g.Go(func() error { return e.Run(context.Background()) })
	}
	require.NoError(t, g.Wait())
	require.Len(t, f.jobs(t), len(ids))
	for _, id := range ids {
		require.Equal(t, 1, f.enqueuedEvents(t, id))
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	t.Parallel()
	_, err := New(Config{BatchSize: -1, IdlePollInterval: time.Millisecond}, Deps{})
	require.ErrorContains(t, err, "batch size -1")
	require.ErrorContains(t, err, "idle at least 10ms")
	require.ErrorContains(t, err, "a database pool is required")
	require.ErrorContains(t, err, "a River client is required")
}

// TestChangeCommittedOutOfIDOrder: event ids are taken before commit, so a change can commit after a pass has
// handed off a later-numbered one and moved the horizon. The horizon is a transaction id below every transaction
// still running, so the late change is read by the next pass.
func TestChangeCommittedOutOfIDOrder(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	late, early := f.addCase(t), f.addCase(t)

	// The late change takes its event id first and commits last.
	tx, err := f.db.Pool.Begin(ctx)
	require.NoError(t, err)
	defer tx.Rollback(ctx) //nolint:errcheck
	testfactory.Event(t, ctx, tx, &testfactory.EventOpts{IndexCaseID: late, Type: casedb.EventIndexCaseCreated})
	f.addEvents(t, early, casedb.EventIndexCaseCreated)

	res, err := f.engine(t, nil).pass(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, res.enqueued)
	require.Equal(t, []string{f.caseID(t, early)}, f.jobs(t))
	require.NoError(t, tx.Commit(ctx))

	f.drain(t)
	require.Equal(t, []string{f.caseID(t, early), f.caseID(t, late)}, f.jobs(t), "the late change is handed off too")
	require.Equal(t, 1, f.enqueuedEvents(t, late))
}

// TestNoJobsLeftAfterTheRecheck: when another daemon hands off every case of a batch between the read of the
// candidates and the lock, the batch inserts nothing and is not an error (River refuses an empty insert).
func TestNoJobsLeftAfterTheRecheck(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	ids := []int64{f.addCase(t, casedb.EventIndexCaseCreated), f.addCase(t, casedb.EventIndexCaseCreated)}
	for _, id := range ids {
		f.addEvents(t, id, casedb.EventSendToCommCareEnqueued) // the other daemon's hand-off
	}
	res, err := f.engine(t, nil).enqueueBatch(ctx, ids)
	require.NoError(t, err)
	require.Equal(t, batchResult{}, res)
	require.Empty(t, f.jobs(t))
}

// TestWaitingEqualsRecount: through hand-offs, changes, a running job and a locked case, what the status page
// reads from the horizon equals the rule evaluated on every index case.
func TestWaitingEqualsRecount(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	requireEqual := func(step string) {
		t.Helper()
		counts, err := tally.Read(ctx, f.db.Pool)
		require.NoError(t, err)
		s, err := Summarize(ctx, f.db.Pool, counts)
		require.NoError(t, err)
		rows, err := f.db.Pool.Query(ctx, waitingCases, nil) // no horizon: every index case
		require.NoError(t, err)
		recount, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		require.NoError(t, err)
		require.Equal(t, int64(len(recount)), s.Waiting, step)
		var enqueued int64
		require.NoError(t, f.db.Pool.QueryRow(ctx, `SELECT count(*) FROM events WHERE type = $1`,
			casedb.EventSendToCommCareEnqueued).Scan(&enqueued))
		require.Equal(t, enqueued, s.Enqueued, step)
	}
	var ids []int64
	for range 20 {
		ids = append(ids, f.addCase(t, casedb.EventIndexCaseCreated))
	}
	requireEqual("before any pass")
	f.drain(t)
	requireEqual("all handed off")

	for _, id := range ids[:5] {
		f.addEvents(t, id, casedb.EventLabResultCreated)
	}
	requireEqual("five changed")

	// One job runs, one case is held by another transaction: both deferred past the horizon.
	_, err := f.db.Pool.Exec(ctx, `UPDATE river_job SET state = 'running', attempt = 1, attempted_at = now()
		 WHERE args->>'case_id' = $1`, f.caseID(t, ids[0]))
	require.NoError(t, err)
	tx, err := f.db.Pool.Begin(ctx)
	require.NoError(t, err)
	defer tx.Rollback(ctx) //nolint:errcheck
	_, err = tx.Exec(ctx, `SELECT 1 FROM index_cases WHERE id = $1 FOR UPDATE`, ids[1])
	require.NoError(t, err)
	res, err := f.engine(t, nil).pass(ctx)
	require.NoError(t, err)
	require.Equal(t, passResult{ran: true, waiting: 5, enqueued: 3, deferred: 2}, res)
	requireEqual("two deferred")
	require.NoError(t, tx.Rollback(ctx))

	f.drain(t)
	requireEqual("the locked one handed off, the running one still deferred")
	_, err = f.db.Pool.Exec(ctx, `UPDATE river_job SET state = 'completed', finalized_at = now()`)
	require.NoError(t, err)
	f.drain(t)
	requireEqual("all handed off again")
	counts, err := tally.Read(ctx, f.db.Pool)
	require.NoError(t, err)
	s, err := Summarize(ctx, f.db.Pool, counts)
	require.NoError(t, err)
	require.Zero(t, s.Waiting)
}

// TestUntilIdleLeavesAStuckJob: a changed case whose job is stuck running (its worker died) does not keep an
// until-idle run from ending; the run says what it left.
func TestUntilIdleLeavesAStuckJob(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	id := f.addCase(t, casedb.EventIndexCaseCreated)
	f.drain(t)
	_, err := f.db.Pool.Exec(ctx, `UPDATE river_job SET state = 'running', attempt = 1, attempted_at = now()`)
	require.NoError(t, err)
	f.addEvents(t, id, casedb.EventIndexCaseUpdated)

	core, logs := observer.New(zap.WarnLevel)
	e, err := New(Config{UntilIdle: true, IdlePollInterval: 10 * time.Millisecond},
		Deps{Pool: f.db.Pool, Jobs: f.client, Logger: zap.New(core)})
	require.NoError(t, err)
	require.NoError(t, e.Run(ctx))
	left := logs.FilterMessageSnippet("stopping with changed index cases left").All()
	require.Len(t, left, 1)
	require.Equal(t, int64(1), left[0].ContextMap()["left"])
	require.Equal(t, 1, f.enqueuedEvents(t, id), "not handed off while its job runs")
}

// TestNotifyWakesAnIdleEngine: Engine 2's NOTIFY on casedb.ChangedChannel starts a pass at once; the idle interval
// is an hour.
func TestNotifyWakesAnIdleEngine(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	e := f.engine(t, func(c *Config) { c.UntilIdle, c.IdlePollInterval = false, time.Hour })
	e.TestSignals.Init(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()

	// Once the engine listens, it has made its first look and sleeps for the hour.
	e.TestSignals.Listening.WaitOrTimeout()
	id := f.addCase(t, casedb.EventIndexCaseCreated)
	_, err := f.db.Pool.Exec(context.Background(), `SELECT pg_notify($1, '')`, casedb.ChangedChannel)
	require.NoError(t, err)
	for {
		o := e.TestSignals.Poll.PassDone.WaitOrTimeout()
		require.NoError(t, o.Err)
		if o.Result == poll.Busy {
			break
		}
	}
	cancel()
	require.NoError(t, <-done)
	require.Equal(t, []string{f.caseID(t, id)}, f.jobs(t))
}

// TestRunPollsUntilStopped: without UntilIdle, Run hands off what it finds, looks again after a busy pass, waits
// after an idle one, and returns nil once stopped.
func TestRunPollsUntilStopped(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	id := f.addCase(t, casedb.EventIndexCaseCreated)
	e := f.engine(t, func(c *Config) { c.UntilIdle, c.IdlePollInterval = false, time.Hour })
	e.TestSignals.Init(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	require.Equal(t, poll.Outcome{Result: poll.Busy}, e.TestSignals.Poll.PassDone.WaitOrTimeout())
	require.Equal(t, poll.Outcome{Result: poll.Idle}, e.TestSignals.Poll.PassDone.WaitOrTimeout(),
		"a busy pass is followed by another")
	cancel()
	require.NoError(t, <-done)
	require.Equal(t, []string{f.caseID(t, id)}, f.jobs(t))
}
