package e4

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/viaduct-nys/viaduct/pkg/casedb"
	"github.com/viaduct-nys/viaduct/pkg/commcare"
	"github.com/viaduct-nys/viaduct/pkg/commcare/commcaretest"
	"github.com/viaduct-nys/viaduct/pkg/jobqueue"
)

// enqueue inserts a job for each case id, as Engine 3 would.
func (f *fixture) enqueue(t *testing.T, client *river.Client[pgx.Tx], county int64, caseIDs ...string) {
	t.Helper()
	params := make([]river.InsertManyParams, len(caseIDs))
	for i, id := range caseIDs {
		params[i] = river.InsertManyParams{Args: casedb.CaseLoaderArgs{CaseID: id, CountyID: county}}
	}
	_, err := client.InsertMany(context.Background(), params)
	require.NoError(t, err)
}

// testEngine is Engine 4 with the River client it reports on, as the daemon builds them.
type testEngine struct {
	*Engine
	client *river.Client[pgx.Tx]
}

// newEngine builds Engine 4 as the daemon does: the worker registered in a River config, one client built from
// it, and the engine.
func newEngine(t testing.TB, config Config, deps Deps) *testEngine {
	t.Helper()
	w, err := NewWorker(config, deps)
	require.NoError(t, err)
	rc := &river.Config{}
	require.NoError(t, w.Register(rc))
	client, err := river.NewClient(riverpgxv5.New(deps.Pool), rc)
	require.NoError(t, err)
	deps.Worker = w
	e, err := New(config, deps)
	require.NoError(t, err)
	return &testEngine{Engine: e, client: client}
}

// run runs the engine and its River client as the daemon does, until ctx is done or, until idle, the engine
// returns; then the client stops, giving jobs in flight stopTimeout.
func (e *testEngine) run(ctx context.Context, stopTimeout time.Duration) error {
	jobsCtx, stopJobs := context.WithCancel(context.WithoutCancel(ctx))
	jobsDone := make(chan error, 1)
	go func() { jobsDone <- jobqueue.Run(jobsCtx, e.client, stopTimeout, zap.NewNop()) }()
	err := e.Run(ctx)
	stopJobs()
	return errors.Join(err, <-jobsDone)
}

// runUntilPosting runs e, enqueues a job for caseID in Midsomer, and returns once CommCare has received its post,
// with the function that stops e and the channel Run's result arrives on.
func (f *fixture) runUntilPosting(t *testing.T, e *testEngine, caseID string, stopTimeout time.Duration) (context.CancelFunc, <-chan error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	done := make(chan error, 1)
	go func() { done <- e.run(ctx, stopTimeout) }()
	f.enqueue(t, e.client, 1111, caseID)
	require.Eventually(t, func() bool {
		for _, r := range f.cc.Requests() {
			if r.Method == http.MethodPost {
				return true
			}
		}
		return false
	}, 10*time.Second, 10*time.Millisecond, "the post started")
	return cancel, done
}

// jobStates counts the case loader jobs by state.
func (f *fixture) jobStates(t *testing.T) map[rivertype.JobState]int {
	t.Helper()
	rows, err := f.db.Pool.Query(context.Background(), `SELECT state, count(*) FROM river_job WHERE kind = $1 GROUP BY state`,
		casedb.CaseLoaderArgs{}.Kind())
	require.NoError(t, err)
	states := map[rivertype.JobState]int{}
	for rows.Next() {
		var state string
		var n int
		require.NoError(t, rows.Scan(&state, &n))
		states[rivertype.JobState(state)] = n
	}
	require.NoError(t, rows.Err())
	return states
}

func TestNewReportsEveryProblem(t *testing.T) {
	t.Parallel()
	_, err := NewWorker(Config{Concurrency: -1, JobTimeout: time.Millisecond, Retry: RetryPolicy{Base: time.Hour, Cap: time.Minute}},
		Deps{})
	require.EqualError(t, err, "e4: the CommCare user id is required: forms are submitted as that user\n"+
		"e4: concurrency -1 is outside 1 to 1,000\n"+
		"e4: job timeout 1ms is shorter than a second\n"+
		"e4: retry base 1h0m0s must be positive and no longer than the retry cap 1m0s\n"+
		"e4: a database pool is required\n"+
		"e4: a CommCare client is required\n"+
		"e4: a county list is required")

	_, err = New(Config{UserID: "user"}, Deps{})
	require.EqualError(t, err, "e4: a database pool is required\n"+
		"e4: a registered worker is required")
}

