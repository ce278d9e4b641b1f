package eclrs

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/viaduct-nys/viaduct/pkg/pgtest"
)

// copyRow COPYs r into test_results as Engine 1 does and returns its columns as PostgreSQL prints them, `\N` for
// NULL: the binary format is checked by the server that reads it.
func copyRow(t *testing.T, db *pgtest.DB, id, fileID int64, r *Record) map[string]string {
	t.Helper()
	ctx := context.Background()
	row := AppendTestResultRow(nil, id, fileID, r)
	requireWellFormedRow(t, row)
	stream := append(append(slices.Clone(CopyHeader), row...), CopyTrailer...)
	conn, err := db.Pool.Acquire(ctx)
	require.NoError(t, err)
	defer conn.Release()
	_, err = conn.Conn().PgConn().CopyFrom(ctx, bytes.NewReader(stream), TestResultCopySQL)
	require.NoError(t, err)

	names := append(slices.Clone(TestResultColumns), identityColumns...)
	exprs := make([]string, len(names))
	for i, name := range names {
		exprs[i] = fmt.Sprintf(`coalesce(%s::text, '\N')`, name)
	}
	vals := make([]string, len(names))
	dest := make([]any, len(names))
	for i := range vals {
		dest[i] = &vals[i]
	}
	require.NoError(t, conn.QueryRow(ctx, "SELECT "+strings.Join(exprs, ", ")+" FROM test_results WHERE id = $1", id).
		Scan(dest...))
	cols := make(map[string]string, len(names))
	for i, name := range names {
		cols[name] = vals[i]
	}
	return cols
}

// requireWellFormedRow walks a binary COPY row: its field count, then each field's length and bytes, to its end.
func requireWellFormedRow(t *testing.T, row []byte) {
	t.Helper()
	require.GreaterOrEqual(t, len(row), 2)
	require.Equal(t, copyFieldCount, int(binary.BigEndian.Uint16(row)))
	rest := row[2:]
	for i := range copyFieldCount {
		require.GreaterOrEqual(t, len(rest), 4, "field %d", i)
		n := int32(binary.BigEndian.Uint32(rest))
		rest = rest[4:]
		if n == -1 {
			continue
		}
		require.GreaterOrEqual(t, n, int32(0), "field %d", i)
		require.GreaterOrEqual(t, len(rest), int(n), "field %d", i)
		rest = rest[n:]
	}
	require.Empty(t, rest, "bytes after the last field")
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

func TestAppendTestResultRow(t *testing.T) {
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
				"request_collection_date": "2020-03-18 04:00:00", "eclrs_create_date": "2020-03-20 10:03:36.589",
				"result_observation_date": "2020-03-19 23:20:00", "result_analysis_date": "2020-03-19 23:20:00",
				"patient_updated_at": "2020-05-14 17:43:16", "request_accession_number": "102695116",
				"result_producer_lab_name": `\N`, "employer_name": `\N`, "school_present": `\N`, "first_test": `\N`,
				"aoe_date": `\N`, "eclrs_pregnant": `\N`, "result": "POSITIVE",
				"checksum_version": "3", "patient_key_id": "15200000000000",
			},
		},
		{
			name: "V3WithAOE", version: V3, line: goodeV3AOE,
			want: map[string]string{
				"county_id": "9999", "patient_phone_home_normalized": "5551234568", "request_phone_facility": "1112223333",
				"request_phone_facility_normalized": "1112223333", "first_test": "A", "aoe_date": "2020-03-20 05:02:03",
				"healthcare_employee": "B", "eclrs_symptomatic": "C", "eclrs_symptom_onset_date": "2020-03-21 08:05:06",
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
				"patient_city": `C:\temp`, "patient_zip": "  ", "patient_dob": `\N`, "eclrs_create_date": `\N`,
				"patient_phone_home": "N/A", "patient_phone_home_normalized": `\N`,
				"raw_data": conversionsV1, // kept: it cannot be rebuilt
			},
		},
		{
			name: "ControlCharacters", version: V1, line: withColumn(lastnameV1, FieldPatientCity, "A\tB\rC"),
			want: map[string]string{"patient_city": "A\tB\rC"},
		},
		{
			name: "Unicode", version: V1, line: withColumn(lastnameV1, FieldPatientCity, "Zoë \\N"),
			want: map[string]string{"patient_city": "Zoë \\N"},
		},
		{
			name: "NoPatientKeyID", version: V1, line: withColumn(lastnameV1, FieldPatientKey, "K-15"),
			want: map[string]string{"patient_key": "K-15", "patient_key_id": `\N`},
		},
	}
	db := pgtest.New(t)
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			r, err := tt.version.ParseLine([]byte(tt.line), 2)
			require.NoError(t, err)
			id := int64(7 + i)
			got := copyRow(t, db, id, 3, &r)
			require.Equal(t, fmt.Sprint(id), got["id"])
			require.Equal(t, fmt.Sprintf(`\x%x`, r.Checksum), got["checksum"])
			for col, want := range tt.want {
				require.Equal(t, want, got[col], col)
			}
		})
	}
}

// TestAppendTestResultRowAllocations is not parallel: AllocsPerRun counts every
// goroutine's allocations and refuses to run during parallel tests.
func TestAppendTestResultRowAllocations(t *testing.T) {
	r, err := V3.ParseLine([]byte(goodeV3AOE), 2)
	require.NoError(t, err)
	buf := make([]byte, 0, 4096)
	allocs := testing.AllocsPerRun(100, func() {
		buf = AppendTestResultRow(buf[:0], 1, 1, &r)
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

func BenchmarkAppendTestResultRow(b *testing.B) {
	r, err := V3.ParseLine([]byte(goodeV3AOE), 2)
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 0, 4096)
	b.ReportAllocs()
	b.SetBytes(int64(len(r.Raw)))
	for b.Loop() {
		buf = AppendTestResultRow(buf[:0], 1, 1, &r)
	}
}
