package e5

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/viaduct-nys/viaduct/pkg/casedb"
	"github.com/viaduct-nys/viaduct/pkg/commcare/commcaretest"
	"github.com/viaduct-nys/viaduct/pkg/testfactory"
)

// knownCase stores an index case Viaduct has for a person, as Engine 2 would have made it, and returns its row id.
func (f *forwarding) knownCase(t *testing.T, caseID string, data map[string]any) int64 {
	t.Helper()
	ctx := context.Background()
	person := testfactory.Person(t, ctx, f.db.Pool, &testfactory.PersonOpts{PatientKeys: []string{"key-" + caseID},
		NameFirst: "ADA", NameLast: "LOVELACE", DOB: time.Date(1815, 12, 10, 0, 0, 0, 0, time.UTC)})
	return testfactory.IndexCase(t, ctx, f.db.Pool, &testfactory.IndexCaseOpts{PersonID: person, CountyID: 1111,
		CaseID: caseID, Data: data}).ID
}

// caseEvents counts the events of type typ on the index case with case id caseID.
func (f *forwarding) caseEvents(t *testing.T, caseID, typ string) int {
	t.Helper()
	return f.count(t, `SELECT count(*) FROM index_case_events j JOIN events e ON e.id = j.event_id
		JOIN index_cases ic ON ic.id = j.index_case_id WHERE ic.case_id = $1 AND e.type = $2`, caseID, typ)
}

// status reads an index case's interview_status.
func (f *forwarding) status(t *testing.T, caseID string) string {
	t.Helper()
	s, _ := f.caseData(t, caseID)["interview_status"].(string)
	return s
}

// TestATracersEditIsForwardedAndMergedOnce: the fake CommCare forwards a tracer's edit as its data forwarding
// would; the importer merges it. The same change delivered again, and read again by polling, changes nothing more;
// an older change delivered late is stale.
func TestATracersEditIsForwardedAndMergedOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newForwarding(t, commcaretest.Options{}, nil)
	f.run(t)
	f.knownCase(t, "case-1", map[string]any{"interview_status": "pending", "phone": "5550100"})
	seeded := patient("case-1", "Ada", "Lovelace", "1815-12-10", map[string]any{"interview_status": "pending"}, "acc-1")
	seeded.DateModified = time.Now().Add(-time.Hour).UTC().Format(time.RFC3339Nano)
	f.cc.PutCase(midsomer, seeded)
	forwarder, err := f.cc.ForwardTo(commcaretest.ForwardOptions{URL: f.url, Password: webhookPassword})
	require.NoError(t, err)
	t.Cleanup(forwarder.Close)

	require.NoError(t, f.cc.UpdateCase(midsomer, "case-1", map[string]string{"interview_status": "completed"}, "tracer"))
	require.Equal(t, river.EventKindJobCompleted, f.next(t).Kind)
	require.Equal(t, "completed", f.status(t, "case-1"))
	require.Equal(t, "5550100", f.caseData(t, "case-1")["phone"], "a blank in CommCare erases nothing")
	require.Equal(t, 1, f.caseEvents(t, "case-1", casedb.EventUpdatedFromCommCare))
	require.Zero(t, f.count(t, `SELECT count(*) FROM lab_results`), "a known case's lab results are left alone")
	require.Zero(t, f.count(t, `SELECT count(*) FROM commcare_case_inbox`), "merged cases leave the inbox")

	// Delivered twice: merged once.
	require.NoError(t, f.cc.Forward(midsomer, "case-1"))
	require.Equal(t, river.EventKindJobCompleted, f.next(t).Kind)
	require.Equal(t, 1, f.caseEvents(t, "case-1", casedb.EventUpdatedFromCommCare))
	require.Equal(t, 1.0, value(t, f.metrics.forwarding.imports.WithLabelValues("unchanged")))

	// An older change, delivered late (the forwarder retries each change on its own): stale.
	stale := forwarded(patient("case-1", "Ada", "Lovelace", "1815-12-10", map[string]any{"interview_status": "pending"}),
		midsomer, time.Now().Add(-time.Minute))
	f.forward(t, stale)
	require.Equal(t, river.EventKindJobCompleted, f.next(t).Kind)
	require.Equal(t, "completed", f.status(t, "case-1"))
	require.Equal(t, 1.0, value(t, f.metrics.forwarding.imports.WithLabelValues("stale")))

	// Polling reads the same change: nothing new.
	require.NoError(t, f.engine(t, nil).Round(ctx))
	require.Equal(t, 1, f.caseEvents(t, "case-1", casedb.EventUpdatedFromCommCare), "a change arriving by both paths is merged once")
	require.Zero(t, f.count(t, `SELECT count(*) FROM river_job WHERE kind = $1 AND state <> 'completed'`, ImportArgs{}.Kind()))
	require.NoError(t, forwarder.Wait(ctx))
	require.Zero(t, forwarder.Stats().Failed)
}

