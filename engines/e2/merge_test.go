package e2

import (
	"maps"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/viaduct-nys/viaduct/pkg/eclrs"
)

func TestDiff(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name          string
		old, new      map[string]any
		preferRight   []string
		wantAdditions map[string]any
		wantUpdates   map[string]any
	}{
		{
			name:          "OriginalExample",
			old:           map[string]any{"a": 1.0, "b": 2.0, "z": 26.0},
			new:           map[string]any{"a": 1.0, "b": 3.0, "y": 25.0},
			wantAdditions: map[string]any{"y": 25.0},
			wantUpdates:   map[string]any{"b": 3.0},
		},
		{
			name:          "AbsentKeyIsAdded",
			old:           map[string]any{},
			new:           map[string]any{"a": "x"},
			wantAdditions: map[string]any{"a": "x"},
		},
		{
			name:          "AbsentKeyIsAddedEvenAsNull",
			old:           map[string]any{},
			new:           map[string]any{"a": nil},
			wantAdditions: map[string]any{"a": nil},
		},
		{
			name:          "NullAndEmptyAreFilled",
			old:           map[string]any{"a": "", "b": nil},
			new:           map[string]any{"a": "b", "b": "c"},
			wantAdditions: map[string]any{"a": "b", "b": "c"},
		},
		{
			name:          "EmptyThenNullAddsTheNull",
			old:           map[string]any{"a": ""},
			new:           map[string]any{"a": nil},
			wantAdditions: map[string]any{"a": nil},
		},
		{
			name: "NullThenNullIsNothing",
			old:  map[string]any{"a": nil},
			new:  map[string]any{"a": nil},
		},
		{
			name: "EmptyThenEmptyIsNothing",
			old:  map[string]any{"a": ""},
			new:  map[string]any{"a": ""},
		},
		{
			name: "EqualIsNothing",
			old:  map[string]any{"a": "x", "m": map[string]any{"k": []any{"v"}}},
			new:  map[string]any{"a": "x", "m": map[string]any{"k": []any{"v"}}},
		},
		{
			name:        "NonEmptyIsNeverOverwritten",
			old:         map[string]any{"case_import_date": "2020-05-31", "gender": "male"},
			new:         map[string]any{"case_import_date": "2021-01-01", "gender": "female"},
			wantUpdates: map[string]any{"case_import_date": "2021-01-01", "gender": "female"},
		},
		{
			name:        "NonEmptyIsNeverOverwrittenWithNullOrEmpty",
			old:         map[string]any{"a": "x", "b": "y"},
			new:         map[string]any{"a": nil, "b": ""},
			wantUpdates: map[string]any{"a": nil, "b": ""},
		},
		{
			name:        "WhitespaceIsNotEmpty",
			old:         map[string]any{"a": "  "},
			new:         map[string]any{"a": "x"},
			wantUpdates: map[string]any{"a": "x"},
		},
		{
			name:        "NonStringIsNotEmpty",
			old:         map[string]any{"a": 5.0, "b": false},
			new:         map[string]any{"a": "5", "b": "no"},
			wantUpdates: map[string]any{"a": "5", "b": "no"},
		},
		{
			name:          "PreferRightOverwrites",
			old:           map[string]any{"a": "1", "b": "2"},
			new:           map[string]any{"a": "b", "b": "c"},
			preferRight:   []string{"a"},
			wantAdditions: map[string]any{"a": "b"},
			wantUpdates:   map[string]any{"b": "c"},
		},
		{
			name:          "HasPhoneNumberFlipsFromNoToYes",
			old:           map[string]any{"has_phone_number": "no", "new_lab_result_received": "no"},
			new:           map[string]any{"has_phone_number": "yes", "new_lab_result_received": "yes"},
			preferRight:   preferRightKeys,
			wantAdditions: map[string]any{"has_phone_number": "yes", "new_lab_result_received": "yes"},
		},
		{
			name:        "PreferRightNeverWritesNull",
			old:         map[string]any{"owner_id": "inactive"},
			new:         map[string]any{"owner_id": nil},
			preferRight: []string{"owner_id"},
			wantUpdates: map[string]any{"owner_id": nil},
		},
		{
			name:          "PreferRightWritesEmpty",
			old:           map[string]any{"owner_id": "inactive"},
			new:           map[string]any{"owner_id": ""},
			preferRight:   []string{"owner_id"},
			wantAdditions: map[string]any{"owner_id": ""},
		},
		{
			name:        "PreferRightEqualIsNothing",
			old:         map[string]any{"has_phone_number": "yes"},
			new:         map[string]any{"has_phone_number": "yes"},
			preferRight: preferRightKeys,
		},
		{
			name: "KeysOnlyInOldAreIgnored",
			old:  map[string]any{"custom": "x", "a": "y"},
			new:  map[string]any{"a": "y"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			additions, updates := diff(tt.old, tt.new, tt.preferRight)
			require.Equal(t, orEmpty(tt.wantAdditions), additions)
			require.Equal(t, orEmpty(tt.wantUpdates), updates)
		})
	}
}