// TestEngineDeliversEveryCaseExactlyOnceDespiteFaults runs the engine with River against a fake CommCare that
// fails 30% of case API and receiver requests (429 with Retry-After, 500, timeouts): every case still arrives
// once, with every lab result, and every job completes.
func TestEngineDeliversEveryCaseExactlyOnceDespiteFaults(t *testing.T) {
	t.Parallel()
	f := newFixture(t, commcaretest.Options{FaultRate: 0.3, FaultSeed: 42, RetryAfter: time.Second,
		TimeoutDelay: time.Minute})
	clientCfg := f.cc.ClientConfig()
	clientCfg.Timeout = 300 * time.Millisecond
	clientCfg.GetRetryFor = -1 // every failure reaches the worker
	client, err := commcare.NewClient(clientCfg)
	require.NoError(t, err)

	const cases = 60
	var ids []string
	labsPerCase := map[string]int{}
	for i := range cases {
		id := fmt.Sprintf("case-%03d", i)
		county := int64(1111)
		if i%3 == 0 {
			county = 9999
		}
		var labs []lab
		for j := range 1 + i%3 {
			labs = append(labs, lab{fmt.Sprintf("acc-%03d-%d", i, j), map[string]any{"result": "positive"}})
		}
		f.addCase(t, id, county, map[string]any{"full_name": fmt.Sprintf("Person %d", i)}, labs...)
		ids = append(ids, id)
		labsPerCase[id] = len(labs)
	}

	config := testConfig()
	config.UntilIdle = true
	config.Concurrency = 20
	deps := f.deps(t, client)
	e := newEngine(t, config, deps)
	for _, county := range []int64{1111, 9999} {
		var batch []string
		for i, id := range ids {
			if (i%3 == 0) == (county == 9999) {
				batch = append(batch, id)
			}
		}
		f.enqueue(t, e.client, county, batch...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	require.NoError(t, e.run(ctx, 5*time.Second))

	require.Equal(t, map[rivertype.JobState]int{rivertype.JobStateCompleted: cases}, f.jobStates(t))
	faults := f.cc.FaultsInjected()
	require.Positive(t, faults[commcaretest.FaultRateLimit])
	require.Positive(t, faults[commcaretest.FaultServerError])
	require.Positive(t, faults[commcaretest.FaultTimeout])

	arrived := 0
	for _, domain := range []string{midsomer, yggdrasil} {
		for _, c := range f.cc.Cases(domain) {
			if c.Type() != "patient" {
				continue
			}
			arrived++
			full, ok := f.cc.Case(domain, c.CaseID)
			require.True(t, ok)
			require.Len(t, children(full), labsPerCase[c.CaseID], "case %s has all its lab results", c.CaseID)
		}
	}
	require.Equal(t, cases, arrived, "every case arrived")
	posted := f.cc.Submissions(midsomer) + f.cc.Submissions(yggdrasil)
	require.Equal(t, cases, posted, "and was posted once: a failed request changed nothing in CommCare")
	var succeeded int
	require.NoError(t, f.db.Pool.QueryRow(context.Background(), `SELECT count(DISTINCT j.index_case_id)
		  FROM index_case_events j JOIN events e ON e.id = j.event_id WHERE e.type = $1`,
		casedb.EventSendToCommCareSucceeded).Scan(&succeeded))
	require.Equal(t, cases, succeeded)
}

// TestEngineStopLetsPostsInFlightFinish stops the engine while CommCare is slow to answer a post: the post
// completes and is recorded before Run returns.
func TestEngineStopLetsPostsInFlightFinish(t *testing.T) {
	t.Parallel()
	f := newFixture(t, commcaretest.Options{})
	id := f.addCase(t, "case-1", 1111, map[string]any{"full_name": "Ada"})
	f.cc.Fail(http.MethodPost, receiverPath, commcaretest.Fault{Delay: 500 * time.Millisecond})
	e := newEngine(t, testConfig(), f.deps(t, nil))

	cancel, done := f.runUntilPosting(t, e, "case-1", 5*time.Second)
	cancel()
	require.NoError(t, <-done)
	require.Len(t, f.events(t, id, casedb.EventSendToCommCareSucceeded), 1)
	require.Equal(t, map[rivertype.JobState]int{rivertype.JobStateCompleted: 1}, f.jobStates(t))
}

// TestEngineStopCancelsPostsThatOutlastTheStopTimeout stops the engine while a post hangs: after the stop timeout the
// post is cancelled, Run returns, and River puts the job back to be worked as soon as a daemon runs again.
func TestEngineStopCancelsPostsThatOutlastTheStopTimeout(t *testing.T) {
	t.Parallel()
	f := newFixture(t, commcaretest.Options{})
	id := f.addCase(t, "case-1", 1111, map[string]any{"full_name": "Ada"})
	f.cc.Fail(http.MethodPost, receiverPath, commcaretest.Fault{Delay: time.Minute})
	config := testConfig()
	config.Retry = RetryPolicy{Base: time.Hour, Cap: time.Hour}
	e := newEngine(t, config, f.deps(t, nil))

	cancel, done := f.runUntilPosting(t, e, "case-1", 200*time.Millisecond)
	cancel()
	require.NoError(t, <-done)
	require.Equal(t, map[rivertype.JobState]int{rivertype.JobStateAvailable: 1}, f.jobStates(t))
	// Had Run waited for the post, CommCare would have accepted it after its minute: the failure shows it was cut off.
	require.Len(t, f.events(t, id, casedb.EventSendToCommCareFailed), 1, "the cut-off post is recorded")
	require.Zero(t, f.cc.Submissions(midsomer))
}
