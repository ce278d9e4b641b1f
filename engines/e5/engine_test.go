package e5

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"

	"github.com/viaduct-nys/viaduct/pkg/casedb"
	"github.com/viaduct-nys/viaduct/pkg/commcare"
	"github.com/viaduct-nys/viaduct/pkg/commcare/commcaretest"
	"github.com/viaduct-nys/viaduct/pkg/countylist"
	"github.com/viaduct-nys/viaduct/pkg/pgtest"
	"github.com/viaduct-nys/viaduct/pkg/poll"
	"github.com/viaduct-nys/viaduct/pkg/testfactory"
)

const (
	midsomer  = commcaretest.MidsomerDomain
	yggdrasil = commcaretest.YggdrasilDomain
	statewide = commcaretest.StatewideDomain
	ownUser   = "viaduct-user-id"
)

type fixture struct {
	db       *pgtest.DB
	cc       *commcaretest.Server
	client   *commcare.Client
	counties *countylist.List
	now      time.Time // the engine's clock
	metrics  *Metrics  // every engine of the fixture records here

	mu     sync.Mutex
	sleeps []time.Duration // the waits the fixture's engines asked for, none of them taken
}

func newFixture(t *testing.T, opts commcaretest.Options) *fixture {
	t.Helper()
	opts.Counties = commcaretest.TestCounties()
	f := &fixture{db: pgtest.New(t), cc: commcaretest.StartTest(t, opts), now: time.Now().UTC(),
		metrics: NewMetrics(prometheus.NewRegistry())}
	cfg := f.cc.ClientConfig()
	cfg.GetRetryFor = -1
	var err error
	f.client, err = commcare.NewClient(cfg)
	require.NoError(t, err)
	f.counties, err = countylist.NewList(commcaretest.TestCounties())
	require.NoError(t, err)
	_, err = countylist.Seed(context.Background(), f.db.Pool, f.counties)
	require.NoError(t, err)
	// Whatever the test did, no merge left a case row pointing at nothing.
	t.Cleanup(func() { testfactory.RequireCaseReferences(t, context.Background(), f.db.Pool) })
	return f
}

func (f *fixture) Current() *countylist.List { return f.counties }

func (f *fixture) engine(t *testing.T, adjust func(*Config)) *Engine {
	t.Helper()
	cfg := Config{OwnUserIDs: []string{ownUser}, UntilIdle: true, PageSize: 10}
	if adjust != nil {
		adjust(&cfg)
	}
	e, err := New(cfg, Deps{Pool: f.db.Pool, CommCare: f.client, Counties: f, Logger: zaptest.NewLogger(t),
		Now: func() time.Time { return f.now }, Metrics: f.metrics, SleepFunc: f.sleep})
	require.NoError(t, err)
	return e
}

// sleep records a wait an engine asked for and returns at once: no test waits on the wall clock.
func (f *fixture) sleep(ctx context.Context, d time.Duration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sleeps = append(f.sleeps, d)
	return ctx.Err()
}

// waits returns the waits the fixture's engines asked for, oldest first.
func (f *fixture) waits() []time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.sleeps)
}

// value reads a counter or gauge.
func value(t *testing.T, m prometheus.Metric) float64 {
	t.Helper()
	var out dto.Metric
	require.NoError(t, m.Write(&out))
	if out.Counter != nil {
		return out.Counter.GetValue()
	}
	return out.Gauge.GetValue()
}

// patient is a CommCare patient case with lab result children, one per accession number.
func patient(id, first, last, dob string, props map[string]any, accessions ...string) commcare.Case {
	p := map[string]any{"case_type": "patient", "first_name": first, "last_name": last, "dob": dob,
		"full_name": first + " " + last}
	for k, v := range props {
		p[k] = v
	}
	c := commcare.Case{CaseID: id, UserID: "tracer", Properties: p, ChildCases: map[string]commcare.Case{}}
	for i, acc := range accessions {
		childID := fmt.Sprintf("%s-lab-%d", id, i)
		c.ChildCases[childID] = commcare.Case{CaseID: childID, UserID: "tracer",
			Properties: map[string]any{"case_type": "lab_result", "accession_number": acc, "result": "positive"},
			Indices:    map[string]commcare.CaseIndex{"parent": {CaseID: id, CaseType: "patient", Relationship: "extension"}}}
	}
	return c
}

func (f *fixture) count(t *testing.T, query string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, f.db.Pool.QueryRow(context.Background(), query, args...).Scan(&n))
	return n
}

func (f *fixture) caseData(t *testing.T, caseID string) map[string]any {
	t.Helper()
	var data map[string]any
	require.NoError(t, f.db.Pool.QueryRow(context.Background(), `SELECT data FROM index_cases WHERE case_id = $1`, caseID).Scan(&data))
	return data
}

