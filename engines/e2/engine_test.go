package e2

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sync/errgroup"

	"github.com/viaduct-nys/viaduct/pkg/casedb"
	"github.com/viaduct-nys/viaduct/pkg/commcare/commcaretest"
	"github.com/viaduct-nys/viaduct/pkg/countylist"
	"github.com/viaduct-nys/viaduct/pkg/eclrs"
	"github.com/viaduct-nys/viaduct/pkg/eclrs/eclrsgen"
	"github.com/viaduct-nys/viaduct/pkg/poll"
	"github.com/viaduct-nys/viaduct/pkg/tally"
)

func TestNewRejectsBadConfig(t *testing.T) {
	t.Parallel()
	_, err := New(Config{BatchSize: -1, Workers: 100, PollInterval: time.Millisecond, MaxAttempts: -2}, Deps{})
	require.Error(t, err)
	for _, want := range []string{"batch size -1", "100 workers", "poll interval 1ms", "max attempts -2",
		"a database pool is required", "a county list is required"} {
		require.ErrorContains(t, err, want)
	}
}

// outcome counts what a run produced, for comparing runs over the same test results.
type runOutcome struct {
	People, Cases, Labs, ChangeLogs, Finished int
	Events                                    map[string]int
}

func (f *fixture) outcome(t *testing.T) runOutcome {
	t.Helper()
	o := runOutcome{
		People:     f.count(t, `SELECT count(*) FROM people`),
		Cases:      f.count(t, `SELECT count(*) FROM index_cases`),
		Labs:       f.count(t, `SELECT count(*) FROM lab_results`),
		ChangeLogs: f.count(t, `SELECT count(*) FROM change_logs`),
		Finished:   f.count(t, `SELECT count(*) FROM test_result_events WHERE finished`),
		Events:     map[string]int{},
	}
	rows, err := f.db.Pool.Query(context.Background(), `SELECT type, count(*) FROM events GROUP BY type`)
	require.NoError(t, err)
	for rows.Next() {
		var typ string
		var n int
		require.NoError(t, rows.Scan(&typ, &n))
		o.Events[typ] = n
	}
	require.NoError(t, rows.Err())
	return o
}

func TestTwoDaemonsDrainOneBacklogWithoutDuplicates(t *testing.T) {
	t.Parallel()
	export := eclrsgen.Options{Rows: 6000, Seed: 5}

	// The reference: the same export drained by one engine with one worker.
	ref := newFixtureWith(t, commcaretest.NewYorkCounties())
	n := loadExport(t, ref.db, export)
	ref.drain(t, func(c *Config) { c.BatchSize = 500 })
	want := ref.outcome(t)
	require.Equal(t, n, want.Finished)
	require.Positive(t, want.People)

	// Two engines, as two daemons would be, each with two workers and small batches so their claims interleave.
	f := newFixtureWith(t, commcaretest.NewYorkCounties())
	loadExport(t, f.db, export)
	engines := []*Engine{}
	for range 2 {
		engines = append(engines, f.engine(t, func(c *Config) { c.BatchSize, c.Workers = 150, 2 }))
	}
	var g errgroup.Group
	for _, e := range engines {
		g.Go(func() error { return e.Run(context.Background()) })
	}
	require.NoError(t, g.Wait())
	checkInvariants(t, f.db)

	require.Equal(t, want, f.outcome(t), "the same people, cases, lab results and events as one engine alone")
	total := 0
	for i, e := range engines {
		s := e.Stats()
		require.Positive(t, s.Results, "engine %d did part of the work", i)
		total += s.Results
	}
	require.Equal(t, n, total, "every test result was processed by exactly one engine")
	require.Zero(t, f.count(t, `SELECT count(*) FROM (SELECT 1 FROM lab_results
		GROUP BY index_case_id, accession_number HAVING count(*) > 1) x`), "no lab result twice")
	require.Zero(t, f.count(t, `SELECT count(*) FROM (SELECT 1 FROM index_cases
		GROUP BY person_id, county_id HAVING count(*) > 1) x`), "no index case twice")
}

func TestNotifyWakesAnIdleEngine(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	e := f.engine(t, func(c *Config) { c.UntilIdle, c.Listen, c.PollInterval = false, true, time.Hour })
	e.TestSignals.Init(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()

	// Once the engine listens, it has made its first look and its workers sleep for the hour.
	e.TestSignals.Listening.WaitOrTimeout()
	id := f.insert(t, newTestResult())
	_, err := f.db.Pool.Exec(context.Background(), `SELECT pg_notify($1, '1')`, eclrs.NotifyChannel)
	require.NoError(t, err)
	// The poll interval is an hour: only the notification can have started this batch.
	waitForBatchWithResults(t, e)
	require.Contains(t, f.trEvents(t, id), "processed")
	cancel()
	require.NoError(t, <-done)
}

// TestChangesNotifyEngine3: a batch that records index case changes sends a NOTIFY on casedb.ChangedChannel, which
// PostgreSQL delivers once it commits.
func TestChangesNotifyEngine3(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	conn, err := f.db.Pool.Acquire(ctx)
	require.NoError(t, err)
	defer conn.Release()
	_, err = conn.Exec(ctx, "LISTEN "+casedb.ChangedChannel)
	require.NoError(t, err)
	defer conn.Exec(context.Background(), "UNLISTEN *") //nolint:errcheck

	id := f.insert(t, newTestResult())
	f.drain(t, nil)
	require.Contains(t, f.trEvents(t, id), "processed")
	waitCtx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	n, err := conn.Conn().WaitForNotification(waitCtx)
	require.NoError(t, err, "Engine 2 sent no notification")
	require.Equal(t, casedb.ChangedChannel, n.Channel)
}

func TestPollingAloneFindsNewResults(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	e := f.engine(t, func(c *Config) { c.UntilIdle, c.Listen, c.PollInterval = false, false, 20*time.Millisecond })
	e.TestSignals.Init(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()

	id := f.insert(t, newTestResult())
	waitForBatchWithResults(t, e)
	cancel()
	require.NoError(t, <-done)
	require.Contains(t, f.trEvents(t, id), "processed")
}

// waitForBatchWithResults waits, on e's test signals, for a worker's batch that found test results, failing the test
// if a batch fails or none is found within 20 seconds of idle batches.
func waitForBatchWithResults(t *testing.T, e *Engine) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		o := e.TestSignals.Poll.PassDone.WaitOrTimeout()
		require.NoError(t, o.Err)
		if o.Result == poll.Busy {
			return
		}
		require.True(t, time.Now().Before(deadline), "no batch found the test results")
	}
}

