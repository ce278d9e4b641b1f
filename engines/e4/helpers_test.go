package e4

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertest"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"

	"github.com/viaduct-nys/viaduct/pkg/casedb"
	"github.com/viaduct-nys/viaduct/pkg/commcare"
	"github.com/viaduct-nys/viaduct/pkg/commcare/commcaretest"
	"github.com/viaduct-nys/viaduct/pkg/countylist"
	"github.com/viaduct-nys/viaduct/pkg/pgtest"
	"github.com/viaduct-nys/viaduct/pkg/testfactory"
)

// The test counties' domains and locations (commcaretest.TestCounties).
const (
	midsomer          = commcaretest.MidsomerDomain
	midsomerLocation  = commcaretest.MidsomerLocation
	yggdrasil         = commcaretest.YggdrasilDomain
	yggdrasilLocation = commcaretest.YggdrasilLocation
	statewide         = commcaretest.StatewideDomain
	statewideLocation = commcaretest.StatewideLocation
)

// fixture is a database with the test counties and a person, and a fake CommCare serving the same counties.
type fixture struct {
	db       *pgtest.DB
	cc       *commcaretest.Server
	client   *commcare.Client
	counties *countylist.List
	person   int64
}

func newFixture(t *testing.T, opts commcaretest.Options) *fixture {
	t.Helper()
	ctx := context.Background()
	opts.Counties = commcaretest.TestCounties()
	f := &fixture{db: pgtest.New(t), cc: commcaretest.StartTest(t, opts)}
	cfg := f.cc.ClientConfig()
	cfg.Timeout = 2 * time.Second
	cfg.GetRetryFor = 5 * time.Second
	var err error
	f.client, err = commcare.NewClient(cfg)
	require.NoError(t, err)
	f.counties, err = countylist.NewList(commcaretest.TestCounties())
	require.NoError(t, err)
	_, err = countylist.Seed(ctx, f.db.Pool, f.counties)
	require.NoError(t, err)
	f.person = testfactory.Person(t, ctx, f.db.Pool, &testfactory.PersonOpts{PatientKeys: []string{"k1"}})
	return f
}

// Current makes the fixture the engine's county source.
func (f *fixture) Current() *countylist.List { return f.counties }

// lab is a lab result to store with a case.
type lab struct {
	accession string
	data      map[string]any
}

// addCase stores an index case with case id caseID in county, with its lab results and the change events Engine 2
// would have written, and returns its row id.
func (f *fixture) addCase(t *testing.T, caseID string, county int64, data map[string]any, labs ...lab) int64 {
	t.Helper()
	ctx := context.Background()
	id := testfactory.IndexCase(t, ctx, f.db.Pool,
		&testfactory.IndexCaseOpts{PersonID: f.person, CountyID: county, CaseID: caseID, Data: data}).ID
	testfactory.Event(t, ctx, f.db.Pool, &testfactory.EventOpts{IndexCaseID: id, Type: casedb.EventIndexCaseCreated})
	for _, l := range labs {
		f.addLab(t, id, l)
	}
	return id
}

func (f *fixture) addLab(t *testing.T, indexCaseID int64, l lab) {
	t.Helper()
	ctx := context.Background()
	testfactory.LabResult(t, ctx, f.db.Pool,
		&testfactory.LabResultOpts{IndexCaseID: indexCaseID, AccessionNumber: l.accession, Data: l.data})
	testfactory.Event(t, ctx, f.db.Pool, &testfactory.EventOpts{IndexCaseID: indexCaseID, Type: casedb.EventLabResultCreated})
}

// testConfig is a configuration for tests: retries in milliseconds.
func testConfig() Config {
	return Config{Username: "test-username", UserID: "test-user-id", Retry: RetryPolicy{Base: 10 * time.Millisecond,
		Cap: 50 * time.Millisecond}, PollInterval: 20 * time.Millisecond}
}