// orEmpty lets table cases leave out an expected empty map.
func orEmpty(m map[string]any) map[string]any {
	if m == nil {
		return map[string]any{}
	}
	return m
}

// mergeFixture is the index case the original's merge tests start from (its Fixtures.index_case_data), with the
// given overrides.
func mergeFixture(overrides map[string]any) map[string]any {
	data := map[string]any{
		"address":                 "123 Somewhere St, SomeCity, NY, 12301",
		"address_city":            "SomeCity",
		"address_complete":        "yes",
		"address_county":          "midsomer",
		"address_state":           "NY",
		"address_street":          nil,
		"address_zip":             "12301",
		"age":                     "30",
		"age_range":               "18 - 59",
		"analysis_date":           "2020-05-30",
		"case_import_date":        "2020-05-31",
		"contact_phone_number":    "",
		"county_commcare_domain":  "uk-midsomer-cdcms",
		"county_display":          "Midsomer",
		"dob":                     "1991-05-30",
		"dob_known":               "yes",
		"doh_mpi_id":              "600000",
		"eclrs_create_date":       "2020-05-31",
		"external_id":             "600000",
		"fips":                    "1111",
		"first_name":              "Test",
		"full_name":               "Test User",
		"gaz":                     "ms-gaz",
		"gender":                  "male",
		"gender_other":            "",
		"has_phone_number":        "no",
		"last_name":               "User",
		"name":                    "Test User",
		"name_and_id":             "Test User (600000)",
		"new_lab_result_received": "yes",
		"owner_id":                "a1a1a1a1a1",
		"patient_type":            "confirmed",
		"phone_home":              "",
	}
	maps.Copy(data, overrides)
	return data
}

// mergeTestResult is the test result of the original's merge tests: a street and a phone but no city or ZIP.
func mergeTestResult(t *testing.T) *eclrs.TestResult {
	t.Helper()
	return &eclrs.TestResult{
		CountyID:                   1111,
		EclrsCreateDate:            ruleInstant(t, "2020-05-31T12:00:00Z"),
		LabName:                    "Lab",
		PatientDOB:                 ruleDate(1990, 8, 3),
		PatientAddress1:            "1 Main St",
		PatientGender:              "f",
		PatientKey:                 "87654321",
		PatientNameFirst:           "Jane",
		PatientNameLast:            "Doe",
		PatientPhoneHomeNormalized: "12125550123",
		RequestAccessionNumber:     "123ABC",
		RequestCollectionDate:      ruleInstant(t, "2020-05-30T03:59:00Z"),
	}
}

