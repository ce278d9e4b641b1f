package testfactory

import (
	"bytes"
	"context"
	"crypto/rand"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/viaduct-nys/viaduct/pkg/casedb"
	"github.com/viaduct-nys/viaduct/pkg/eclrs"
)

// MidsomerCountyID is Midsomer's FIPS code in commcaretest.TestCounties (domain commcaretest.MidsomerDomain): the
// county of an index case or test result whose options name none.
const MidsomerCountyID int64 = 1111

// seq numbers the patient keys and accession numbers made up for rows whose options leave them out.
var seq atomic.Int64

func next(prefix string) string { return prefix + strconv.FormatInt(seq.Add(1), 10) }

// text is s for a text column, "" as NULL.
func text(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// stamp is t for a date or timestamp column, the zero time as NULL.
func stamp(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t
}

// jsonObject is m for a jsonb column, nil as {}.
func jsonObject(m map[string]any) map[string]any {
	if m == nil {
		return map[string]any{}
	}
	return m
}

// County inserts a bare counties row with id (0: MidsomerCountyID), for tests that do not seed a county list.
func County(tb testing.TB, ctx context.Context, db casedb.DBTX, id int64) {
	tb.Helper()
	if id == 0 {
		id = MidsomerCountyID
	}
	_, err := db.Exec(ctx, `INSERT INTO counties (id) VALUES ($1)`, id)
	require.NoError(tb, err)
}

// PersonOpts are the columns of a people row.
type PersonOpts struct {
	// PatientKeys are the person's patient keys, also written to person_keys. Nil: one made-up key, unique in the
	// process; empty but not nil: none, as Engine 5 makes people.
	PatientKeys []string
	// NameFirst, NameLast ("" is NULL) and DOB (the zero time is NULL) identify the person by name.
	NameFirst, NameLast string
	DOB                 time.Time
	// Data is the person's data; nil is {}.
	Data map[string]any
}

// Person inserts a person and its person_keys rows in one statement and returns the person's id.
func Person(tb testing.TB, ctx context.Context, db casedb.DBTX, opts *PersonOpts) int64 {
	tb.Helper()
	if opts == nil {
		opts = &PersonOpts{}
	}
	keys := opts.PatientKeys
	if keys == nil {
		keys = []string{next("testfactory-key-")}
	}
	var id int64
	require.NoError(tb, db.QueryRow(ctx, `WITH p AS (
		    INSERT INTO people (patient_keys, name_first, name_last, dob, data) VALUES ($1, $2, $3, $4, $5) RETURNING id),
		  k AS (INSERT INTO person_keys (patient_key, person_id) SELECT unnest($1::text[]), id FROM p)
		SELECT id FROM p`,
		keys, text(opts.NameFirst), text(opts.NameLast), stamp(opts.DOB), jsonObject(opts.Data)).Scan(&id))
	return id
}

// IndexCaseOpts are the columns of an index_cases row.
type IndexCaseOpts struct {
	// PersonID is the case's person; 0 makes a new one with Person's defaults.
	PersonID int64
	// CountyID is the case's county, which must have a counties row; 0 is MidsomerCountyID.
	CountyID int64
	// CaseID is CommCare's case id; "" is the table's default, a random UUID.
	CaseID string
	// Data is the case's data; nil is {}.
	Data   map[string]any
	Closed bool
}

// IndexCaseRow is an inserted index case.
type IndexCaseRow struct {
	ID       int64
	CaseID   string
	PersonID int64
	CountyID int64
}

// IndexCase inserts an index case and returns it. It records no event: see Event.
func IndexCase(tb testing.TB, ctx context.Context, db casedb.DBTX, opts *IndexCaseOpts) IndexCaseRow {
	tb.Helper()
	if opts == nil {
		opts = &IndexCaseOpts{}
	}
	row := IndexCaseRow{PersonID: opts.PersonID, CountyID: opts.CountyID}
	if row.PersonID == 0 {
		row.PersonID = Person(tb, ctx, db, nil)
	}
	if row.CountyID == 0 {
		row.CountyID = MidsomerCountyID
	}
	require.NoError(tb, db.QueryRow(ctx, `INSERT INTO index_cases (person_id, county_id, case_id, data, closed)
		VALUES ($1, $2, coalesce($3, gen_random_uuid()::text), $4, $5) RETURNING id, case_id`,
		row.PersonID, row.CountyID, text(opts.CaseID), jsonObject(opts.Data), opts.Closed).Scan(&row.ID, &row.CaseID))
	return row
}

// LabResultOpts are the columns of a lab_results row.
type LabResultOpts struct {
	// IndexCaseID is the index case the lab result is on; 0 makes a new one with IndexCase's defaults.
	IndexCaseID int64
	// AccessionNumber is the lab result's accession number; "" is a made-up one, unique in the process.
	AccessionNumber string
	// CaseID is CommCare's case id of the lab result; "" is the table's default, a random UUID.
	CaseID string
	// Data is the lab result's data; nil is {}.
	Data map[string]any
}

// LabResult inserts a lab result and returns its id. It records no event: see Event.
func LabResult(tb testing.TB, ctx context.Context, db casedb.DBTX, opts *LabResultOpts) int64 {
	tb.Helper()
	if opts == nil {
		opts = &LabResultOpts{}
	}
	indexCaseID, accession := opts.IndexCaseID, opts.AccessionNumber
	if indexCaseID == 0 {
		indexCaseID = IndexCase(tb, ctx, db, nil).ID
	}
	if accession == "" {
		accession = next("TESTFACTORY-ACC-")
	}
	var id int64
	require.NoError(tb, db.QueryRow(ctx, `INSERT INTO lab_results (index_case_id, case_id, accession_number, data)
		VALUES ($1, coalesce($2, gen_random_uuid()::text), $3, $4) RETURNING id`,
		indexCaseID, text(opts.CaseID), accession, jsonObject(opts.Data)).Scan(&id))
	return id
}

// EventOpts are an event on an index case.
type EventOpts struct {
	// IndexCaseID is the index case the event is on; 0 makes a new one with IndexCase's defaults.
	IndexCaseID int64
	// Type is the event's type; "" is casedb.EventIndexCaseCreated.
	Type string
	// Data is JSON-encoded into the event's data; nil is NULL.
	Data any
	// Stash is the payload posted; "" is NULL.
	Stash string
}

// Event records an event on an index case with casedb.RecordEvent, as the engines do, and returns its id.
func Event(tb testing.TB, ctx context.Context, db casedb.DBTX, opts *EventOpts) int64 {
	tb.Helper()
	if opts == nil {
		opts = &EventOpts{}
	}
	indexCaseID, typ := opts.IndexCaseID, opts.Type
	if indexCaseID == 0 {
		indexCaseID = IndexCase(tb, ctx, db, nil).ID
	}
	if typ == "" {
		typ = casedb.EventIndexCaseCreated
	}
	id, err := casedb.RecordEvent(ctx, db, indexCaseID, typ, opts.Data, opts.Stash)
	require.NoError(tb, err)
	return id
}

// TestResultOpts are the columns of a test_results row.
type TestResultOpts struct {
	// TestResult holds the columns, stored as Engine 1 stores them: "" and the zero time as NULL. Its ID and
	// InsertedAt are the table's to assign and are ignored; FileID 0 is 1 and CountyID 0 is MidsomerCountyID.
	eclrs.TestResult
	// Checksum is the row's identity checksum; nil is 32 random bytes, so the row is like no other.
	Checksum []byte
}

// TestResult inserts a test result and returns its id. Unlike Engine 1 it adds nothing to the tallies.
func TestResult(tb testing.TB, ctx context.Context, db casedb.DBTX, opts *TestResultOpts) int64 {
	tb.Helper()
	if opts == nil {
		opts = &TestResultOpts{}
	}
	tr := &opts.TestResult
	fileID, countyID, sum := tr.FileID, tr.CountyID, opts.Checksum
	if fileID == 0 {
		fileID = 1
	}
	if countyID == 0 {
		countyID = MidsomerCountyID
	}
	if sum == nil {
		sum = make([]byte, 32)
		_, _ = rand.Read(sum)
	}
	var id int64
	require.NoError(tb, db.QueryRow(ctx, `INSERT INTO test_results (
		    file_id, county_id, checksum, patient_key, patient_name_first, patient_name_last, patient_dob, patient_gender,
		    patient_address_1, patient_city, patient_zip, patient_phone_home_normalized, lab_name,
		    request_facility_address_1, request_facility_address_2, request_facility_city, request_facility_name,
		    request_phone_facility_normalized, request_provider_address_1, request_provider_city,
		    request_provider_name_first, request_provider_name_last, request_collection_date, eclrs_create_date,
		    result_loinc_code, result_loinc_desc, request_accession_number, result_analysis_date,
		    request_specimen_source_name, result, employer_name, employer_address, employer_phone, employer_phone_alt,
		    employee_number, employee_job_title, school_name, school_district, school_code, school_job_class,
		    school_present, first_test, aoe_date, healthcare_employee, eclrs_symptomatic, eclrs_symptom_onset_date,
		    eclrs_hospitalized, eclrs_icu, eclrs_congregate_care_resident, eclrs_pregnant)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22,
		        $23, $24, $25, $26, $27, $28, $29, $30, $31, $32, $33, $34, $35, $36, $37, $38, $39, $40, $41, $42, $43,
		        $44, $45, $46, $47, $48, $49, $50)
		RETURNING id`,
		fileID, countyID, sum, text(tr.PatientKey), text(tr.PatientNameFirst), text(tr.PatientNameLast),
		stamp(tr.PatientDOB), text(tr.PatientGender), text(tr.PatientAddress1), text(tr.PatientCity),
		text(tr.PatientZip), text(tr.PatientPhoneHomeNormalized), text(tr.LabName), text(tr.RequestFacilityAddress1),
		text(tr.RequestFacilityAddress2), text(tr.RequestFacilityCity), text(tr.RequestFacilityName),
		text(tr.RequestPhoneFacilityNormalized), text(tr.RequestProviderAddress1), text(tr.RequestProviderCity),
		text(tr.RequestProviderNameFirst), text(tr.RequestProviderNameLast), stamp(tr.RequestCollectionDate),
		stamp(tr.EclrsCreateDate), text(tr.ResultLOINCCode), text(tr.ResultLOINCDesc), text(tr.RequestAccessionNumber),
		stamp(tr.ResultAnalysisDate), text(tr.RequestSpecimenSourceName), text(tr.Result), text(tr.EmployerName),
		text(tr.EmployerAddress), text(tr.EmployerPhone), text(tr.EmployerPhoneAlt), text(tr.EmployeeNumber),
		text(tr.EmployeeJobTitle), text(tr.SchoolName), text(tr.SchoolDistrict), text(tr.SchoolCode),
		text(tr.SchoolJobClass), text(tr.SchoolPresent), text(tr.FirstTest), stamp(tr.AOEDate),
		text(tr.HealthcareEmployee), text(tr.EclrsSymptomatic), stamp(tr.EclrsSymptomOnsetDate),
		text(tr.EclrsHospitalized), text(tr.EclrsICU), text(tr.EclrsCongregateCareResident), text(tr.EclrsPregnant),
	).Scan(&id))
	return id
}

// LoadExport stores the rows of an ECLRS export (its header line first, as eclrsgen.Write makes it) as Engine 1
// would, in file 1: one binary COPY of Engine 1's rows, with ids after the table's largest and no de-duplication
// (the rows must be distinct), and returns how many rows it stored. Like TestResult it adds nothing to the tallies.
func LoadExport(tb testing.TB, ctx context.Context, pool *pgxpool.Pool, export []byte) int {
	tb.Helper()
	lines := bytes.Split(bytes.TrimRight(export, "\n"), []byte("\n"))
	version, err := eclrs.DetectVersion(lines[0])
	require.NoError(tb, err)
	var id int64
	require.NoError(tb, pool.QueryRow(ctx, `SELECT coalesce(max(id), 0) FROM test_results`).Scan(&id))
	stream := slices.Clone(eclrs.CopyHeader)
	for i, line := range lines[1:] {
		r, err := version.ParseLine(line, i+2)
		require.NoError(tb, err)
		id++
		stream = eclrs.AppendTestResultRow(stream, id, 1, &r)
	}
	stream = append(stream, eclrs.CopyTrailer...)
	conn, err := pool.Acquire(ctx)
	require.NoError(tb, err)
	defer conn.Release()
	_, err = conn.Conn().PgConn().CopyFrom(ctx, bytes.NewReader(stream), eclrs.TestResultCopySQL)
	require.NoError(tb, err)
	_, err = conn.Exec(ctx, `SELECT setval('test_results_id_seq', $1)`, id)
	require.NoError(tb, err)
	return len(lines) - 1
}

// RequireCaseReferences requires every index case to name a person that exists, every lab result an index case
// and every patient key a person: what the foreign keys migration 00013 dropped for Engine 2's speed enforced.
// Engines that write cases call it after their runs.
func RequireCaseReferences(tb testing.TB, ctx context.Context, db casedb.DBTX) {
	tb.Helper()
	var cases, labs, keys int64
	require.NoError(tb, db.QueryRow(ctx, `SELECT
		    (SELECT count(*) FROM index_cases c WHERE NOT EXISTS (SELECT FROM people p WHERE p.id = c.person_id)),
		    (SELECT count(*) FROM lab_results l WHERE NOT EXISTS (SELECT FROM index_cases c WHERE c.id = l.index_case_id)),
		    (SELECT count(*) FROM person_keys k WHERE NOT EXISTS (SELECT FROM people p WHERE p.id = k.person_id))`).
		Scan(&cases, &labs, &keys))
	require.Zero(tb, cases, "index cases of no person")
	require.Zero(tb, labs, "lab results of no index case")
	require.Zero(tb, keys, "patient keys of no person")
}