func TestSummarize(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	good := f.insert(t, newTestResult())
	old := newTestResult()
	old.EclrsCreateDate = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	f.insert(t, old)
	noAccession := newTestResult()
	noAccession.RequestAccessionNumber = ""
	f.insert(t, noAccession)
	unplaceable := newTestResult()
	unplaceable.CountyID = 4242 // in the list below, but without a counties row: retried
	f.insert(t, unplaceable)
	f.counties.list = mustCountyList(t, append(f.counties.list.All(), countylist.County{FIPS: "4242", Name: "newshire",
		Display: "Newshire", Domain: "uk-newshire-cdcms", LocationID: "n4n4", Participating: true}))
	_, err := f.db.Pool.Exec(ctx, `UPDATE test_results SET inserted_at = now() - interval '1 hour' WHERE id = $1`, good)
	require.NoError(t, err)

	before, err := summarize(ctx, f.db.Pool)
	require.NoError(t, err)
	require.Equal(t, int64(4), before.Waiting)
	require.NotNil(t, before.OldestWaiting)
	require.GreaterOrEqual(t, before.OldestWaitingAge, 3600.0)
	require.Zero(t, before.Processed)

	f.drain(t, nil)
	after, err := summarize(ctx, f.db.Pool)
	require.NoError(t, err)
	require.Equal(t, int64(2), after.Processed, "the good one and the ignored one")
	require.Equal(t, int64(1), after.Ignored)
	require.Equal(t, int64(1), after.Failed)
	require.Len(t, after.Failures, 1)
	require.Contains(t, after.Failures[0].Reason, "request_accession_number is empty")
	require.Equal(t, int64(1), after.Failures[0].Count)
	require.Equal(t, int64(2), after.ProcessedLastHour)
	require.Equal(t, int64(1), after.FailedLastHour)
	require.Equal(t, int64(1), after.Waiting, "the one waiting for a retry")
	require.Equal(t, int64(1), after.Retrying)
	require.Equal(t, int64(1), after.People)
	require.Equal(t, int64(1), after.IndexCases)
	require.Equal(t, int64(1), after.LabResults)
}

// summarize reads the tallies and the Summary, as the status page does.
func summarize(ctx context.Context, db eclrs.DBTX) (*Summary, error) {
	counts, err := tally.Read(ctx, db)
	if err != nil {
		return nil, err
	}
	return Summarize(ctx, db, counts)
}

// TestClaimFloor: the floor every daemon reached is stored, a new engine claims from it rather than from the first
// result ever imported, and a result below it that waits for a retry is still claimed once the retry is due.
func TestClaimFloor(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	stored := func() int64 {
		floor, err := storedFloor(ctx, f.db.Pool)
		require.NoError(t, err)
		return floor
	}
	unplaceable := newTestResult()
	unplaceable.CountyID = 4242 // in the list below, but without a counties row: retried
	retried := f.insert(t, unplaceable)
	var last int64
	for range 3 {
		last = f.insert(t, newTestResult())
	}
	f.counties.list = mustCountyList(t, append(f.counties.list.All(), countylist.County{FIPS: "4242", Name: "newshire",
		Display: "Newshire", Domain: "uk-newshire-cdcms", LocationID: "n4n4", Participating: true}))
	require.Zero(t, stored())

	f.drain(t, nil)
	require.Equal(t, 1, f.count(t, `SELECT count(*) FROM test_result_attempts WHERE test_result_id = $1`, retried))
	require.Equal(t, last, stored(), "past the result waiting for its retry, which is claimed from its attempts")

	e := f.engine(t, nil)
	floor, err := e.claimFloor(ctx)
	require.NoError(t, err)
	require.Equal(t, last, floor, "a new engine starts from the stored floor")

	_, err = f.db.Pool.Exec(ctx, `INSERT INTO counties (id) VALUES (4242)`)
	require.NoError(t, err)
	_, err = f.db.Pool.Exec(ctx, `UPDATE test_result_attempts SET next_attempt_at = now()`)
	require.NoError(t, err)
	f.drain(t, nil)
	require.Contains(t, f.trEvents(t, retried), "processed", "the due retry below the floor was claimed")
	require.Zero(t, f.count(t, `SELECT count(*) FROM test_result_attempts`))
}
