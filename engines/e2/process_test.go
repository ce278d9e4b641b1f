package e2

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/viaduct-nys/viaduct/pkg/countylist"
	"github.com/viaduct-nys/viaduct/pkg/eclrs"
)

// The scenarios of the reference's processor tests (original-e1-e2-schema.md §6.1), run through the engine
// against PostgreSQL.

func TestBrandNewTestResult(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	trID := f.insert(t, newTestResult())

	stats := f.drain(t, nil)
	require.Equal(t, 1, stats.Results)

	require.Equal(t, 1, f.count(t, `SELECT count(*) FROM people`))
	var keys []string
	var first, last string
	var dob time.Time
	var personID int64
	require.NoError(t, f.db.Pool.QueryRow(context.Background(),
		`SELECT id, patient_keys, name_first, name_last, dob FROM people`).Scan(&personID, &keys, &first, &last, &dob))
	require.Equal(t, []string{"12345"}, keys)
	require.Equal(t, "TEST", first)
	require.Equal(t, "USER", last)
	require.Equal(t, "1960-01-01", dob.Format(time.DateOnly))

	cases := f.cases(t)
	require.Len(t, cases, 1)
	ic := cases[0]
	require.Equal(t, int64(1111), ic.County)
	require.Equal(t, personID, ic.PersonID)
	require.Len(t, ic.CaseID, 36, "case ids are UUIDs from the database default")
	pid := fmt.Sprintf("P%d", personID)
	for k, want := range map[string]any{
		"contact_phone_number": "12131234567", "phone_home": "2131234567", "dob": "1960-01-01", "initials": "TU",
		"name_and_id": "Test User (" + pid + ")", "age": "60", "age_range": "60+", "external_id": pid,
		"doh_mpi_id": pid, "owner_id": "a1a1a1a1a1", "county_commcare_domain": "uk-midsomer-cdcms",
		"case_import_date": "2021-06-01", "new_lab_result_received": "yes", "patient_type": "confirmed",
		"has_phone_number": "yes", "address_complete": "yes", "gender": "male",
	} {
		require.Equal(t, want, ic.Data[k], k)
	}

	labs := f.labs(t)
	require.Len(t, labs, 1)
	lab := labs[0]
	require.Equal(t, ic.ID, lab.CaseID)
	require.Equal(t, "ABC123", lab.Accession)
	for k, want := range map[string]any{
		"specimen_collection_date": "2020-05-29", "analysis_date": "2020-05-30", "eclrs_create_date": "2020-05-31",
		"external_id": pid + "#12345#ABC123", "lab_result": "positive", "name_employer_school": "School Name, Employer Name",
		"ordering_facility_address": "456 Somewhere Else\nSuite 0", "doh_mpi_id": pid, "parent_external_id": pid,
	} {
		require.Equal(t, want, lab.Data[k], k)
	}

	require.Equal(t, []string{"person_created", "index_case_created", "lab_result_created", "processed"}, f.trEvents(t, trID))
	require.Equal(t, []string{"index_case_created", "lab_result_created"}, f.icEvents(t, ic.ID))
	require.Equal(t, map[string]any{"person_id": float64(personID)}, f.eventData(t, trID, "person_created"))
	require.Equal(t, map[string]any{"index_case_id": float64(ic.ID)}, f.eventData(t, trID, "index_case_created"))
	require.Equal(t, map[string]any{"index_case_id": float64(ic.ID), "lab_result_id": float64(lab.ID)},
		f.eventData(t, trID, "lab_result_created"))
	require.Zero(t, f.count(t, `SELECT count(*) FROM change_logs`), "creations write no change log")
}

func TestIgnoredTestResults(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		modify func(*eclrs.TestResult)
		reason string
	}{
		{"created before the threshold", func(tr *eclrs.TestResult) { tr.EclrsCreateDate = time.Date(2020, 2, 29, 23, 0, 0, 0, time.UTC) },
			"test_result older than 2020-03-01 00:00:00Z"},
		{"created exactly at the threshold", func(tr *eclrs.TestResult) { tr.EclrsCreateDate = testIgnoreBefore },
			"test_result older than 2020-03-01 00:00:00Z"},
		{"non-participating county", func(tr *eclrs.TestResult) { tr.CountyID = 5678 },
			"test_result is for fips 5678 (a non-participating county)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			tr := newTestResult()
			tc.modify(&tr)
			id := f.insert(t, tr)
			stats := f.drain(t, nil)
			require.Equal(t, 1, stats.Ignored)
			require.Equal(t, []string{"test_result_ignored", "processed"}, f.trEvents(t, id))
			require.Equal(t, map[string]any{"reason": tc.reason}, f.eventData(t, id, "test_result_ignored"))
			require.Zero(t, f.count(t, `SELECT count(*) FROM people`))
			require.Zero(t, f.count(t, `SELECT count(*) FROM index_cases`))
		})
	}
}

