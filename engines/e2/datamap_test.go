package e2

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/viaduct-nys/viaduct/pkg/casedb"
	"github.com/viaduct-nys/viaduct/pkg/countylist"
	"github.com/viaduct-nys/viaduct/pkg/eclrs"
)

// The counties of the original's processor tests (§6.1).
var (
	ruleMidsomer = countylist.County{FIPS: "1111", Name: "midsomer", Display: "Midsomer", Domain: "uk-midsomer-cdcms",
		Gaz: "ms-gaz", LocationID: "a1a1a1a1a1", Participating: true}
	ruleStatewide = countylist.County{FIPS: "1234", Name: "statewide", Display: "UK Statewide",
		Domain: "uk-statewide-cdcms", Gaz: "state-gaz", LocationID: "statewide-owner-id", Participating: true,
		Statewide: true}
)

// ruleDate is a date column value, as E1 stores it (UTC midnight).
func ruleDate(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, time.UTC) }

// ruleInstant is a timestamp column value, written in RFC 3339 so the tests read like the spec.
func ruleInstant(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339, s)
	require.NoError(t, err)
	return v.UTC()
}

// ruleBrandNew is the "brand-new test result" of §6.1, with every field the original test filled in.
func ruleBrandNew(t *testing.T) *eclrs.TestResult {
	t.Helper()
	return &eclrs.TestResult{
		CountyID:                       1111,
		AOEDate:                        ruleInstant(t, "2020-06-01T12:00:00Z"),
		EclrsCongregateCareResident:    "A",
		EclrsCreateDate:                ruleInstant(t, "2020-05-31T12:00:00Z"),
		EclrsHospitalized:              "B",
		EclrsICU:                       "C",
		EclrsPregnant:                  "D",
		EclrsSymptomOnsetDate:          ruleInstant(t, "2020-06-02T12:00:00Z"),
		EclrsSymptomatic:               "E",
		EmployeeJobTitle:               "Employee Job Title",
		EmployeeNumber:                 "Employee Number",
		EmployerAddress:                "Employer Address",
		EmployerName:                   "Employer Name",
		EmployerPhoneAlt:               "Employer Phone Alt",
		EmployerPhone:                  "Employer Phone",
		FirstTest:                      "F",
		HealthcareEmployee:             "G",
		LabName:                        "Some Lab",
		PatientAddress1:                "123 Somewhere St",
		PatientCity:                    "SomeCity",
		PatientDOB:                     ruleDate(1960, 1, 1),
		PatientGender:                  "M",
		PatientKey:                     "12345",
		PatientNameFirst:               "Test",
		PatientNameLast:                "User",
		PatientPhoneHomeNormalized:     "2131234567",
		PatientZip:                     "12301",
		RequestAccessionNumber:         "ABC123",
		RequestCollectionDate:          ruleInstant(t, "2020-05-30T03:59:00Z"),
		RequestFacilityAddress1:        "456 Somewhere Else",
		RequestFacilityAddress2:        "Suite 0",
		RequestFacilityCity:            "OtherCity",
		RequestFacilityName:            "My Lab",
		RequestPhoneFacilityNormalized: "3121234567",
		RequestProviderAddress1:        "456 Somewhere Else",
		RequestProviderCity:            "OtterCity",
		RequestProviderNameFirst:       "Dr",
		RequestProviderNameLast:        "Doctor",
		RequestSpecimenSourceName:      "Nasopharyngeal swab",
		ResultAnalysisDate:             ruleInstant(t, "2020-05-30T05:00:00Z"),
		ResultLOINCCode:                "41852-5",
		ResultLOINCDesc:                "Microorganism or agent identified in Unspecified specimen",
		Result:                         "POSITIVE",
		SchoolCode:                     "School Code",
		SchoolDistrict:                 "School District",
		SchoolJobClass:                 "School Job Class",
		SchoolName:                     "School Name",
		SchoolPresent:                  "School Present",
	}
}