func TestMergeIndexCase(t *testing.T) {
	t.Parallel()
	now := "2021-03-15T15:00:00Z"

	t.Run("FillsBlanksAndKeepsWhatIsSet", func(t *testing.T) {
		t.Parallel()
		old := mergeFixture(map[string]any{
			"aaa":         "AAA",
			"a_nil_value": nil,
			"dob":         "1990-08-03",
			"first_name":  "Jane",
			"full_name":   "Jane Doe",
			"last_name":   "Doe",
			"name":        "Jane Doe",
			"name_and_id": "Jane Doe (600000)",
			"age":         "pre-calculated age",
			"age_range":   "pre-calculated age_range",
		})
		before := maps.Clone(old)
		newData := indexCaseData(mergeTestResult(t), 9, ruleMidsomer, ruleInstant(t, now))

		merged, additions, updates := mergeIndexCase(old, newData, preferRightKeys)
		require.Equal(t, map[string]any{
			"address_street":       "1 Main St",
			"contact_phone_number": "12125550123",
			"has_phone_number":     "yes",
			"initials":             "JD",
			"phone_home":           "12125550123",
		}, additions)
		require.Equal(t, map[string]any{
			"address":          "1 Main St",
			"address_city":     "",
			"address_complete": "no",
			"address_state":    "",
			"address_zip":      "",
			"analysis_date":    "",
			"case_import_date": "2021-03-15",
			"doh_mpi_id":       "P9",
			"external_id":      "P9",
			"gender":           "female",
			"name_and_id":      "Jane Doe (P9)",
		}, updates)
		want := maps.Clone(before)
		maps.Copy(want, additions)
		require.Equal(t, want, merged)
		require.Equal(t, before, old, "old is not modified")
		require.Equal(t, "2020-05-31", merged["case_import_date"])
		require.Equal(t, "male", merged["gender"])
		require.Equal(t, "pre-calculated age", merged["age"])
		require.Equal(t, "AAA", merged["aaa"])
	})

	t.Run("NothingNew", func(t *testing.T) {
		t.Parallel()
		old := mergeFixture(map[string]any{
			"address_street":       "1 Main St",
			"contact_phone_number": "12125550123",
			"dob":                  "1990-08-03",
			"doh_mpi_id":           "8000",
			"external_id":          "8000",
			"first_name":           "Jane",
			"full_name":            "Jane Doe",
			"has_phone_number":     "yes",
			"initials":             "JD",
			"last_name":            "Doe",
			"name":                 "Jane Doe",
			"name_and_id":          "Jane Doe (8000)",
			"phone_home":           "12125550123",
		})
		newData := indexCaseData(mergeTestResult(t), 9, ruleMidsomer, ruleInstant(t, now))

		merged, additions, updates := mergeIndexCase(old, newData, preferRightKeys)
		require.Empty(t, additions)
		require.Equal(t, map[string]any{
			"address":          "1 Main St",
			"address_city":     "",
			"address_complete": "no",
			"address_state":    "",
			"address_zip":      "",
			"analysis_date":    "",
			"case_import_date": "2021-03-15",
			"doh_mpi_id":       "P9",
			"external_id":      "P9",
			"gender":           "female",
			"name_and_id":      "Jane Doe (P9)",
		}, updates)
		require.Equal(t, old, merged)
	})

	t.Run("FillsMissingExternalID", func(t *testing.T) {
		t.Parallel()
		old := mergeFixture(nil)
		delete(old, "external_id")
		delete(old, "doh_mpi_id")
		newData := indexCaseData(mergeTestResult(t), 9, ruleMidsomer, ruleInstant(t, now))

		merged, additions, _ := mergeIndexCase(old, newData, preferRightKeys)
		require.Equal(t, "P9", additions["external_id"])
		require.Equal(t, "P9", merged["doh_mpi_id"])
	})

	tests := []struct {
		name          string
		old, new      map[string]any
		preferRight   []string
		wantAdditions map[string]any
		wantUpdates   map[string]any
	}{
		{
			name: "AdditionCompletesTheOldAddress",
			old: map[string]any{"address_street": nil, "address_city": "Albany", "address_zip": "12207",
				"address_complete": "no"},
			new: map[string]any{"address_street": "1 Main St", "address_city": "", "address_zip": "",
				"address_complete": "no"},
			wantAdditions: map[string]any{"address_street": "1 Main St", "address_complete": "yes"},
			wantUpdates:   map[string]any{"address_city": "", "address_zip": ""},
		},
		{
			name: "ForcedOverADroppedUpdate",
			old: map[string]any{"address_street": "", "address_city": "Albany", "address_zip": "12207",
				"address_complete": "no"},
			new: map[string]any{"address_street": "1 Main St", "address_city": "Albany", "address_zip": "12207",
				"address_complete": "yes"},
			wantAdditions: map[string]any{"address_street": "1 Main St", "address_complete": "yes"},
		},
		{
			name: "CompleteOldAddressStaysComplete",
			old: map[string]any{"address_street": "1 Main St", "address_city": "Albany", "address_zip": "12207",
				"address_complete": "yes"},
			new: map[string]any{"address_street": "", "address_city": "", "address_zip": "",
				"address_complete": "no"},
			wantUpdates: map[string]any{"address_street": "", "address_city": "", "address_zip": "",
				"address_complete": "no"},
		},
		{
			name: "MissingFlagIsAdded",
			old:  map[string]any{"address_city": "Albany"},
			new:  map[string]any{"new_lab_result_received": "yes"},
			wantAdditions: map[string]any{"new_lab_result_received": "yes",
				"address_complete": "no"},
		},
		{
			name: "WrongFlagIsCorrected",
			old: map[string]any{"address_street": "1 Main St", "address_city": "Albany", "address_zip": "12207",
				"address_complete": "no"},
			new:           map[string]any{"new_lab_result_received": "yes"},
			wantAdditions: map[string]any{"new_lab_result_received": "yes", "address_complete": "yes"},
		},
		{
			name: "ReinfectionOnlyMarksTheCase",
			old: map[string]any{"address_street": "1 Main St", "address_city": "Albany", "address_zip": "12207",
				"address_complete": "yes", "current_status": "closed"},
			new:           map[string]any{"reinfected_case_created": "yes"},
			preferRight:   preferRightKeysFor(repeatReinfection),
			wantAdditions: map[string]any{"reinfected_case_created": "yes"},
		},
		{
			name: "ReactivationTakesTheCountyOwner",
			old: map[string]any{"address_complete": "no", "owner_id": "inactive-location-id",
				"new_lab_result_received": "no", "first_name": nil, "last_name": ""},
			new: map[string]any{"address_complete": "no", "owner_id": "a1a1a1a1a1",
				"new_lab_result_received": "yes", "reactivated_case": "yes", "first_name": "DONNY",
				"last_name": "DOE"},
			preferRight: preferRightKeysFor(repeatReactivation),
			wantAdditions: map[string]any{"owner_id": "a1a1a1a1a1", "new_lab_result_received": "yes",
				"reactivated_case": "yes", "first_name": "DONNY", "last_name": "DOE"},
		},
		{
			name:        "OwnerIsKeptWithoutReactivation",
			old:         map[string]any{"address_complete": "no", "owner_id": "inactive-location-id"},
			new:         map[string]any{"address_complete": "no", "owner_id": "a1a1a1a1a1"},
			preferRight: preferRightKeysFor(repeatNone),
			wantUpdates: map[string]any{"owner_id": "a1a1a1a1a1"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			before := maps.Clone(tt.old)
			merged, additions, updates := mergeIndexCase(tt.old, tt.new, tt.preferRight)
			require.Equal(t, orEmpty(tt.wantAdditions), additions)
			require.Equal(t, orEmpty(tt.wantUpdates), updates)
			want := maps.Clone(before)
			maps.Copy(want, additions)
			require.Equal(t, want, merged)
			require.Equal(t, before, tt.old, "old is not modified")
		})
	}
}