func TestUnknownCountyGoesStatewide(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tr := newTestResult()
	tr.CountyID = 987654321
	tr.PatientAddress1, tr.PatientCity, tr.PatientZip = "", "", ""
	f.insert(t, tr)
	f.drain(t, nil)

	cases := f.cases(t)
	require.Len(t, cases, 1)
	require.Equal(t, int64(1234), cases[0].County)
	for k, want := range map[string]any{
		"address_county": "statewide", "owner_id": "statewide-owner-id", "county_commcare_domain": "uk-statewide-cdcms",
		"address_street": "", "address_city": "", "address_zip": "", "address_complete": "no",
	} {
		require.Equal(t, want, cases[0].Data[k], k)
	}
}

func TestEveryOpenCaseInTheCountyGetsTheResult(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tr := newTestResult()
	p := f.addPerson(t, []string{tr.PatientKey}, "TEST", "USER", tr.PatientDOB)
	var ids []int64
	for _, data := range []map[string]any{{"a": "1"}, {"duplicate_of_case_id": "1234"}, {"c": "3"}} {
		id, _ := f.addCase(t, p, 1111, false, data)
		ids = append(ids, id)
	}
	trID := f.insert(t, tr)
	f.drain(t, nil)

	require.Len(t, f.cases(t), 3)
	labs := f.labs(t)
	require.Len(t, labs, 3)
	for i, id := range ids {
		require.Equal(t, id, labs[i].CaseID)
		require.Equal(t, []string{"index_case_updated", "lab_result_created"}, f.icEvents(t, id))
	}
	require.Equal(t, []string{"index_case_updated", "index_case_updated", "index_case_updated",
		"lab_result_created", "lab_result_created", "lab_result_created", "person_matched", "processed"}, sorted(f.trEvents(t, trID)))
}

func TestSameNameAndBirthDateDifferentKey(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	first := newTestResult()
	first.PatientNameFirst, first.PatientNameLast, first.PatientKey = "DONNY", "DOE", "12345"
	second := newTestResult()
	second.PatientNameFirst, second.PatientNameLast, second.PatientKey = "Donny Boy", "Doe", "67890"
	second.RequestAccessionNumber = "XYZ789"
	f.insert(t, first)
	secondID := f.insert(t, second)
	f.drain(t, nil)

	var keys []string
	require.NoError(t, f.db.Pool.QueryRow(context.Background(), `SELECT patient_keys FROM people`).Scan(&keys))
	require.Equal(t, []string{"67890", "12345"}, keys, "the new key is prepended")
	require.Len(t, f.cases(t), 1)
	require.Len(t, f.labs(t), 2)
	require.Equal(t, []string{"person_added_patient_key", "index_case_untouched", "lab_result_created", "processed"},
		f.trEvents(t, secondID))
}

func TestSecondAccessionSameCounty(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.insert(t, newTestResult())
	f.drain(t, nil)
	second := newTestResult()
	second.RequestAccessionNumber = "DEF456"
	id := f.insert(t, second)
	f.drain(t, nil)

	require.Len(t, f.cases(t), 1)
	require.Len(t, f.labs(t), 2)
	require.Equal(t, []string{"person_matched", "index_case_untouched", "lab_result_created", "processed"}, f.trEvents(t, id))
}

func TestSameKeyDifferentCounty(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.insert(t, newTestResult())
	other := newTestResult()
	other.CountyID = 9999
	f.insert(t, other)
	f.drain(t, nil)

	require.Equal(t, 1, f.count(t, `SELECT count(*) FROM people`))
	cases := f.cases(t)
	require.Len(t, cases, 2)
	require.Equal(t, int64(1111), cases[0].County)
	require.Equal(t, int64(9999), cases[1].County)
	require.Equal(t, "b2b2b2b22b2", cases[1].Data["owner_id"])
}