func (f *fixture) deps(t *testing.T, commCare CommCare) Deps {
	if commCare == nil {
		commCare = f.client
	}
	return Deps{Pool: f.db.Pool, CommCare: commCare, Counties: f, Logger: zaptest.NewLogger(t)}
}

// work runs one attempt of the job for caseID with River's test worker, in a transaction that is committed after,
// and returns what River made of it. A job that failed is returned like any other; its error is in the job row.
func (f *fixture) work(t *testing.T, caseID string, county int64, cfg Config, commCare CommCare) *rivertest.WorkResult {
	t.Helper()
	ctx := context.Background()
	cfg.setDefaults()
	tx, err := f.db.Pool.Begin(ctx)
	require.NoError(t, err)
	defer tx.Rollback(ctx) //nolint:errcheck
	w, err := newWorker(cfg, f.deps(t, commCare), tx)
	require.NoError(t, err)
	tw := rivertest.NewWorker(t, riverpgxv5.New(f.db.Pool), &river.Config{RetryPolicy: cfg.Retry}, w)
	res, err := tw.Work(ctx, t, tx, casedb.CaseLoaderArgs{CaseID: caseID, CountyID: county}, nil)
	if res == nil || res.EventKind != river.EventKindJobFailed {
		require.NoError(t, err)
	}
	require.NoError(t, tx.Commit(ctx))
	return res
}

// event is an event recorded on an index case.
type event struct {
	typ   string
	data  map[string]any
	stash string
}

// events returns the index case's events of the given types (all when none), oldest first.
func (f *fixture) events(t *testing.T, indexCaseID int64, types ...string) []event {
	t.Helper()
	rows, err := f.db.Pool.Query(context.Background(), `SELECT e.type, coalesce(e.data, '{}'), coalesce(e.stash, '')
		  FROM index_case_events j JOIN events e ON e.id = j.event_id
		 WHERE j.index_case_id = $1 AND (cardinality($2::text[]) = 0 OR e.type = ANY($2)) ORDER BY e.id`,
		indexCaseID, append([]string{}, types...))
	require.NoError(t, err)
	evs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (event, error) {
		var e event
		err := row.Scan(&e.typ, &e.data, &e.stash)
		return e, err
	})
	require.NoError(t, err)
	return evs
}

// eventTypes returns the types of the index case's events written by Engine 4, oldest first.
func (f *fixture) eventTypes(t *testing.T, indexCaseID int64) []string {
	t.Helper()
	var types []string
	for _, e := range f.events(t, indexCaseID) {
		switch e.typ {
		case casedb.EventIndexCaseCreated, casedb.EventLabResultCreated:
		default:
			types = append(types, e.typ)
		}
	}
	return types
}

// indexCase reads a stored index case by CommCare case id.
func (f *fixture) indexCase(t *testing.T, caseID string) *indexCase {
	t.Helper()
	c, err := findCaseToPost(context.Background(), f.db.Pool, caseID, "")
	require.NoError(t, err)
	return c.indexCase
}

// labAccessions returns the accession numbers of the index case's lab results, in order.
func (f *fixture) labAccessions(t *testing.T, indexCaseID int64) []string {
	t.Helper()
	c, err := loadCaseToPost(context.Background(), f.db.Pool, indexCaseID, "")
	require.NoError(t, err)
	var accessions []string
	for _, l := range c.labs {
		accessions = append(accessions, l.accession)
	}
	return accessions
}

// children returns the accession numbers of a CommCare case's lab_result children, sorted.
func children(c commcare.Case) map[string]string {
	out := map[string]string{}
	for id, child := range c.ChildCases {
		if child.Type() == "lab_result" {
			out[child.Property("accession_number")] = id
		}
	}
	return out
}

// patient is a CommCare patient case for seeding the fake.
func patient(caseID string, props map[string]any) commcare.Case {
	p := map[string]any{"case_type": "patient"}
	for k, v := range props {
		p[k] = v
	}
	return commcare.Case{CaseID: caseID, Properties: p}
}