func TestIndexCaseData(t *testing.T) {
	t.Parallel()

	t.Run("BrandNewTestResult", func(t *testing.T) {
		t.Parallel()
		now := ruleInstant(t, "2020-06-01T02:00:00Z") // still 31 May in New York
		data := indexCaseData(ruleBrandNew(t), 42, ruleMidsomer, now)
		require.Equal(t, map[string]any{
			"address":                 "123 Somewhere St, SomeCity, NY, 12301",
			"address_city":            "SomeCity",
			"address_complete":        "yes",
			"address_county":          "midsomer",
			"address_state":           "NY",
			"address_street":          "123 Somewhere St",
			"address_zip":             "12301",
			"analysis_date":           "2020-05-30",
			"case_import_date":        "2020-05-31",
			"contact_phone_number":    "12131234567",
			"county_commcare_domain":  "uk-midsomer-cdcms",
			"county_display":          "Midsomer",
			"dob":                     "1960-01-01",
			"dob_known":               "yes",
			"doh_mpi_id":              "P42",
			"eclrs_create_date":       "2020-05-31",
			"external_id":             "P42",
			"fips":                    "1111",
			"first_name":              "Test",
			"full_name":               "Test User",
			"gaz":                     "ms-gaz",
			"gender":                  "male",
			"gender_other":            "",
			"has_phone_number":        "yes",
			"initials":                "TU",
			"last_name":               "User",
			"name":                    "Test User",
			"name_and_id":             "Test User (P42)",
			"new_lab_result_received": "yes",
			"owner_id":                "a1a1a1a1a1",
			"patient_type":            "confirmed",
			"phone_home":              "2131234567",
		}, data)

		addAge(data, ruleBrandNew(t))
		require.Equal(t, "60", data["age"])
		require.Equal(t, "60+", data["age_range"])
	})

	t.Run("StatewideFallbackWithBlankAddress", func(t *testing.T) {
		t.Parallel()
		tr := &eclrs.TestResult{
			CountyID:               987654321,
			EclrsCreateDate:        ruleInstant(t, "2020-06-30T12:00:00Z"),
			LabName:                "Some Hospital",
			PatientDOB:             ruleDate(1970, 2, 1),
			PatientGender:          "m",
			PatientKey:             "67890",
			PatientNameFirst:       "Oscar",
			PatientNameLast:        "Testuser",
			RequestAccessionNumber: "DEF456",
			RequestCollectionDate:  ruleInstant(t, "2020-05-30T03:59:00Z"),
		}
		data := indexCaseData(tr, 7, ruleStatewide, ruleInstant(t, "2020-07-01T16:00:00Z"))
		addAge(data, tr)
		require.Equal(t, map[string]any{
			"address":                 "",
			"address_city":            "",
			"address_complete":        "no",
			"address_county":          "statewide",
			"address_state":           "",
			"address_street":          "",
			"address_zip":             "",
			"age":                     "50",
			"age_range":               "18 - 59",
			"analysis_date":           "",
			"case_import_date":        "2020-07-01",
			"contact_phone_number":    "",
			"county_commcare_domain":  "uk-statewide-cdcms",
			"county_display":          "UK Statewide",
			"dob":                     "1970-02-01",
			"dob_known":               "yes",
			"doh_mpi_id":              "P7",
			"eclrs_create_date":       "2020-06-30",
			"external_id":             "P7",
			"fips":                    "1234",
			"first_name":              "Oscar",
			"full_name":               "Oscar Testuser",
			"gaz":                     "state-gaz",
			"gender":                  "male",
			"gender_other":            "",
			"has_phone_number":        "no",
			"initials":                "OT",
			"last_name":               "Testuser",
			"name":                    "Oscar Testuser",
			"name_and_id":             "Oscar Testuser (P7)",
			"new_lab_result_received": "yes",
			"owner_id":                "statewide-owner-id",
			"patient_type":            "confirmed",
			"phone_home":              "",
		}, data)
	})

	tests := []struct {
		name   string
		modify func(tr *eclrs.TestResult)
		now    string
		want   map[string]any
	}{
		{
			name: "NoNames",
			modify: func(tr *eclrs.TestResult) {
				tr.PatientNameFirst, tr.PatientNameLast = "", ""
			},
			want: map[string]any{"first_name": nil, "last_name": nil, "full_name": "", "name": "",
				"name_and_id": " (P42)", "initials": nil},
		},
		{
			name:   "FirstNameOnly",
			modify: func(tr *eclrs.TestResult) { tr.PatientNameLast = "" },
			want: map[string]any{"first_name": "Test", "last_name": nil, "full_name": "Test",
				"name_and_id": "Test (P42)", "initials": nil},
		},
		{
			name: "InitialsOfMultiByteLetters",
			modify: func(tr *eclrs.TestResult) {
				tr.PatientNameFirst, tr.PatientNameLast = "Élodie", "Øberg"
			},
			want: map[string]any{"initials": "ÉØ", "full_name": "Élodie Øberg"},
		},
		{
			name:   "FemaleLowerCase",
			modify: func(tr *eclrs.TestResult) { tr.PatientGender = "f" },
			want:   map[string]any{"gender": "female", "gender_other": ""},
		},
		{
			name:   "OtherGenderKeepsTheCode",
			modify: func(tr *eclrs.TestResult) { tr.PatientGender = "custom" },
			want:   map[string]any{"gender": "other", "gender_other": "custom"},
		},
		{
			name:   "NullGender",
			modify: func(tr *eclrs.TestResult) { tr.PatientGender = "" },
			want:   map[string]any{"gender": "", "gender_other": ""},
		},
		{
			name:   "ElevenDigitPhoneHasNoPrefixAdded",
			modify: func(tr *eclrs.TestResult) { tr.PatientPhoneHomeNormalized = "12125550123" },
			want: map[string]any{"contact_phone_number": "12125550123", "phone_home": "12125550123",
				"has_phone_number": "yes"},
		},
		{
			name:   "ShortPhone",
			modify: func(tr *eclrs.TestResult) { tr.PatientPhoneHomeNormalized = "5550123" },
			want:   map[string]any{"contact_phone_number": "5550123", "has_phone_number": "yes"},
		},
		{
			name:   "NoPhone",
			modify: func(tr *eclrs.TestResult) { tr.PatientPhoneHomeNormalized = "" },
			want:   map[string]any{"contact_phone_number": "", "phone_home": "", "has_phone_number": "no"},
		},
		{
			name: "ZipOnlyInNewYork",
			modify: func(tr *eclrs.TestResult) {
				tr.PatientAddress1, tr.PatientCity, tr.PatientZip = "", "", "00510"
			},
			want: map[string]any{"address": "NY, 00510", "address_state": "NY", "address_zip": "00510",
				"address_street": "", "address_city": "", "address_complete": "no"},
		},
		{
			name: "ZipOnlyInCalifornia",
			modify: func(tr *eclrs.TestResult) {
				tr.PatientAddress1, tr.PatientCity, tr.PatientZip = "", "", "94612"
			},
			want: map[string]any{"address": "CA, 94612", "address_state": "CA", "address_complete": "no"},
		},
		{
			name: "UnassignedZipHasNoState",
			modify: func(tr *eclrs.TestResult) {
				tr.PatientAddress1, tr.PatientCity, tr.PatientZip = "", "", "00000"
			},
			want: map[string]any{"address": "00000", "address_state": "", "address_zip": "00000"},
		},
		{
			name:   "MalformedZipHasNoState",
			modify: func(tr *eclrs.TestResult) { tr.PatientZip = "UNKNOWN" },
			want: map[string]any{"address": "123 Somewhere St, SomeCity, UNKNOWN", "address_state": "",
				"address_zip": "UNKNOWN", "address_complete": "yes"},
		},
		{
			name:   "NoZipMakesTheAddressIncomplete",
			modify: func(tr *eclrs.TestResult) { tr.PatientZip = "" },
			want: map[string]any{"address": "123 Somewhere St, SomeCity", "address_state": "",
				"address_complete": "no"},
		},
		{
			name:   "WhitespaceCityCountsAsPresent",
			modify: func(tr *eclrs.TestResult) { tr.PatientCity = " " },
			want:   map[string]any{"address": "123 Somewhere St,  , NY, 12301", "address_complete": "yes"},
		},
		{
			name:   "UnknownDateOfBirth",
			modify: func(tr *eclrs.TestResult) { tr.PatientDOB = time.Time{} },
			want:   map[string]any{"dob": "", "dob_known": "no"},
		},
		{
			name: "NullDates",
			modify: func(tr *eclrs.TestResult) {
				tr.ResultAnalysisDate, tr.EclrsCreateDate = time.Time{}, time.Time{}
			},
			want: map[string]any{"analysis_date": "", "eclrs_create_date": ""},
		},
		{
			name: "ImportDateJustBeforeNewYorkMidnight",
			now:  "2020-06-01T03:59:59Z",
			want: map[string]any{"case_import_date": "2020-05-31"},
		},
		{
			name: "ImportDateAtNewYorkMidnight",
			now:  "2020-06-01T04:00:00Z",
			want: map[string]any{"case_import_date": "2020-06-01"},
		},
		{
			name: "ImportDateInWinter",
			now:  "2021-01-01T04:59:59Z",
			want: map[string]any{"case_import_date": "2020-12-31"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tr := ruleBrandNew(t)
			if tt.modify != nil {
				tt.modify(tr)
			}
			now := "2020-06-01T12:00:00Z"
			if tt.now != "" {
				now = tt.now
			}
			data := indexCaseData(tr, 42, ruleMidsomer, ruleInstant(t, now))
			require.Len(t, data, 32)
			for k, want := range tt.want {
				require.Contains(t, data, k)
				require.Equal(t, want, data[k], k)
			}
		})
	}
}