func TestExistingLabResultNeverOverwritten(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tr := newTestResult()
	p := f.addPerson(t, []string{tr.PatientKey}, "TEST", "USER", tr.PatientDOB)
	caseID, _ := f.addCase(t, p, 1111, false, map[string]any{"first_name": "Testy", "external_id": "P-old",
		"doh_mpi_id": "P-old", "phone_home": nil, "owner_id": "someone-else"})
	labID := f.addLab(t, caseID, "ABC123", map[string]any{"laboratory": "My house", "doh_mpi_id": "P-old",
		"external_id": "P-old#12345#ABC123", "owner_id": "someone-else", "test_type": nil})
	trID := f.insert(t, tr)
	f.drain(t, nil)

	ic := f.cases(t)[0]
	require.Equal(t, "Testy", ic.Data["first_name"], "a value CommCare holds is kept")
	require.Equal(t, "P-old", ic.Data["external_id"])
	require.Equal(t, "someone-else", ic.Data["owner_id"])
	require.Equal(t, "2131234567", ic.Data["phone_home"], "a null is filled")
	require.Equal(t, fmt.Sprintf("Test User (P%d)", p), ic.Data["name_and_id"], "a missing key is added")

	lab := f.labs(t)[0]
	require.Equal(t, labID, lab.ID)
	require.Equal(t, "My house", lab.Data["laboratory"])
	require.Equal(t, "P-old", lab.Data["doh_mpi_id"])
	require.Equal(t, "P-old#12345#ABC123", lab.Data["external_id"])
	require.Equal(t, "someone-else", lab.Data["owner_id"])
	require.Equal(t, "2020-05-29", lab.Data["specimen_collection_date"], "a new key is added")

	require.Equal(t, []string{"person_matched", "index_case_updated", "lab_result_updated", "processed"}, f.trEvents(t, trID))
	require.Equal(t, 2, f.count(t, `SELECT count(*) FROM change_logs`))
	var dropped map[string]any
	require.NoError(t, f.db.Pool.QueryRow(context.Background(),
		`SELECT dropped_changes FROM change_logs WHERE destination_type = 'lab_result'`).Scan(&dropped))
	require.Equal(t, "Some Lab", dropped["laboratory"])
	require.Equal(t, "a1a1a1a1a1", dropped["owner_id"])
	var previous map[string]any
	require.NoError(t, f.db.Pool.QueryRow(context.Background(),
		`SELECT previous_state FROM change_logs WHERE destination_type = 'index_case'`).Scan(&previous))
	require.Equal(t, "Testy", previous["first_name"])
	require.Nil(t, previous["name_and_id"])
}

func TestTwoLabResultsWithTheSameAccession(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tr := newTestResult()
	p := f.addPerson(t, []string{tr.PatientKey}, "TEST", "USER", tr.PatientDOB)
	caseID, _ := f.addCase(t, p, 1111, false, map[string]any{})
	f.addLab(t, caseID, "ABC123", map[string]any{"laboratory": "one"})
	f.addLab(t, caseID, "ABC123", map[string]any{"laboratory": "two"})
	f.insert(t, tr)
	f.drain(t, nil)

	require.Equal(t, 3, f.count(t, `SELECT count(*) FROM change_logs`))
	for _, l := range f.labs(t) {
		require.Equal(t, "2020-05-29", l.Data["specimen_collection_date"])
	}
	require.Len(t, f.labs(t), 2)
}

func TestNothingNew(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tr := newTestResult()
	f.insert(t, tr)
	f.drain(t, nil)
	again := f.insert(t, tr) // the same result again, as a re-sent row with another identity would be
	f.drain(t, nil)

	require.Equal(t, []string{"person_matched", "index_case_untouched", "lab_result_untouched", "no_new_information", "processed"},
		f.trEvents(t, again))
	require.Equal(t, 0, f.count(t, `SELECT count(*) FROM change_logs WHERE applied_changes <> '{}'`))
	require.Equal(t, 2, f.count(t, `SELECT count(*) FROM change_logs`))
}

