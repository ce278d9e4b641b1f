package eclrs

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// copyRow encodes r and returns its columns by name.
func copyRow(t *testing.T, id, fileID int64, r *Record) map[string]string {
	t.Helper()

	line := string(AppendTestResultCopy(nil, id, fileID, r))
	require.True(t, strings.HasSuffix(line, "\n"))
	vals := strings.Split(strings.TrimSuffix(line, "\n"), "\t")
	require.Len(t, vals, len(TestResultColumns))
	cols := make(map[string]string, len(vals))
	for i, name := range TestResultColumns {
		cols[name] = vals[i]
	}
	return cols
}

func TestTestResultColumns(t *testing.T) {
	t.Parallel()

	seen := map[string]bool{}
	for _, c := range TestResultColumns {
		require.False(t, seen[c], "duplicate column %s", c)
		seen[c] = true
	}
	// Every field feeds a column except PIDCOUNTYCODE, which becomes county_id; the
	// two phones feed two columns each.
	require.Len(t, TestResultColumns, 5+NumFields-1+2)
	fed := map[int]bool{}
	for _, c := range copyColumns {
		fed[c.field] = true
	}
	for i := range NumFields {
		require.Equal(t, i != FieldCountyCode, fed[i], "field %s", FieldName(i))
	}
}