func TestMergeLabResult(t *testing.T) {
	t.Parallel()

	t.Run("KeepsExistingValues", func(t *testing.T) {
		t.Parallel()
		old := map[string]any{
			"doh_mpi_id":        "123456",
			"eclrs_create_date": "2020-05-31",
			"external_id":       "123456",
			"laboratory":        "My house",
			"opinion":           "none",
			"patient_key":       "12345",
			"accession_number":  "ABC123",
			"owner_id":          "fee-fi-fo-fum",
		}
		before := maps.Clone(old)
		tr := &eclrs.TestResult{
			CountyID:               1111,
			EclrsCreateDate:        ruleInstant(t, "2020-05-31T12:00:00Z"),
			LabName:                "Some Hospital",
			PatientDOB:             ruleDate(1960, 1, 1),
			PatientKey:             "12345",
			PatientNameFirst:       "DONNY",
			PatientNameLast:        "DOE",
			RequestAccessionNumber: "ABC123",
		}
		newData := labResultData(tr, map[string]any{"external_id": "P42"}, ruleMidsomer)

		merged, additions, updates := mergeLabResult(old, newData)
		require.Equal(t, map[string]any{
			"analysis_date":                  "",
			"aoe_date":                       "",
			"eclrs_congregate_care_resident": nil,
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
			"first_test":                     nil,
			"healthcare_employee":            nil,
			"lab_result":                     "other",
			"name_employer_school":           nil,
			"name":                           "P42 lab_result",
			"ordering_facility_address":      nil,
			"ordering_facility_city":         nil,
			"ordering_facility_name":         nil,
			"ordering_facility_phone":        nil,
			"ordering_provider_address":      nil,
			"ordering_provider_city":         nil,
			"ordering_provider_first_name":   nil,
			"ordering_provider_last_name":    nil,
			"ordering_provider_name":         nil,
			"parent_external_id":             "P42",
			"parent_type":                    "patient",
			"school_attended":                nil,
			"school_code":                    nil,
			"school_district":                nil,
			"school_name":                    nil,
			"school_visitor_type":            nil,
			"specimen_collection_date":       "",
			"specimen_source":                nil,
			"test_type":                      nil,
		}, additions)
		require.Equal(t, map[string]any{
			"doh_mpi_id":  "P42",
			"external_id": "P42#12345#ABC123",
			"laboratory":  "Some Hospital",
			"owner_id":    "a1a1a1a1a1",
		}, updates)
		require.Equal(t, "My house", merged["laboratory"])
		require.Equal(t, "none", merged["opinion"])
		require.Equal(t, "fee-fi-fo-fum", merged["owner_id"])
		require.Len(t, merged, 45+2) // opinion and patient_key are not lab result keys
		require.Equal(t, before, old, "old is not modified")
	})

	tests := []struct {
		name          string
		old, new      map[string]any
		wantAdditions map[string]any
		wantUpdates   map[string]any
	}{
		{
			name: "BlankValuesAreFilledFromOld",
			old:  map[string]any{"laboratory": "Lab A", "school_name": "X", "test_type": "PCR"},
			new:  map[string]any{"laboratory": nil, "school_name": "   ", "test_type": ""},
		},
		{
			name:          "BlankOverBlankKeepsOld",
			old:           map[string]any{"a": "", "b": nil},
			new:           map[string]any{"a": nil, "b": "  "},
			wantAdditions: map[string]any{},
		},
		{
			name:          "NewKeysAreAddedEvenAsNull",
			old:           map[string]any{"laboratory": "Lab A"},
			new:           map[string]any{"laboratory": "Lab A", "eclrs_icu": nil, "lab_result": "positive"},
			wantAdditions: map[string]any{"eclrs_icu": nil, "lab_result": "positive"},
		},
		{
			name:          "EmptyOldValuesAreFilled",
			old:           map[string]any{"laboratory": "", "lab_result": nil},
			new:           map[string]any{"laboratory": "Lab B", "lab_result": "negative"},
			wantAdditions: map[string]any{"laboratory": "Lab B", "lab_result": "negative"},
		},
		{
			name:        "SetValuesAreKept",
			old:         map[string]any{"laboratory": "My house"},
			new:         map[string]any{"laboratory": "Some Hospital"},
			wantUpdates: map[string]any{"laboratory": "Some Hospital"},
		},
		{
			name: "SameDataIsNothing",
			old:  map[string]any{"laboratory": "Lab A", "eclrs_icu": nil},
			new:  map[string]any{"laboratory": "Lab A", "eclrs_icu": nil},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			before := maps.Clone(tt.old)
			merged, additions, updates := mergeLabResult(tt.old, tt.new)
			require.Equal(t, orEmpty(tt.wantAdditions), additions)
			require.Equal(t, orEmpty(tt.wantUpdates), updates)
			want := maps.Clone(before)
			maps.Copy(want, additions)
			require.Equal(t, want, merged)
			require.Equal(t, before, tt.old, "old is not modified")
		})
	}
}

func TestPreferRightKeysFor(t *testing.T) {
	t.Parallel()

	tests := []struct {
		kind repeatKind
		want []string
	}{
		{repeatNone, []string{"has_phone_number", "new_lab_result_received"}},
		{repeatReinfection, []string{"has_phone_number", "new_lab_result_received"}},
		{repeatReactivation, []string{"has_phone_number", "new_lab_result_received", "owner_id"}},
	}
	for _, tt := range tests {
		t.Run(tt.kind.String(), func(t *testing.T) {
			t.Parallel()
			got := preferRightKeysFor(tt.kind)
			require.Equal(t, tt.want, got)
			got[0] = "changed"
			require.Equal(t, "has_phone_number", preferRightKeys[0], "the shared slice is not aliased")
		})
	}
}