// TestAForwardedNewCaseIsFetched: a case CommCare created arrives without its child cases; the importer gets it
// from the case API and creates it with its lab results, for the person its patient key names. While the API has
// an older copy, or none, or asks to slow down, the job waits.
func TestAForwardedNewCaseIsFetched(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newForwarding(t, commcaretest.Options{}, nil)
	f.run(t)
	person := testfactory.Person(t, ctx, f.db.Pool, &testfactory.PersonOpts{PatientKeys: []string{"150000000"},
		NameFirst: "GRACE", NameLast: "HOPPER", DOB: time.Date(1906, 12, 9, 0, 0, 0, 0, time.UTC)})
	modified := time.Now().UTC().Truncate(time.Millisecond)
	c := patient("new-1", "Amazing", "Grace", "", map[string]any{"external_id": "9999#150000000"}, "acc-1", "acc-2")
	c.DateModified = modified.Add(-time.Minute).Format(time.RFC3339Nano)

	// The API has no copy yet: wait.
	before := time.Now()
	f.forward(t, forwarded(c, midsomer, modified))
	ev := f.next(t)
	require.Equal(t, river.EventKindJobSnoozed, ev.Kind)
	requireScheduledIn(t, ev.Job, time.Minute, before, "LagWait")
	// It has an older one: wait again.
	f.cc.PutCase(midsomer, c)
	_, err := f.jobs.JobRetry(ctx, ev.Job.ID)
	require.NoError(t, err)
	require.Equal(t, river.EventKindJobSnoozed, f.next(t).Kind)
	// It asks to slow down: wait as long as it asks.
	path := "/a/" + midsomer + "/api/v0.5/case/new-1/"
	f.cc.Fail(http.MethodGet, path, commcaretest.Fault{Status: http.StatusTooManyRequests, Times: 1,
		Header: http.Header{"Retry-After": {"120"}}})
	before = time.Now()
	_, err = f.jobs.JobRetry(ctx, ev.Job.ID)
	require.NoError(t, err)
	ev = f.next(t)
	require.Equal(t, river.EventKindJobSnoozed, ev.Kind)
	requireScheduledIn(t, ev.Job, 2*time.Minute, before, "Retry-After")
	require.Zero(t, f.count(t, `SELECT count(*) FROM index_cases`))

	// The API has caught up.
	c.DateModified = modified.Format(time.RFC3339Nano)
	f.cc.PutCase(midsomer, c)
	_, err = f.jobs.JobRetry(ctx, ev.Job.ID)
	require.NoError(t, err)
	require.Equal(t, river.EventKindJobCompleted, f.next(t).Kind)
	require.Equal(t, int(person), f.count(t, `SELECT person_id FROM index_cases WHERE case_id = 'new-1'`),
		"matched by patient key, without a date of birth")
	require.Equal(t, 2, f.count(t, `SELECT count(*) FROM lab_results lr JOIN index_cases ic ON ic.id = lr.index_case_id
		WHERE ic.case_id = 'new-1'`))
	require.Equal(t, 1, f.caseEvents(t, "new-1", casedb.EventRetrievedFromCommCare))
	require.Zero(t, f.count(t, `SELECT count(*) FROM commcare_case_inbox`))
	for outcome, n := range map[string]float64{"lagging": 2, "rate_limited": 1, "created": 1} {
		require.Equal(t, n, value(t, f.metrics.forwarding.imports.WithLabelValues(outcome)), outcome)
	}
}