func TestFinishedCasesAreNotUpdated(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		closed bool
		data   map[string]any
		opens  bool // the existing case is open, so it is updated instead
	}{
		{"closed column", true, map[string]any{}, false},
		{"registered in error", false, map[string]any{"final_disposition": "registered_in_error"}, false},
		{"duplicate", false, map[string]any{"final_disposition": "duplicate"}, false},
		{"not a case", false, map[string]any{"final_disposition": "not_a_case"}, false},
		{"stub", false, map[string]any{"stub": "yes"}, false},
		{"closed PUI", false, map[string]any{"current_status": "closed", "patient_type": "pui"}, false},
		{"transfer pending", false, map[string]any{"transfer_status": "pending"}, false},
		{"transfer sent", false, map[string]any{"transfer_status": "sent"}, false},
		{"other disposition", false, map[string]any{"final_disposition": "recovered"}, true},
		{"stub no", false, map[string]any{"stub": "no"}, true},
		{"transfer accepted", false, map[string]any{"transfer_status": "accepted"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			tr := newTestResult()
			p := f.addPerson(t, []string{tr.PatientKey}, "TEST", "USER", tr.PatientDOB)
			oldID, _ := f.addCase(t, p, 1111, tc.closed, tc.data)
			f.insert(t, tr)
			f.drain(t, nil)

			cases := f.cases(t)
			labs := f.labs(t)
			require.Len(t, labs, 1)
			if tc.opens {
				require.Len(t, cases, 1)
				require.Equal(t, oldID, labs[0].CaseID)
				return
			}
			require.Len(t, cases, 2)
			require.Equal(t, cases[1].ID, labs[0].CaseID, "the new case gets the lab result")
			require.Empty(t, f.icEvents(t, oldID), "the finished case is not touched")
		})
	}
}

func TestOneClosedOneOpen(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tr := newTestResult()
	p := f.addPerson(t, []string{tr.PatientKey}, "TEST", "USER", tr.PatientDOB)
	closedID, _ := f.addCase(t, p, 1111, true, map[string]any{"new_lab_result_received": "no"})
	openID, _ := f.addCase(t, p, 1111, false, map[string]any{"new_lab_result_received": "no"})
	f.insert(t, tr)
	f.drain(t, nil)

	labs := f.labs(t)
	require.Len(t, labs, 1)
	require.Equal(t, openID, labs[0].CaseID)
	byID := map[int64]caseRow{}
	for _, c := range f.cases(t) {
		byID[c.ID] = c
	}
	require.Len(t, byID, 2)
	require.Equal(t, "yes", byID[openID].Data["new_lab_result_received"], "prefer-right: set back to yes")
	require.Equal(t, "no", byID[closedID].Data["new_lab_result_received"])
}

// closedCase is a case CommCare closed: opened 2021-02-01 or 2021-01-01, all activity complete a month later.
func closedCase(opened, complete string) map[string]any {
	return map[string]any{"current_status": "closed", "date_opened": opened + "T10:00:00.000Z",
		"all_activity_complete_date": complete, "owner_id": "inactive-location", "first_name": "Testy",
		"some_custom_value": "custom", "age": "59", "age_range": "18 - 59"}
}

func TestReactivation(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tr := newTestResult()
	tr.RequestCollectionDate = time.Date(2021, 4, 1, 12, 0, 0, 0, time.UTC)
	tr.EclrsCreateDate = time.Date(2021, 4, 2, 12, 0, 0, 0, time.UTC)
	p := f.addPerson(t, []string{tr.PatientKey}, "TEST", "USER", tr.PatientDOB)
	id, _ := f.addCase(t, p, 1111, false, closedCase("2021-02-01", "2021-03-01"))
	f.insert(t, tr)
	f.drain(t, nil)

	cases := f.cases(t)
	require.Len(t, cases, 1)
	require.Equal(t, "yes", cases[0].Data["reactivated_case"])
	require.Equal(t, "a1a1a1a1a1", cases[0].Data["owner_id"], "owner_id is overwritten on reactivation")
	require.Equal(t, "Testy", cases[0].Data["first_name"])
	labs := f.labs(t)
	require.Len(t, labs, 1)
	require.Equal(t, id, labs[0].CaseID)
}