func TestAppendTestResultCopy(t *testing.T) {
	t.Parallel()

	conversionsV1 := withColumn(withColumn(withColumn(withColumn(withColumn(lastnameV1,
		FieldPatientCity, `C:\temp`), FieldPatientZip, "  "), FieldPatientDOB, "31FEB1947"),
		FieldCreateDate, "20MAR2020:06:03:36"), FieldPatientPhoneHome, "N/A")

	tests := []struct {
		name    string
		version Version
		line    string
		want    map[string]string
	}{
		{
			name: "V1", version: V1, line: lastnameV1,
			want: map[string]string{
				"id": "7", "file_id": "3", "line_number": "2", "county_id": "1111", "raw_data": `\N`, // rebuilt from the rest
				"patient_name_last": "LASTNAME", "patient_name_middle": `\N`, "patient_name_first": "FIRSTNAME",
				"patient_dob": "1947-03-01", "patient_gender": "M", "patient_address_1": "123 MAIN St",
				"patient_address_2": `\N`, "patient_city": `\N`, "patient_zip": `\N`,
				"patient_phone_home": "(555) 123-4567", "patient_phone_home_normalized": "5551234567",
				"lab_id": "3130", "sending_facility_clia": "31D0652945", "lab_name": "ACME LABORATORIES INC",
				"patient_key": "15200000000000", "request_facility_code": `\N`, "request_facility_name": "NEW YORK STATE",
				"request_phone_facility": `\N`, "request_phone_facility_normalized": `\N`,
				"request_collection_date": "2020-03-18 04:00:00.000000", "eclrs_create_date": "2020-03-20 10:03:36.589000",
				"result_observation_date": "2020-03-19 23:20:00.000000", "result_analysis_date": "2020-03-19 23:20:00.000000",
				"patient_updated_at": "2020-05-14 17:43:16.000000", "request_accession_number": "102695116",
				"result_producer_lab_name": `\N`, "employer_name": `\N`, "school_present": `\N`, "first_test": `\N`,
				"aoe_date": `\N`, "eclrs_pregnant": `\N`, "result": "POSITIVE",
			},
		},
		{
			name: "V3WithAOE", version: V3, line: goodeV3AOE,
			want: map[string]string{
				"county_id": "9999", "patient_phone_home_normalized": "5551234568", "request_phone_facility": "1112223333",
				"request_phone_facility_normalized": "1112223333", "first_test": "A", "aoe_date": "2020-03-20 05:02:03.000000",
				"healthcare_employee": "B", "eclrs_symptomatic": "C", "eclrs_symptom_onset_date": "2020-03-21 08:05:06.000000",
				"eclrs_hospitalized": "D", "eclrs_icu": "E", "eclrs_congregate_care_resident": "F", "eclrs_pregnant": "G",
				"result": "POSITIVE",
			},
		},
		{
			name: "QuotedValues", version: V2, line: quotesV2,
			want: map[string]string{"raw_data": quotesV2, "patient_address_2": `""`},
		},
		{
			name: "Conversions", version: V1,
			line: conversionsV1,
			want: map[string]string{
				"patient_city": `C:\\temp`, "patient_zip": "  ", "patient_dob": `\N`, "eclrs_create_date": `\N`,
				"patient_phone_home": "N/A", "patient_phone_home_normalized": `\N`,
				"raw_data": strings.ReplaceAll(conversionsV1, `\`, `\\`), // kept: it cannot be rebuilt
			},
		},
		{
			name: "ControlCharacters", version: V1, line: withColumn(lastnameV1, FieldPatientCity, "A\tB\rC"),
			want: map[string]string{"patient_city": `A\tB\rC`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			r, err := tt.version.ParseLine([]byte(tt.line), 2)
			require.NoError(t, err)
			got := copyRow(t, 7, 3, &r)
			for col, want := range tt.want {
				require.Equal(t, want, got[col], col)
			}
		})
	}
}

func TestAppendCopyText(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name, in, want string
	}{
		{"Empty", "", `\N`},
		{"Spaces", "  ", "  "},
		{"Plain", "abc", "abc"},
		{"Backslash", `a\b`, `a\\b`},
		{"LiteralNullMarker", `\N`, `\\N`},
		{"Tab", "a\tb", `a\tb`},
		{"Newline", "a\nb", `a\nb`},
		{"CarriageReturn", "a\rb", `a\rb`},
		{"AllAtEnds", "\t\\x\n\r", `\t\\x\n\r`},
		{"Unicode", "Zoë", "Zoë"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.want, string(appendCopyText(nil, tt.in)))
		})
	}
}

func FuzzAppendCopyText(f *testing.F) {
	for _, s := range []string{"", "abc", `a\b`, "a\tb\n\r", "0123456789abcdef\x01\x0d\\", "Zoë"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want := `\N`
		if s != "" {
			want = strings.NewReplacer(`\`, `\\`, "\t", `\t`, "\n", `\n`, "\r", `\r`).Replace(s)
		}
		require.Equal(t, want, string(appendCopyText(nil, s)))
	})
}

// TestAppendTestResultCopyAllocations is not parallel: AllocsPerRun counts every
// goroutine's allocations and refuses to run during parallel tests.
func TestAppendTestResultCopyAllocations(t *testing.T) {
	r, err := V3.ParseLine([]byte(goodeV3AOE), 2)
	require.NoError(t, err)
	buf := make([]byte, 0, 4096)
	allocs := testing.AllocsPerRun(100, func() {
		buf = AppendTestResultCopy(buf[:0], 1, 1, &r)
	})
	require.Zero(t, allocs)
}

func TestPatientKeyID(t *testing.T) {
	t.Parallel()

	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"15200000000000", 15200000000000, true},
		{"0042", 42, true},
		{"9223372036854775807", 1<<63 - 1, true},
		{"9223372036854775808", 0, false},
		{"", 0, false},
		{" 42", 0, false},
		{"-42", 0, false},
		{"42A", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()

			got, ok := PatientKeyID(tt.in)
			require.Equal(t, tt.ok, ok)
			require.Equal(t, tt.want, got)
		})
	}
}

func BenchmarkAppendTestResultCopy(b *testing.B) {
	r, err := V3.ParseLine([]byte(goodeV3AOE), 2)
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 0, 4096)
	b.ReportAllocs()
	b.SetBytes(int64(len(r.Raw)))
	for b.Loop() {
		buf = AppendTestResultCopy(buf[:0], 1, 1, &r)
	}
}