func TestMergeRules(t *testing.T) {
	t.Parallel()
	f := newFixture(t, commcaretest.Options{})
	ctx := context.Background()
	// A person and case Viaduct already has.
	person := testfactory.Person(t, ctx, f.db.Pool, &testfactory.PersonOpts{PatientKeys: []string{"k"},
		NameFirst: "ADA", NameLast: "LOVELACE", DOB: time.Date(1815, 12, 10, 0, 0, 0, 0, time.UTC)})
	known := testfactory.IndexCase(t, ctx, f.db.Pool, &testfactory.IndexCaseOpts{PersonID: person, CountyID: 1111,
		CaseID: "known", Data: map[string]any{"phone": "5550100", "interviewed": "no"}}).ID

	f.cc.PutCase(midsomer, patient("known", "Ada", "Lovelace", "1815-12-10",
		map[string]any{"interviewed": "yes", "phone": ""}, "acc-new"))
	f.cc.PutCase(midsomer, patient("same-person", "Ada Augusta", "Lovelace", "1815-12-10", nil, "acc-1", "acc-2"))
	f.cc.PutCase(yggdrasil, patient("new-person", "Grace", "Hopper", "1906-12-09", nil, "acc-3"))
	f.cc.PutCase(midsomer, patient("closed", "Alan", "Turing", "1912-06-23", nil))
	f.cc.PutCase(midsomer, patient("duplicate", "Alan", "Turing", "1912-06-23", map[string]any{"final_disposition": "duplicate"}))
	f.cc.PutCase(midsomer, patient("stub", "Alan", "Turing", "1912-06-23", map[string]any{"stub": "yes"}))
	f.cc.PutCase(midsomer, patient("in-transfer", "Alan", "Turing", "1912-06-23", map[string]any{"transfer_status": "pending"}))
	f.cc.PutCase(midsomer, patient("no-dob", "Alan", "Turing", "", nil))
	own := patient("own", "Edsger", "Dijkstra", "1930-05-11", nil)
	own.UserID = ownUser
	f.cc.PutCase(midsomer, own)
	require.NoError(t, f.cc.CloseCase(midsomer, "closed", "tracer"))

	require.NoError(t, f.engine(t, nil).Round(ctx))

	data := f.caseData(t, "known")
	require.Equal(t, "yes", data["interviewed"], "CommCare's change wins")
	require.Equal(t, "5550100", data["phone"], "a blank in CommCare erases nothing")
	require.Equal(t, 1, f.count(t, `SELECT count(*) FROM index_case_events j JOIN events e ON e.id = j.event_id
		WHERE j.index_case_id = $1 AND e.type = $2`, known, casedb.EventUpdatedFromCommCare))
	require.Zero(t, f.count(t, `SELECT count(*) FROM lab_results WHERE index_case_id = $1`, known),
		"a known case's lab results are left alone")

	require.Equal(t, person, int64(f.count(t, `SELECT person_id FROM index_cases WHERE case_id = 'same-person'`)),
		"matched by date of birth, last name and first name")
	require.Equal(t, 2, f.count(t, `SELECT count(*) FROM lab_results lr JOIN index_cases ic ON ic.id = lr.index_case_id
		WHERE ic.case_id = 'same-person'`))
	require.Equal(t, 1, f.count(t, `SELECT count(*) FROM people WHERE name_first = 'GRACE' AND name_last = 'HOPPER'`),
		"a person is created when none matches")
	require.Equal(t, 9999, f.count(t, `SELECT county_id FROM index_cases WHERE case_id = 'new-person'`))
	require.Equal(t, 2, f.count(t, `SELECT count(*) FROM events WHERE type = $1`, casedb.EventRetrievedFromCommCare))
	require.Zero(t, f.count(t, `SELECT count(*) FROM index_cases
		WHERE case_id IN ('closed', 'duplicate', 'stub', 'in-transfer', 'no-dob', 'own')`), "skipped")

	// Idempotent: the same changes read again change nothing.
	events := f.count(t, `SELECT count(*) FROM events`)
	f.now = f.now.Add(time.Minute)
	require.NoError(t, f.engine(t, func(c *Config) { c.Overlap = 30 * time.Minute }).Round(ctx))
	require.Equal(t, events, f.count(t, `SELECT count(*) FROM events`))
	require.Equal(t, 3, f.count(t, `SELECT count(*) FROM index_cases`))
}