// TestACaseTheAPINeverCatchesUpOnIsLeftToPolling: after MaxLagWaits waits the job gives the case up, deleting what
// the inbox held; polling reads it once the API has it.
func TestACaseTheAPINeverCatchesUpOnIsLeftToPolling(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newForwarding(t, commcaretest.Options{}, func(c *ImporterConfig) { c.MaxLagWaits = 1 })
	f.run(t)
	f.forward(t, forwarded(patient("new-1", "Ada", "Lovelace", "1815-12-10", nil), midsomer, time.Now()))
	ev := f.next(t)
	require.Equal(t, river.EventKindJobSnoozed, ev.Kind)
	_, err := f.jobs.JobRetry(ctx, ev.Job.ID)
	require.NoError(t, err)
	require.Equal(t, river.EventKindJobCompleted, f.next(t).Kind)
	require.Zero(t, f.count(t, `SELECT count(*) FROM commcare_case_inbox`))
	require.Zero(t, f.count(t, `SELECT count(*) FROM index_cases`))
	require.Equal(t, 1.0, value(t, f.metrics.forwarding.imports.WithLabelValues("left_to_poll")))
}

// hold makes a hook block the first time it runs, until released: held is closed when it blocks.
type hold struct {
	once, releaseOnce sync.Once
	held, release     chan struct{}
}

func newHold(t *testing.T) *hold {
	h := &hold{held: make(chan struct{}), release: make(chan struct{})}
	t.Cleanup(h.let) // a failed test must not leave the worker blocked
	return h
}

func (h *hold) hook() {
	h.once.Do(func() {
		close(h.held)
		<-h.release
	})
}

func (h *hold) let() { h.releaseOnce.Do(func() { close(h.release) }) }