func TestReinfection(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tr := newTestResult()
	tr.RequestCollectionDate = time.Date(2021, 4, 1, 12, 0, 0, 0, time.UTC)
	tr.EclrsCreateDate = time.Date(2021, 4, 2, 12, 0, 0, 0, time.UTC)
	p := f.addPerson(t, []string{tr.PatientKey}, "TEST", "USER", tr.PatientDOB)
	oldID, oldCaseID := f.addCase(t, p, 1111, false, closedCase("2021-01-01", "2021-02-01"))
	trID := f.insert(t, tr)
	f.drain(t, nil)

	cases := f.cases(t)
	require.Len(t, cases, 2)
	old, fresh := cases[0], cases[1]
	require.Equal(t, oldID, old.ID)
	require.Equal(t, "yes", old.Data["reinfected_case_created"])
	require.Equal(t, "inactive-location", old.Data["owner_id"], "only reinfected_case_created is added to the old case")
	require.Equal(t, "59", old.Data["age"])

	require.Equal(t, "yes", fresh.Data["reinfected_case"])
	require.Equal(t, oldCaseID, fresh.Data["archived_case_id"])
	require.Equal(t, "confirmed", fresh.Data["patient_type"])
	require.Equal(t, "61", fresh.Data["age"])
	require.Equal(t, "60+", fresh.Data["age_range"])
	require.Equal(t, "Testy", fresh.Data["first_name"], "identity fields are copied from the old case and win")
	require.NotContains(t, fresh.Data, "some_custom_value")
	require.Equal(t, "a1a1a1a1a1", fresh.Data["owner_id"])

	labs := f.labs(t)
	require.Len(t, labs, 1)
	require.Equal(t, fresh.ID, labs[0].CaseID)
	require.Equal(t, []string{"index_case_updated"}, f.icEvents(t, oldID))
	require.Equal(t, []string{"index_case_created", "lab_result_created"}, f.icEvents(t, fresh.ID))
	require.Equal(t, []string{"person_matched", "index_case_updated", "index_case_created", "lab_result_created", "processed"},
		f.trEvents(t, trID))
}

func TestClosedCaseBesideNewerOpenCase(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tr := newTestResult()
	tr.RequestCollectionDate = time.Date(2021, 4, 1, 12, 0, 0, 0, time.UTC)
	tr.EclrsCreateDate = time.Date(2021, 4, 2, 12, 0, 0, 0, time.UTC)
	p := f.addPerson(t, []string{tr.PatientKey}, "TEST", "USER", tr.PatientDOB)
	oldID, _ := f.addCase(t, p, 1111, false, closedCase("2021-01-01", "2021-02-01"))
	openID, _ := f.addCase(t, p, 1111, false, map[string]any{"first_name": "Test"})
	f.insert(t, tr)
	f.drain(t, nil)

	cases := f.cases(t)
	require.Len(t, cases, 2, "no new case")
	require.Equal(t, "yes", cases[0].Data["reinfected_case_created"])
	require.Equal(t, "59", cases[0].Data["age"], "the archived case keeps its age")
	require.NotContains(t, cases[1].Data, "age", "age is set on creation only")
	labs := f.labs(t)
	require.Len(t, labs, 1)
	require.Equal(t, openID, labs[0].CaseID)
	require.Equal(t, []string{"index_case_updated"}, f.icEvents(t, oldID))
}

func TestMissingValuesFailAtOnce(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		modify func(*eclrs.TestResult)
		reason string
	}{
		{"no accession number", func(tr *eclrs.TestResult) { tr.RequestAccessionNumber = "" }, "request_accession_number is empty"},
		{"no creation date", func(tr *eclrs.TestResult) { tr.EclrsCreateDate = time.Time{} }, "eclrs_create_date is empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			bad := newTestResult()
			tc.modify(&bad)
			badID := f.insert(t, bad)
			goodID := f.insert(t, newTestResult())
			stats := f.drain(t, nil)
			require.Equal(t, 1, stats.Failed)
			require.Equal(t, []string{"processing_failed"}, f.trEvents(t, badID))
			require.Contains(t, f.eventData(t, badID, "processing_failed")["reason"], tc.reason)
			require.Contains(t, f.trEvents(t, goodID), "processed", "the other result of the batch is processed")
			require.Zero(t, f.count(t, `SELECT count(*) FROM test_result_attempts`))
		})
	}
}