func TestPaginationHighWaterMarkAndBoundary(t *testing.T) {
	t.Parallel()
	base := time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	clock := base
	f := newFixture(t, commcaretest.Options{Now: func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }})
	for i := range 25 {
		f.cc.PutCase(yggdrasil, patient(fmt.Sprintf("case-%02d", i), fmt.Sprintf("First%d", i), "Last", "1990-01-01", nil))
	}
	f.now = base.Add(time.Hour)
	require.NoError(t, f.engine(t, nil).Round(context.Background()))
	require.Equal(t, 25, f.count(t, `SELECT count(*) FROM index_cases`), "every page was read")
	var lists []commcaretest.Request
	for _, r := range f.cc.Requests() {
		if r.Method == http.MethodGet && r.Path == "/a/"+yggdrasil+"/api/v0.5/case/" {
			lists = append(lists, r)
		}
	}
	require.Len(t, lists, 3, "pages of 10 to the end")
	require.Equal(t, base.Add(time.Hour-48*time.Hour).Format("2006-01-02T15:04:05.000000"),
		lists[0].Query().Get("server_date_modified_start"), "a domain without a mark is read from the first window")
	for _, r := range lists {
		require.Empty(t, r.Query().Get("offset"), "pages are asked for by modification time, not by offset")
		require.Equal(t, "true", r.Query().Get("child_cases__full"))
		require.Equal(t, "patient", r.Query().Get("type"))
	}
	// Each page starts at the last case the page before read, which it lists again and the engine passes over.
	for i, last := range []string{"case-09", "case-18"} {
		c, ok := f.cc.Case(yggdrasil, last)
		require.True(t, ok)
		stamp, err := commcare.ParseTime(c.ServerDateModified)
		require.NoError(t, err)
		require.Equal(t, stamp.Format("2006-01-02T15:04:05.000000"), lists[i+1].Query().Get("server_date_modified_start"))
	}
	require.Equal(t, 25.0, value(t, f.metrics.cases.WithLabelValues("created")), "no case counted twice")
	require.Zero(t, value(t, f.metrics.cases.WithLabelValues("unchanged")), "nor merged twice")

	// The mark is when the round started; the next round reads from the mark less the overlap, boundary included.
	mark := base.Add(time.Hour)
	var highWater time.Time
	require.NoError(t, f.db.Pool.QueryRow(context.Background(),
		`SELECT high_water FROM commcare_sync_marks WHERE domain = $1`, yggdrasil).Scan(&highWater))
	require.True(t, mark.Equal(highWater))
	mu.Lock()
	clock = mark.Add(-2 * time.Minute) // exactly at the next round's start
	mu.Unlock()
	f.cc.PutCase(yggdrasil, patient("at-boundary", "Edge", "Case", "1990-01-01", nil))
	f.now = mark.Add(5 * time.Minute)
	require.NoError(t, f.engine(t, nil).Round(context.Background()))
	require.Equal(t, 1, f.count(t, `SELECT count(*) FROM index_cases WHERE case_id = 'at-boundary'`),
		"a change stamped exactly at the window's start is read")
}

func TestFailingDomainKeepsItsMarkAndBlocksNoOther(t *testing.T) {
	t.Parallel()
	f := newFixture(t, commcaretest.Options{})
	f.cc.PutCase(midsomer, patient("m-1", "Ada", "One", "1990-01-01", nil))
	f.cc.PutCase(yggdrasil, patient("y-1", "Ada", "Two", "1990-01-01", nil))
	f.cc.Fail(http.MethodGet, "/a/"+midsomer+"/api/v0.5/case/", commcaretest.Fault{Status: http.StatusForbidden,
		Body: "Your current subscription does not have access to this feature", Times: 1})

	require.NoError(t, f.engine(t, nil).Round(context.Background()))
	s, err := Summarize(context.Background(), f.db.Pool)
	require.NoError(t, err)
	marks := map[string]DomainMark{}
	for _, m := range s.Domains {
		marks[m.Domain] = m
	}
	require.Nil(t, marks[midsomer].HighWater)
	require.Contains(t, marks[midsomer].LastError, "403")
	require.NotNil(t, marks[midsomer].FailingSince)
	require.Len(t, s.Failures, 1)
	require.Contains(t, s.Failures[0].Reason, midsomer+": ")
	require.Contains(t, s.Failures[0].Reason, "(failing since ")
	require.NotNil(t, marks[yggdrasil].HighWater)
	require.Empty(t, marks[yggdrasil].LastError)
	require.Equal(t, 1, f.count(t, `SELECT count(*) FROM index_cases WHERE case_id = 'y-1'`))
	require.Equal(t, 1.0, value(t, f.metrics.rounds.WithLabelValues("failed")))
	require.Equal(t, 1.0, value(t, f.metrics.domains.WithLabelValues("failed")))
	require.Zero(t, value(t, f.metrics.lastComplete), "no round has read every domain yet")

	// The next round reads the failed domain again.
	require.NoError(t, f.engine(t, nil).Round(context.Background()))
	require.Equal(t, 1, f.count(t, `SELECT count(*) FROM index_cases WHERE case_id = 'm-1'`))
	require.Equal(t, 1.0, value(t, f.metrics.rounds.WithLabelValues("ok")))
	s, err = Summarize(context.Background(), f.db.Pool)
	require.NoError(t, err)
	require.Empty(t, s.Failures, "a complete round ends the failure")
	require.Equal(t, 2.0, value(t, f.metrics.cases.WithLabelValues("created")), "y-1, then m-1")
	require.Positive(t, value(t, f.metrics.lastComplete))
}