// TestACopyForwardedWhileItsJobCommitsIsQueuedAgain: a newer copy arrives while the job that merged the older one
// holds the inbox row, just before its commit. The webhook waits for that commit, finds no live job, keeps the copy
// and queues another job, which merges it: nothing is lost.
func TestACopyForwardedWhileItsJobCommitsIsQueuedAgain(t *testing.T) {
	t.Parallel()
	f := newForwarding(t, commcaretest.Options{}, nil)
	h := newHold(t)
	f.importer.beforeCommit = h.hook
	f.run(t)
	f.knownCase(t, "case-1", map[string]any{"interview_status": "pending"})
	base := time.Now()
	c := patient("case-1", "Ada", "Lovelace", "1815-12-10", map[string]any{"interview_status": "attempted"})
	f.forward(t, forwarded(c, midsomer, base))
	<-h.held

	c.Properties["interview_status"] = "completed"
	answered := make(chan int, 1)
	go func() {
		status, _ := f.post(t, caseJSON(t, forwarded(c, midsomer, base.Add(time.Second))), "application/json",
			WebhookUser, webhookPassword)
		answered <- status
	}()
	require.Eventually(t, func() bool {
		return f.count(t, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
			AND wait_event_type = 'Lock' AND query LIKE 'INSERT INTO commcare_case_inbox%'`) == 1
	}, 10*time.Second, 5*time.Millisecond, "the webhook waits for the job's row")
	h.let()

	require.Equal(t, river.EventKindJobCompleted, f.next(t).Kind)
	require.Equal(t, http.StatusAccepted, <-answered)
	require.Equal(t, river.EventKindJobCompleted, f.next(t).Kind, "the second job")
	require.Equal(t, "completed", f.status(t, "case-1"))
	require.Equal(t, 2, f.count(t, `SELECT count(*) FROM river_job WHERE kind = $1 AND state = 'completed'`,
		ImportArgs{}.Kind()))
	require.Equal(t, 2.0, value(t, f.metrics.forwarding.received.WithLabelValues("queued")), "not coalesced")
	require.Zero(t, f.count(t, `SELECT count(*) FROM commcare_case_inbox`))
}

// TestACopyForwardedWhileItsJobRunsIsMergedByIt: a newer copy arrives while the job runs but has not read the inbox
// yet. Its job is live, so nothing is queued; the job merges the newer copy.
func TestACopyForwardedWhileItsJobRunsIsMergedByIt(t *testing.T) {
	t.Parallel()
	f := newForwarding(t, commcaretest.Options{}, nil)
	h := newHold(t)
	f.importer.beforeLock = h.hook
	f.run(t)
	f.knownCase(t, "case-1", map[string]any{"interview_status": "pending"})
	base := time.Now()
	c := patient("case-1", "Ada", "Lovelace", "1815-12-10", map[string]any{"interview_status": "attempted"})
	f.forward(t, forwarded(c, midsomer, base))
	<-h.held

	c.Properties["interview_status"] = "completed"
	f.forward(t, forwarded(c, midsomer, base.Add(time.Second)))
	h.let()

	require.Equal(t, river.EventKindJobCompleted, f.next(t).Kind)
	require.Equal(t, "completed", f.status(t, "case-1"))
	require.Equal(t, 1, f.caseEvents(t, "case-1", casedb.EventUpdatedFromCommCare), "the older copy was never merged")
	require.Equal(t, 1, f.count(t, `SELECT count(*) FROM river_job WHERE kind = $1`, ImportArgs{}.Kind()))
	require.Equal(t, 1.0, value(t, f.metrics.forwarding.received.WithLabelValues("coalesced")))
	require.Zero(t, f.count(t, `SELECT count(*) FROM commcare_case_inbox`))
}

func TestNewImporterReportsEveryProblem(t *testing.T) {
	t.Parallel()
	_, err := NewImporter(ImporterConfig{Concurrency: -1, JobTimeout: time.Millisecond, RetryBase: time.Hour,
		RetryCap: time.Minute, LagWait: -1}, ImporterDeps{})
	require.EqualError(t, err, "e5: import concurrency -1 is outside 1 to 1,000\n"+
		"e5: import job timeout 1ms is shorter than a second\n"+
		"e5: import retry base 1h0m0s must be positive and no longer than the retry cap 1m0s\n"+
		"e5: the wait for CommCare's case API (-1ns, at most 10 times) must be positive\n"+
		"e5: a database pool is required\n"+
		"e5: a CommCare client is required\n"+
		"e5: a county list is required")
}

func TestImporterRetries(t *testing.T) {
	t.Parallel()
	f := newFixture(t, commcaretest.Options{})
	imp, err := NewImporter(ImporterConfig{RetryBase: time.Second, RetryCap: 10 * time.Second},
		ImporterDeps{Pool: f.db.Pool, CommCare: f.client, Counties: f})
	require.NoError(t, err)
	for attempt, want := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 4: 8 * time.Second, 9: 10 * time.Second} {
		got := time.Until(imp.NextRetry(&river.Job[ImportArgs]{JobRow: &rivertype.JobRow{Attempt: attempt}}))
		require.InDelta(t, want.Seconds(), got.Seconds(), want.Seconds()*0.11, "attempt %d", attempt)
	}
	require.Equal(t, time.Minute, imp.Timeout(nil))
}

// TestAForwardedCaseFailingItsLastAttemptIsLeftToPolling: when River gives a job up, the copy it held leaves the
// inbox with it, rather than wait there with no job.
func TestAForwardedCaseFailingItsLastAttemptIsLeftToPolling(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newForwarding(t, commcaretest.Options{}, nil)
	f.cc.Fail(http.MethodGet, "/a/"+midsomer+"/api/v0.5/case/new-1/", commcaretest.Fault{Status: http.StatusBadGateway})
	f.forward(t, forwarded(patient("new-1", "Ada", "Lovelace", "1815-12-10", nil), midsomer, time.Now()))
	_, err := f.db.Pool.Exec(ctx, `UPDATE river_job SET max_attempts = 1 WHERE kind = $1`, ImportArgs{}.Kind())
	require.NoError(t, err)
	f.run(t)
	ev := f.next(t)
	require.Equal(t, river.EventKindJobFailed, ev.Kind)
	require.Equal(t, rivertype.JobStateDiscarded, ev.Job.State)
	require.Zero(t, f.count(t, `SELECT count(*) FROM commcare_case_inbox`))
	require.Equal(t, 1.0, value(t, f.metrics.forwarding.imports.WithLabelValues("failed")))
}

// requireScheduledIn requires job to be scheduled d after an instant between before and now: when it snoozed.
// PostgreSQL keeps microseconds, hence the one of slack.
func requireScheduledIn(t *testing.T, job *rivertype.JobRow, d time.Duration, before time.Time, msg string) {
	t.Helper()
	after := time.Now()
	require.False(t, job.ScheduledAt.Before(before.Add(d-time.Microsecond)), "%s: %s after before", msg, job.ScheduledAt.Sub(before))
	require.False(t, job.ScheduledAt.After(after.Add(d)), "%s: %s after after", msg, job.ScheduledAt.Sub(after))
}
