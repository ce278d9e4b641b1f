package e2

import (
	"bytes"
	"context"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/viaduct-nys/viaduct/pkg/commcare/commcaretest"
	"github.com/viaduct-nys/viaduct/pkg/countylist"
	"github.com/viaduct-nys/viaduct/pkg/eclrs"
	"github.com/viaduct-nys/viaduct/pkg/eclrs/eclrsgen"
	"github.com/viaduct-nys/viaduct/pkg/pgtest"
	"github.com/viaduct-nys/viaduct/pkg/testfactory"
)

// testNow is the clock of every scenario: case_import_date is its New York date.
var testNow = time.Date(2021, 6, 1, 16, 0, 0, 0, time.UTC)

// testIgnoreBefore is the reference tests' threshold.
var testIgnoreBefore = time.Date(2020, 3, 1, 0, 0, 0, 0, time.UTC)

// fixture is a migrated database with the reference tests' county list seeded.
type fixture struct {
	db       *pgtest.DB
	counties *staticCounties
}

type staticCounties struct{ list *countylist.List }

func (s *staticCounties) Current() *countylist.List { return s.list }

func newFixture(t *testing.T) *fixture {
	t.Helper()
	return newFixtureWith(t, commcaretest.TestCounties())
}

// newFixtureWith is newFixture with another county list, such as New York's for generated exports.
func newFixtureWith(t *testing.T, counties []countylist.County) *fixture {
	t.Helper()
	db := pgtest.New(t)
	list, err := countylist.NewList(counties)
	require.NoError(t, err)
	_, err = countylist.Seed(context.Background(), db.Pool, list)
	require.NoError(t, err)
	return &fixture{db: db, counties: &staticCounties{list}}
}

// engine returns an Engine over the fixture with the tests' clock and threshold; adjust tweaks its config.
func (f *fixture) engine(t *testing.T, adjust func(*Config)) *Engine {
	t.Helper()
	cfg := Config{UntilIdle: true, Workers: 1, IgnoreBefore: testIgnoreBefore, RetryInitial: time.Hour, RetryMax: time.Hour}
	if adjust != nil {
		adjust(&cfg)
	}
	e, err := New(cfg, Deps{Pool: f.db.Pool, Counties: f.counties, Now: func() time.Time { return testNow }})
	require.NoError(t, err)
	return e
}

// drain runs an engine until no test result is ready and returns its totals.
func (f *fixture) drain(t *testing.T, adjust func(*Config)) Stats {
	t.Helper()
	e := f.engine(t, adjust)
	require.NoError(t, e.Run(context.Background()))
	checkInvariants(t, f.db)
	return e.Stats()
}

// checkInvariants asserts what must hold after any run, whatever the data: person_keys mirrors
// people.patient_keys, every event is on exactly one test result or index case, a test result is finished at
// most once, no attempt is recorded for a finished test result, and no case row points at nothing.
func checkInvariants(t *testing.T, db *pgtest.DB) {
	t.Helper()
	ctx := context.Background()
	for what, sql := range map[string]string{
		"keys in people but not in person_keys": `SELECT count(*) FROM people p, unnest(p.patient_keys) k
			WHERE NOT EXISTS (SELECT 1 FROM person_keys pk WHERE pk.patient_key = k AND pk.person_id = p.id)`,
		"keys in person_keys but not in people": `SELECT count(*) FROM person_keys pk
			WHERE NOT EXISTS (SELECT 1 FROM people p WHERE p.id = pk.person_id AND pk.patient_key = ANY(p.patient_keys))`,
		"events without exactly one join row": `SELECT count(*) FROM events e
			FULL JOIN (SELECT event_id, count(*) AS n FROM (SELECT event_id FROM test_result_events
			                                                UNION ALL SELECT event_id FROM index_case_events) u
			            GROUP BY event_id) j ON j.event_id = e.id
			WHERE e.id IS NULL OR j.n IS DISTINCT FROM 1`,
		"join rows pointing at no test result or case": `SELECT
			    (SELECT count(*) FROM test_result_events j LEFT JOIN test_results r ON r.id = j.test_result_id WHERE r.id IS NULL)
			  + (SELECT count(*) FROM index_case_events j LEFT JOIN index_cases c ON c.id = j.index_case_id WHERE c.id IS NULL)`,
		"test results finished more than once": `SELECT count(*) FROM (SELECT test_result_id FROM test_result_events
			WHERE finished GROUP BY 1 HAVING count(*) > 1) x`,
		"attempts recorded for finished test results": `SELECT count(*) FROM test_result_attempts a
			WHERE EXISTS (SELECT 1 FROM test_result_events f WHERE f.test_result_id = a.test_result_id AND f.finished)`,
	} {
		var n int
		require.NoError(t, db.Pool.QueryRow(ctx, sql).Scan(&n), what)
		require.Zero(t, n, what)
	}
	testfactory.RequireCaseReferences(t, ctx, db.Pool)
}