func TestStopIsNotAFailure(t *testing.T) {
	t.Parallel()
	f := newFixture(t, commcaretest.Options{})
	f.cc.PutCase(midsomer, patient("m-1", "Ada", "One", "1990-01-01", nil))
	f.cc.Fail(http.MethodGet, "/a/"+midsomer+"/api/v0.5/case/", commcaretest.Fault{Delay: time.Minute, Times: 1})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.engine(t, nil).Round(ctx) }()
	require.Eventually(t, func() bool {
		return f.count(t, `SELECT count(*) FROM commcare_sync_marks WHERE domain = $1 AND round_started_at IS NOT NULL`,
			midsomer) == 1
	}, 10*time.Second, 10*time.Millisecond, "the round started reading Midsomer")
	cancel()
	require.ErrorIs(t, <-done, context.Canceled)

	var highWater *time.Time
	var lastError *string
	require.NoError(t, f.db.Pool.QueryRow(context.Background(),
		`SELECT high_water, last_error FROM commcare_sync_marks WHERE domain = $1`, midsomer).Scan(&highWater, &lastError))
	require.Nil(t, highWater, "an interrupted round does not move the mark")
	require.Nil(t, lastError, "a stop is not the domain's failure")
	require.Equal(t, 1.0, value(t, f.metrics.rounds.WithLabelValues("interrupted")))
	require.Zero(t, value(t, f.metrics.domains.WithLabelValues("failed")))
}

func TestTwoDaemonsNeverPollAtOnce(t *testing.T) {
	t.Parallel()
	f := newFixture(t, commcaretest.Options{})
	f.cc.PutCase(midsomer, patient("m-1", "Ada", "One", "1990-01-01", nil))
	// The first daemon's round is held open by a slow answer from Midsomer.
	f.cc.Fail(http.MethodGet, "/a/"+midsomer+"/api/v0.5/case/", commcaretest.Fault{Delay: time.Second, Times: 1})
	a := f.engine(t, func(c *Config) { c.UntilIdle = false })
	b := f.engine(t, func(c *Config) { c.UntilIdle = false })
	done := make(chan error, 1)
	go func() { done <- a.Round(context.Background()) }()
	require.Eventually(t, func() bool { return len(f.cc.Requests()) > 0 }, 10*time.Second, 5*time.Millisecond)

	require.NoError(t, b.Round(context.Background()), "the second daemon skips the round")
	require.NoError(t, <-done)
	lists := 0
	for _, r := range f.cc.Requests() {
		if r.Method == http.MethodGet {
			lists++
		}
	}
	require.Equal(t, 3, lists, "each participating domain was read once, by the first daemon")
	require.Equal(t, 1, f.count(t, `SELECT count(*) FROM events WHERE type = $1`, casedb.EventRetrievedFromCommCare))
}

// TestRunWaitsForTheNextRound: without UntilIdle, Run reads CommCare at once, then waits for the next interval; a
// stop during the wait ends it with nil.
func TestRunWaitsForTheNextRound(t *testing.T) {
	t.Parallel()
	f := newFixture(t, commcaretest.Options{})
	f.cc.PutCase(midsomer, patient("m-1", "Ada", "One", "1990-01-01", nil))
	e := f.engine(t, func(c *Config) { c.UntilIdle, c.Interval = false, time.Hour })
	e.TestSignals.Init(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	require.Equal(t, poll.Outcome{Result: poll.Idle}, e.TestSignals.PassDone.WaitOrTimeout())
	require.Equal(t, 1, f.count(t, `SELECT count(*) FROM index_cases WHERE case_id = 'm-1'`), "the first round ran")
	cancel()
	require.NoError(t, <-done)
	require.Equal(t, 1.0, value(t, f.metrics.rounds.WithLabelValues("ok")), "one round: the next was an hour away")
}