func TestAddAge(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name          string
		dob           time.Time
		created       string
		age, ageRange string
	}{
		{"Sixty", ruleDate(1960, 1, 1), "2020-05-31T12:00:00Z", "60", "60+"},
		{"Fifty", ruleDate(1970, 2, 1), "2020-06-30T12:00:00Z", "50", "18 - 59"},
		{"DayBeforeEighteenthBirthday", ruleDate(2002, 6, 1), "2020-05-31T23:59:59Z", "17", "0 - 17"},
		{"EighteenthBirthday", ruleDate(2002, 6, 1), "2020-06-01T00:00:00Z", "18", "18 - 59"},
		{"FiftyNine", ruleDate(1960, 6, 2), "2020-06-01T00:00:00Z", "59", "18 - 59"},
		{"Newborn", ruleDate(2020, 5, 31), "2020-05-31T12:00:00Z", "0", "0 - 17"},
		{"UTCDateNotNewYorkDate", ruleDate(2002, 1, 1), "2020-01-01T02:00:00Z", "18", "18 - 59"},
		{"LeapDayBirthdayOnTwentyEighth", ruleDate(2000, 2, 29), "2001-02-28T00:00:00Z", "1", "0 - 17"},
		{"LeapDayBirthdayBeforeTwentyEighth", ruleDate(2000, 2, 29), "2001-02-27T23:59:59Z", "0", "0 - 17"},
		{"LeapDayBirthdayInLeapYear", ruleDate(2000, 2, 29), "2004-02-28T12:00:00Z", "3", "0 - 17"},
		{"LeapDayBirthdayOnLeapDay", ruleDate(2000, 2, 29), "2004-02-29T12:00:00Z", "4", "0 - 17"},
		{"BornAfterTheTest", ruleDate(2020, 6, 1), "2020-05-31T12:00:00Z", "", ""},
		{"UnknownDateOfBirth", time.Time{}, "2020-05-31T12:00:00Z", "", ""},
		{"UnknownCreateDate", ruleDate(1960, 1, 1), "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tr := &eclrs.TestResult{PatientDOB: tt.dob}
			if tt.created != "" {
				tr.EclrsCreateDate = ruleInstant(t, tt.created)
			}
			data := map[string]any{"age": "old"}
			addAge(data, tr)
			require.Equal(t, map[string]any{"age": tt.age, "age_range": tt.ageRange}, data)
		})
	}
}