// newTestResult is the reference's brand-new test result (§6.1): Midsomer, key 12345, accession ABC123.
func newTestResult() eclrs.TestResult {
	return eclrs.TestResult{
		FileID:                         1,
		CountyID:                       1111,
		PatientKey:                     "12345",
		PatientNameFirst:               "Test",
		PatientNameLast:                "User",
		PatientDOB:                     time.Date(1960, 1, 1, 0, 0, 0, 0, time.UTC),
		PatientGender:                  "M",
		PatientAddress1:                "123 Main St",
		PatientCity:                    "Somewhere",
		PatientZip:                     "12345",
		PatientPhoneHomeNormalized:     "2131234567",
		LabName:                        "Some Lab",
		RequestFacilityAddress1:        "456 Somewhere Else",
		RequestFacilityAddress2:        "Suite 0",
		RequestFacilityName:            "Some Facility",
		RequestAccessionNumber:         "ABC123",
		RequestCollectionDate:          time.Date(2020, 5, 30, 3, 59, 0, 0, time.UTC),
		ResultAnalysisDate:             time.Date(2020, 5, 30, 5, 0, 0, 0, time.UTC),
		EclrsCreateDate:                time.Date(2020, 5, 31, 12, 0, 0, 0, time.UTC),
		Result:                         "Positive for SARS-CoV-2",
		EmployerName:                   "Employer Name",
		SchoolName:                     "School Name",
		RequestPhoneFacilityNormalized: "5555550100",
	}
}

// insert stores tr as Engine 1 would and returns its id.
func (f *fixture) insert(t *testing.T, tr eclrs.TestResult) int64 {
	t.Helper()
	return testfactory.TestResult(t, context.Background(), f.db.Pool, &testfactory.TestResultOpts{TestResult: tr})
}

// addPerson stores a person as an earlier run would have.
func (f *fixture) addPerson(t *testing.T, keys []string, first, last string, dob time.Time) int64 {
	t.Helper()
	return testfactory.Person(t, context.Background(), f.db.Pool,
		&testfactory.PersonOpts{PatientKeys: keys, NameFirst: first, NameLast: last, DOB: dob})
}

// addCase stores an index case (as Engine 5 might have pulled it from CommCare) and returns its id and case_id.
func (f *fixture) addCase(t *testing.T, personID, county int64, closed bool, data map[string]any) (int64, string) {
	t.Helper()
	c := testfactory.IndexCase(t, context.Background(), f.db.Pool,
		&testfactory.IndexCaseOpts{PersonID: personID, CountyID: county, Closed: closed, Data: data})
	return c.ID, c.CaseID
}

// addLab stores a lab result on an index case.
func (f *fixture) addLab(t *testing.T, caseID int64, accession string, data map[string]any) int64 {
	t.Helper()
	return testfactory.LabResult(t, context.Background(), f.db.Pool,
		&testfactory.LabResultOpts{IndexCaseID: caseID, AccessionNumber: accession, Data: data})
}