func TestFailedResultIsRetriedThenMarkedFailed(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	// A county list without a statewide entry cannot place an unknown county code: a configuration problem a later
	// county list can fix, so the result is retried.
	list := f.counties.list
	var noStatewide []countylist.County
	for _, c := range list.All() {
		if !c.Statewide {
			noStatewide = append(noStatewide, c)
		}
	}
	f.counties.list = mustCountyList(t, noStatewide)
	bad := newTestResult()
	bad.CountyID = 42
	badID := f.insert(t, bad)
	goodID := f.insert(t, newTestResult())

	maxAttempts := func(c *Config) { c.MaxAttempts = 3 }
	stats := f.drain(t, maxAttempts)
	require.Equal(t, 1, stats.Retried)
	require.Contains(t, f.trEvents(t, goodID), "processed")
	require.Empty(t, f.trEvents(t, badID), "a failed attempt leaves nothing behind but the attempt")
	var attempts int
	var lastError string
	require.NoError(t, f.db.Pool.QueryRow(context.Background(),
		`SELECT attempts, last_error FROM test_result_attempts WHERE test_result_id = $1`, badID).Scan(&attempts, &lastError))
	require.Equal(t, 1, attempts)
	require.Contains(t, lastError, `no county found with is_state_domain "yes"`)

	// Not ready until its retry is due.
	require.Zero(t, f.drain(t, maxAttempts).Retried)
	for attempt := 2; attempt <= 3; attempt++ {
		_, err := f.db.Pool.Exec(context.Background(), `UPDATE test_result_attempts SET next_attempt_at = now()`)
		require.NoError(t, err)
		f.drain(t, maxAttempts)
	}
	require.Equal(t, []string{"processing_failed"}, f.trEvents(t, badID))
	data := f.eventData(t, badID, "processing_failed")
	require.Equal(t, float64(3), data["attempts"])
	require.Contains(t, data["reason"], "county code 42")
	require.Zero(t, f.count(t, `SELECT count(*) FROM test_result_attempts`))
}

func TestRetrySucceedsOnceTheCauseIsFixed(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	// County 4242 is in the list but has no counties row: the index case insert fails its foreign key, which fails
	// the whole batch; the results are then tried one by one and only that one is held back.
	full := f.counties.list.All()
	f.counties.list = mustCountyList(t, append(full, countylist.County{FIPS: "4242", Name: "newshire", Display: "Newshire",
		Domain: "uk-newshire-cdcms", LocationID: "n4n4", Participating: true}))
	bad := newTestResult()
	bad.CountyID = 4242
	bad.PatientKey, bad.PatientNameFirst = "999", "Other"
	badID := f.insert(t, bad)
	goodID := f.insert(t, newTestResult())

	stats := f.drain(t, nil)
	require.Equal(t, 1, stats.Retried)
	require.Equal(t, 1, stats.Results)
	require.Contains(t, f.trEvents(t, goodID), "processed")
	require.Empty(t, f.trEvents(t, badID))
	require.Equal(t, 1, f.count(t, `SELECT count(*) FROM people`), "the failed attempt created nobody")

	_, err := f.db.Pool.Exec(context.Background(), `INSERT INTO counties (id) VALUES (4242)`)
	require.NoError(t, err)
	_, err = f.db.Pool.Exec(context.Background(), `UPDATE test_result_attempts SET next_attempt_at = now()`)
	require.NoError(t, err)
	f.drain(t, nil)
	require.Equal(t, []string{"person_created", "index_case_created", "lab_result_created", "processed"}, f.trEvents(t, badID))
	require.Zero(t, f.count(t, `SELECT count(*) FROM test_result_attempts`), "success forgets the failed attempts")
}

func TestOneBatchSeesItsOwnPeople(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	// Three results of one person in one batch: the first creates, the others match what the first created.
	a := newTestResult()
	b := newTestResult()
	b.RequestAccessionNumber = "B"
	c := newTestResult()
	c.PatientKey, c.RequestAccessionNumber = "777", "C"
	f.insert(t, a)
	bID := f.insert(t, b)
	cID := f.insert(t, c)
	stats := f.drain(t, nil)
	require.Equal(t, 1, stats.Batches)
	require.Equal(t, 1, f.count(t, `SELECT count(*) FROM people`))
	require.Len(t, f.cases(t), 1)
	require.Len(t, f.labs(t), 3)
	require.Equal(t, "person_matched", f.trEvents(t, bID)[0])
	require.Equal(t, "person_added_patient_key", f.trEvents(t, cID)[0])
	var keys []string
	require.NoError(t, f.db.Pool.QueryRow(context.Background(), `SELECT patient_keys FROM people`).Scan(&keys))
	require.Equal(t, []string{"777", "12345"}, keys)
}