func TestCopyForReinfection(t *testing.T) {
	t.Parallel()

	t.Run("ArchivedValuesWin", func(t *testing.T) {
		t.Parallel()
		archived := map[string]any{
			"case_id":           "old-case",
			"external_id":       "P1",
			"some_custom_value": "this should not be set on reinfection case",
			"age":               "this will not be copied",
		}
		for _, k := range reinfectionFields {
			archived[k] = "original " + k
		}
		tr := ruleBrandNew(t)
		data := indexCaseData(tr, 42, ruleMidsomer, ruleInstant(t, "2021-05-01T12:00:00Z"))
		addAge(data, tr)
		copyForReinfection(data, archived, "old-case")

		for _, k := range reinfectionFields {
			require.Equal(t, "original "+k, data[k], k)
		}
		require.Equal(t, "original doh_mpi_id", data["doh_mpi_id"])
		require.Equal(t, "P42", data["external_id"], "external_id is not copied")
		require.NotContains(t, data, "some_custom_value")
		require.NotContains(t, data, "case_id")
		require.Equal(t, "60", data["age"])
		require.Equal(t, "confirmed", data["patient_type"])
		require.Equal(t, "yes", data["reinfected_case"])
		require.Equal(t, "old-case", data["archived_case_id"])
		require.Equal(t, "yes", data["address_complete"])
		require.Equal(t, "yes", data["has_phone_number"])
		// 34 keys of a new case, the 20 copied keys it lacks, reinfected_case and archived_case_id.
		require.Len(t, data, 56)
	})

	tests := []struct {
		name     string
		modify   func(tr *eclrs.TestResult)
		archived map[string]any
		want     map[string]any
		absent   []string
	}{
		{
			name:     "BlankArchivedValuesDoNotWin",
			archived: map[string]any{"first_name": nil, "last_name": "", "address_city": "  ", "dob": "1959-12-31"},
			want: map[string]any{"first_name": "Test", "last_name": "User", "address_city": "SomeCity",
				"dob": "1959-12-31"},
		},
		{
			name:     "BlankArchivedValueFillsAMissingKey",
			archived: map[string]any{"race": "", "ethnicity": nil, "phone_work": 2125550123.0},
			want:     map[string]any{"race": "", "ethnicity": nil, "phone_work": 2125550123.0},
			absent:   []string{"preferred_name", "ec_relation"},
		},
		{
			name: "CopiedAddressCompletesTheAddress",
			modify: func(tr *eclrs.TestResult) {
				tr.PatientAddress1, tr.PatientZip = "", ""
			},
			archived: map[string]any{"address_street": "1 Main St", "address_zip": "12601"},
			want: map[string]any{"address_street": "1 Main St", "address_zip": "12601",
				"address_complete": "yes"},
		},
		{
			name:     "CopiedPhoneSetsHasPhoneNumber",
			modify:   func(tr *eclrs.TestResult) { tr.PatientPhoneHomeNormalized = "" },
			archived: map[string]any{"contact_phone_number": "15185550123"},
			want:     map[string]any{"contact_phone_number": "15185550123", "has_phone_number": "yes"},
		},
		{
			name:     "NonStringArchivedPhoneIsNoPhoneNumber",
			modify:   func(tr *eclrs.TestResult) { tr.PatientPhoneHomeNormalized = "" },
			archived: map[string]any{"contact_phone_number": 15185550123.0},
			want:     map[string]any{"contact_phone_number": 15185550123.0, "has_phone_number": "no"},
		},
		{
			name:     "NamesFromTheTestResultWhenTheArchivedCaseHasNone",
			modify:   func(tr *eclrs.TestResult) { tr.PatientNameFirst, tr.PatientNameLast = "DONNY", "DOE" },
			archived: map[string]any{"first_name": nil, "last_name": ""},
			want:     map[string]any{"first_name": "DONNY", "last_name": "DOE", "reinfected_case": "yes"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tr := ruleBrandNew(t)
			if tt.modify != nil {
				tt.modify(tr)
			}
			data := indexCaseData(tr, 42, ruleMidsomer, ruleInstant(t, "2021-05-01T12:00:00Z"))
			copyForReinfection(data, tt.archived, "c-1")
			require.Equal(t, "c-1", data["archived_case_id"])
			for k, want := range tt.want {
				require.Contains(t, data, k)
				require.Equal(t, want, data[k], k)
			}
			for _, k := range tt.absent {
				require.NotContains(t, data, k)
			}
		})
	}
}

