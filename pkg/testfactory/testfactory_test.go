package testfactory_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/viaduct-nys/viaduct/pkg/casedb"
	"github.com/viaduct-nys/viaduct/pkg/eclrs"
	"github.com/viaduct-nys/viaduct/pkg/eclrs/eclrsgen"
	"github.com/viaduct-nys/viaduct/pkg/pgtest"
	"github.com/viaduct-nys/viaduct/pkg/testfactory"
)

// TestBuildsAPersonWithACase builds a person with an index case, a lab result and events, and a test result, and
// reads each back as stored.
func TestBuildsAPersonWithACase(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.New(t)
	testfactory.County(t, ctx, db.Pool, 0)

	dob := time.Date(1815, 12, 10, 0, 0, 0, 0, time.UTC)
	person := testfactory.Person(t, ctx, db.Pool, &testfactory.PersonOpts{PatientKeys: []string{"k1", "k2"},
		NameFirst: "ADA", NameLast: "LOVELACE", DOB: dob})
	var keys, indexed []string
	var first, last string
	var gotDOB time.Time
	var data map[string]any
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT patient_keys, name_first, name_last, dob, data,
		    (SELECT array_agg(patient_key ORDER BY patient_key) FROM person_keys WHERE person_id = p.id)
		  FROM people p WHERE id = $1`, person).Scan(&keys, &first, &last, &gotDOB, &data, &indexed))
	require.Equal(t, []string{"k1", "k2"}, keys)
	require.Equal(t, keys, indexed, "person_keys mirrors patient_keys")
	require.Equal(t, "ADA", first)
	require.Equal(t, "LOVELACE", last)
	require.True(t, dob.Equal(gotDOB))
	require.Empty(t, data)

	ic := testfactory.IndexCase(t, ctx, db.Pool, &testfactory.IndexCaseOpts{PersonID: person, CaseID: "case-1",
		Data: map[string]any{"full_name": "Ada Lovelace"}, Closed: true})
	require.Equal(t, testfactory.IndexCaseRow{ID: ic.ID, CaseID: "case-1", PersonID: person,
		CountyID: testfactory.MidsomerCountyID}, ic)
	id, caseData, closed, err := casedb.FindAndLockIndexCase(ctx, db.Pool, "case-1")
	require.NoError(t, err)
	require.Equal(t, ic.ID, id)
	require.Equal(t, map[string]any{"full_name": "Ada Lovelace"}, caseData)
	require.True(t, closed)

	lab := testfactory.LabResult(t, ctx, db.Pool, &testfactory.LabResultOpts{IndexCaseID: ic.ID,
		AccessionNumber: "ACC-1", Data: map[string]any{"result": "positive"}})
	var labCase int64
	var accession, labCaseID string
	var labData map[string]any
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT index_case_id, accession_number, case_id, data FROM lab_results
		 WHERE id = $1`, lab).Scan(&labCase, &accession, &labCaseID, &labData))
	require.Equal(t, ic.ID, labCase)
	require.Equal(t, "ACC-1", accession)
	require.NotEmpty(t, labCaseID, "the table's default case id")
	require.Equal(t, map[string]any{"result": "positive"}, labData)

	created := testfactory.Event(t, ctx, db.Pool, &testfactory.EventOpts{IndexCaseID: ic.ID})
	failed := testfactory.Event(t, ctx, db.Pool, &testfactory.EventOpts{IndexCaseID: ic.ID,
		Type: casedb.EventSendToCommCareFailed, Data: map[string]any{"status": 500}, Stash: "<data/>"})
	require.Less(t, created, failed)
	rows, err := db.Pool.Query(ctx, `SELECT e.id, e.type, coalesce(e.data, 'null'), coalesce(e.stash, '')
		  FROM index_case_events j JOIN events e ON e.id = j.event_id WHERE j.index_case_id = $1 ORDER BY e.id`, ic.ID)
	require.NoError(t, err)
	type event struct {
		id    int64
		typ   string
		data  map[string]any
		stash string
	}
	var events []event
	for rows.Next() {
		var e event
		require.NoError(t, rows.Scan(&e.id, &e.typ, &e.data, &e.stash))
		events = append(events, e)
	}
	require.NoError(t, rows.Err())
	require.Equal(t, []event{{created, casedb.EventIndexCaseCreated, nil, ""},
		{failed, casedb.EventSendToCommCareFailed, map[string]any{"status": float64(500)}, "<data/>"}}, events)

	want := eclrs.TestResult{FileID: 7, CountyID: 9999, PatientKey: "k1", PatientNameFirst: "Ada",
		PatientDOB: dob, RequestAccessionNumber: "ACC-1", ResultAnalysisDate: time.Date(2020, 5, 30, 5, 0, 0, 0, time.UTC)}
	trID := testfactory.TestResult(t, ctx, db.Pool, &testfactory.TestResultOpts{TestResult: want})
	got, err := eclrs.ScanTestResult(db.Pool.QueryRow(ctx,
		`SELECT `+eclrs.TestResultSelectList+` FROM test_results tr WHERE id = $1`, trID))
	require.NoError(t, err)
	require.False(t, got.InsertedAt.IsZero())
	want.ID, want.InsertedAt = trID, got.InsertedAt
	require.Equal(t, want, got)
}

// TestDefaults: with nil options every builder makes what it needs, each row distinct from the last.
func TestDefaults(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.New(t)
	testfactory.County(t, ctx, db.Pool, 0)
	for range 2 {
		testfactory.Event(t, ctx, db.Pool, nil) // on a new index case of a new person
		testfactory.LabResult(t, ctx, db.Pool, nil)
		testfactory.TestResult(t, ctx, db.Pool, nil)
	}
	var people, keys, cases, labs, events, results int
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM people), (SELECT count(*) FROM person_keys),
		    (SELECT count(*) FROM index_cases WHERE county_id = $1 AND data = '{}' AND NOT closed),
		    (SELECT count(DISTINCT accession_number) FROM lab_results),
		    (SELECT count(*) FROM events WHERE type = $2 AND data IS NULL AND stash IS NULL),
		    (SELECT count(*) FROM test_results WHERE file_id = 1 AND county_id = $1)`,
		testfactory.MidsomerCountyID, casedb.EventIndexCaseCreated).Scan(&people, &keys, &cases, &labs, &events, &results))
	require.Equal(t, []int{4, 4, 4, 2, 2, 2}, []int{people, keys, cases, labs, events, results})
}

// TestLoadExport stores a generated export's rows with their checksums.
func TestLoadExport(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.New(t)
	var buf bytes.Buffer
	require.NoError(t, eclrsgen.Write(&buf, eclrsgen.Options{Rows: 25, Seed: 1}))
	require.Equal(t, 25, testfactory.LoadExport(t, ctx, db.Pool, buf.Bytes()))
	require.Equal(t, 25, testfactory.LoadExport(t, ctx, db.Pool, func() []byte {
		var again bytes.Buffer
		require.NoError(t, eclrsgen.Write(&again, eclrsgen.Options{Rows: 25, Seed: 2}))
		return again.Bytes()
	}()), "ids continue after the largest")
	var n, distinct, maxID int64
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*), count(DISTINCT checksum), max(id) FROM test_results`).
		Scan(&n, &distinct, &maxID))
	require.Equal(t, []int64{50, 50, 50}, []int64{n, distinct, maxID})
	require.Equal(t, int64(51), testfactory.TestResult(t, ctx, db.Pool, nil), "the sequence follows")
}