// trEvents lists the event types on a test result in id order.
func (f *fixture) trEvents(t *testing.T, id int64) []string {
	t.Helper()
	return f.strings(t, `SELECT e.type FROM test_result_events j JOIN events e ON e.id = j.event_id
		WHERE j.test_result_id = $1 ORDER BY e.id`, id)
}

// icEvents lists the event types on an index case in id order.
func (f *fixture) icEvents(t *testing.T, id int64) []string {
	t.Helper()
	return f.strings(t, `SELECT e.type FROM index_case_events j JOIN events e ON e.id = j.event_id
		WHERE j.index_case_id = $1 ORDER BY e.id`, id)
}

func (f *fixture) strings(t *testing.T, sql string, args ...any) []string {
	t.Helper()
	rows, err := f.db.Pool.Query(context.Background(), sql, args...)
	require.NoError(t, err)
	var out []string
	for rows.Next() {
		var s string
		require.NoError(t, rows.Scan(&s))
		out = append(out, s)
	}
	require.NoError(t, rows.Err())
	return out
}

func (f *fixture) count(t *testing.T, sql string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, f.db.Pool.QueryRow(context.Background(), sql, args...).Scan(&n))
	return n
}

// caseRow is an index case as the tests read it back.
type caseRow struct {
	ID       int64
	PersonID int64
	County   int64
	CaseID   string
	Data     map[string]any
}

func (f *fixture) cases(t *testing.T) []caseRow {
	t.Helper()
	rows, err := f.db.Pool.Query(context.Background(),
		`SELECT id, person_id, county_id, case_id, data FROM index_cases ORDER BY id`)
	require.NoError(t, err)
	var out []caseRow
	for rows.Next() {
		var c caseRow
		require.NoError(t, rows.Scan(&c.ID, &c.PersonID, &c.County, &c.CaseID, &c.Data))
		out = append(out, c)
	}
	require.NoError(t, rows.Err())
	return out
}

// labRow is a lab result as the tests read it back.
type labRow struct {
	ID        int64
	CaseID    int64
	Accession string
	Data      map[string]any
}

func (f *fixture) labs(t *testing.T) []labRow {
	t.Helper()
	rows, err := f.db.Pool.Query(context.Background(),
		`SELECT id, index_case_id, accession_number, data FROM lab_results ORDER BY id`)
	require.NoError(t, err)
	var out []labRow
	for rows.Next() {
		var l labRow
		require.NoError(t, rows.Scan(&l.ID, &l.CaseID, &l.Accession, &l.Data))
		out = append(out, l)
	}
	require.NoError(t, rows.Err())
	return out
}

// eventData returns the data of the newest event of type typ on test result id.
func (f *fixture) eventData(t *testing.T, id int64, typ string) map[string]any {
	t.Helper()
	var raw []byte
	require.NoError(t, f.db.Pool.QueryRow(context.Background(), `SELECT e.data FROM test_result_events j
		JOIN events e ON e.id = j.event_id WHERE j.test_result_id = $1 AND e.type = $2 ORDER BY e.id DESC LIMIT 1`,
		id, typ).Scan(&raw))
	var m map[string]any
	require.NoError(t, json.Unmarshal(raw, &m))
	return m
}

func mustCountyList(t *testing.T, counties []countylist.County) *countylist.List {
	t.Helper()
	list, err := countylist.NewList(counties)
	require.NoError(t, err)
	return list
}

// sorted returns a sorted copy, for event lists whose order within a test result is not the point.
func sorted(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return out
}

// loadExport stores the rows of a generated ECLRS export as Engine 1 would (one COPY, no de-duplication: the
// generator's rows are distinct) and returns how many it stored.
func loadExport(t testing.TB, db *pgtest.DB, opts eclrsgen.Options) int {
	t.Helper()
	var buf bytes.Buffer
	require.NoError(t, eclrsgen.Write(&buf, opts))
	return testfactory.LoadExport(t, context.Background(), db.Pool, buf.Bytes())
}