func TestLabResultData(t *testing.T) {
	t.Parallel()

	t.Run("BrandNewTestResult", func(t *testing.T) {
		t.Parallel()
		caseData := map[string]any{"external_id": "P42"}
		data := labResultData(ruleBrandNew(t), caseData, ruleMidsomer)
		require.Len(t, data, 45)
		require.Equal(t, map[string]any{
			"accession_number":               "ABC123",
			"analysis_date":                  "2020-05-30",
			"aoe_date":                       "2020-06-01",
			"doh_mpi_id":                     "P42",
			"eclrs_congregate_care_resident": "A",
			"eclrs_create_date":              "2020-05-31",
			"eclrs_hospitalized":             "B",
			"eclrs_icu":                      "C",
			"eclrs_loinc":                    "41852-5",
			"eclrs_pregnant":                 "D",
			"eclrs_symptom_onset_date":       "2020-06-02",
			"eclrs_symptomatic":              "E",
			"employee_job_title":             "Employee Job Title",
			"employee_number":                "Employee Number",
			"employer_address":               "Employer Address",
			"employer_name":                  "Employer Name",
			"employer_phone_2":               "Employer Phone Alt",
			"employer_phone":                 "Employer Phone",
			"external_id":                    "P42#12345#ABC123",
			"first_test":                     "F",
			"healthcare_employee":            "G",
			"lab_result":                     "positive",
			"laboratory":                     "Some Lab",
			"name_employer_school":           "School Name, Employer Name",
			"name":                           "P42 lab_result",
			"ordering_facility_address":      "456 Somewhere Else\nSuite 0",
			"ordering_facility_city":         "OtherCity",
			"ordering_facility_name":         "My Lab",
			"ordering_facility_phone":        "3121234567",
			"ordering_provider_address":      "456 Somewhere Else",
			"ordering_provider_city":         "OtterCity",
			"ordering_provider_first_name":   "Dr",
			"ordering_provider_last_name":    "Doctor",
			"ordering_provider_name":         "Dr Doctor",
			"owner_id":                       "a1a1a1a1a1",
			"parent_external_id":             "P42",
			"parent_type":                    "patient",
			"school_attended":                "School Present",
			"school_code":                    "School Code",
			"school_district":                "School District",
			"school_name":                    "School Name",
			"school_visitor_type":            "School Job Class",
			"specimen_collection_date":       "2020-05-29",
			"specimen_source":                "Nasopharyngeal swab",
			"test_type":                      "Microorganism or agent identified in Unspecified specimen",
		}, data)
	})

	t.Run("NullsAreJSONNullAndDatesEmpty", func(t *testing.T) {
		t.Parallel()
		tr := &eclrs.TestResult{
			PatientKey:             "12345",
			RequestAccessionNumber: "ABC123",
			EclrsCreateDate:        ruleInstant(t, "2020-05-31T12:00:00Z"),
		}
		data := labResultData(tr, map[string]any{}, countylist.County{FIPS: "5678"})
		require.Equal(t, map[string]any{
			"accession_number":               "ABC123",
			"analysis_date":                  "",
			"aoe_date":                       "",
			"doh_mpi_id":                     nil,
			"eclrs_congregate_care_resident": nil,
			"eclrs_create_date":              "2020-05-31",
			"eclrs_hospitalized":             nil,
			"eclrs_icu":                      nil,
			"eclrs_loinc":                    nil,
			"eclrs_pregnant":                 nil,
			"eclrs_symptom_onset_date":       "",
			"eclrs_symptomatic":              nil,
			"employee_job_title":             nil,
			"employee_number":                nil,
			"employer_address":               nil,
			"employer_name":                  nil,
			"employer_phone_2":               nil,
			"employer_phone":                 nil,
			"external_id":                    "#12345#ABC123",
			"first_test":                     nil,
			"healthcare_employee":            nil,
			"lab_result":                     "other",
			"laboratory":                     nil,
			"name_employer_school":           nil,
			"name":                           " lab_result",
			"ordering_facility_address":      nil,
			"ordering_facility_city":         nil,
			"ordering_facility_name":         nil,
			"ordering_facility_phone":        nil,
			"ordering_provider_address":      nil,
			"ordering_provider_city":         nil,
			"ordering_provider_first_name":   nil,
			"ordering_provider_last_name":    nil,
			"ordering_provider_name":         nil,
			"owner_id":                       nil,
			"parent_external_id":             nil,
			"parent_type":                    "patient",
			"school_attended":                nil,
			"school_code":                    nil,
			"school_district":                nil,
			"school_name":                    nil,
			"school_visitor_type":            nil,
			"specimen_collection_date":       "",
			"specimen_source":                nil,
			"test_type":                      nil,
		}, data)
	})

	tests := []struct {
		name     string
		modify   func(tr *eclrs.TestResult)
		caseData map[string]any
		want     map[string]any
	}{
		{
			name:   "SchoolOnly",
			modify: func(tr *eclrs.TestResult) { tr.EmployerName = "" },
			want:   map[string]any{"name_employer_school": "School Name", "employer_name": nil},
		},
		{
			name:   "EmployerOnly",
			modify: func(tr *eclrs.TestResult) { tr.SchoolName = "" },
			want:   map[string]any{"name_employer_school": "Employer Name"},
		},
		{
			name:   "WhitespaceOnlyJoinIsNull",
			modify: func(tr *eclrs.TestResult) { tr.SchoolName, tr.EmployerName = "  ", "" },
			want:   map[string]any{"name_employer_school": nil, "school_name": "  "},
		},
		{
			name:   "SecondFacilityLineOnly",
			modify: func(tr *eclrs.TestResult) { tr.RequestFacilityAddress1 = "" },
			want:   map[string]any{"ordering_facility_address": "Suite 0"},
		},
		{
			name:   "ProviderLastNameOnly",
			modify: func(tr *eclrs.TestResult) { tr.RequestProviderNameFirst = "" },
			want: map[string]any{"ordering_provider_name": "Doctor",
				"ordering_provider_first_name": nil},
		},
		{
			name:     "NumericExternalIDKeepsItsDigits",
			caseData: map[string]any{"external_id": 1234567.0},
			want: map[string]any{"doh_mpi_id": 1234567.0, "external_id": "1234567#12345#ABC123",
				"name": "1234567 lab_result", "parent_external_id": 1234567.0},
		},
		{
			name:   "ResultNotDetectedIsOther",
			modify: func(tr *eclrs.TestResult) { tr.Result = "Not detected" },
			want:   map[string]any{"lab_result": "other"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tr := ruleBrandNew(t)
			if tt.modify != nil {
				tt.modify(tr)
			}
			caseData := tt.caseData
			if caseData == nil {
				caseData = map[string]any{"external_id": "P42"}
			}
			data := labResultData(tr, caseData, ruleMidsomer)
			require.Len(t, data, 45)
			for k, want := range tt.want {
				require.Contains(t, data, k)
				require.Equal(t, want, data[k], k)
			}
		})
	}
}

func TestClassifyResult(t *testing.T) {
	t.Parallel()

	tests := []struct {
		result string
		want   string
	}{
		{"Positive", "positive"},
		{"POSITIVE", "positive"},
		{"Maybe it was POsitive???", "positive"},
		{"I suspect that NEGATIVe vibes have affected this person", "negative"},
		{"Inconclusive???", "inconclusive"},
		{"yeeee invalideeeeee", "invalid"},
		{"it is unknown how long this person has been sick with the virus", "unknown"},
		{"this person is definitely infected", "other"},
		{"Not detected", "other"},
		{"negative, not positive", "negative"},
		{"unknown or positive", "unknown"},
		{"", "other"},
	}
	for _, tt := range tests {
		t.Run(tt.result, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.want, classifyResult(tt.result))
		})
	}
}

func TestPersonNames(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name      string
		raw       string
		wantFirst string
		wantLast  string
	}{
		{"Simple", "Donny", "DONNY", "DONNY"},
		{"TwoWords", "Mary Ann", "MARY", "MARY ANN"},
		{"Hyphen", "Jean-Luc", "JEAN-LUC", "JEAN-LUC"},
		{"LeadingSpaceIsNull", " Mary", "", " MARY"},
		{"Null", "", "", ""},
		{"TabIsNotASeparator", "Mary\tAnn", "MARY\tANN", "MARY\tANN"},
		{"Unicode", "élodie dupré", "ÉLODIE", "ÉLODIE DUPRÉ"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.wantFirst, casedb.PersonFirstName(tt.raw))
			require.Equal(t, tt.wantLast, casedb.PersonLastName(tt.raw))
		})
	}
}

func TestFmtDates(t *testing.T) {
	t.Parallel()

	require.Equal(t, "", fmtDate(time.Time{}))
	require.Equal(t, "1960-01-01", fmtDate(ruleDate(1960, 1, 1)))
	require.Equal(t, "", fmtInstant(time.Time{}))
	require.Equal(t, "2020-05-29", fmtInstant(ruleInstant(t, "2020-05-30T03:59:00Z")))
	require.Equal(t, "2020-05-30", fmtInstant(ruleInstant(t, "2020-05-30T04:00:00Z")))
	require.Equal(t, "2020-12-31", fmtInstant(ruleInstant(t, "2021-01-01T04:59:00Z")))
	require.Equal(t, "2021-01-01", fmtInstant(ruleInstant(t, "2021-01-01T05:00:00Z")))
}
