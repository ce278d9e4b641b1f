package eclrs

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
)

// Rows built from the original's test fixtures (new_records, v2_new_records,
// v3_new_records, v2_records_with_pipes, v2_records_with_quotes), whose checksums
// the spec lists.
const (
	// lastnameHead is the LASTNAME row up to and including the "|" after PIDUPDATEDATE,
	// the point where newer layouts insert their columns.
	lastnameHead = "LASTNAME||FIRSTNAME|01MAR1947:00:00:00.000000|M|123 MAIN St||||1111|(555) 123-4567|3130|31D0652945|ACME LABORATORIES INC|15200000000000|321 Main Street||New Rochelle||NEW YORK STATE||321 Main Street|New Rochelle||Sally|Testuser|18MAR2020:00:00:00.000000|20MAR2020:06:03:36.589000|TH68-0|COVID-19 Nasopharynx|94309-2|2019-nCoV RNA XXX NAA+probe-Imp|19MAR2020:19:20:00.000000|Positive for 2019-nCoV|Positive for 2019-nCoV|F||10828004|Positive for 2019-nCoV|102695116|19MAR2020:19:20:00.000000|NASOPHARYNX|15200070260000|14MAY2020:13:43:16.000000|"
	lastnameV1   = lastnameHead + "POSITIVE"
	lastnameV2   = lastnameHead + "|||||||||||" + "POSITIVE"
	lastnameV3   = lastnameHead + "||||||||||||||||||||" + "POSITIVE"

	smithHead  = "SMITH||AGENT|01JAN1970:00:00:00.000000|M|456 OTHER ST|APT 1||00000|9999|5551234568|1067|33D0654341|WADSWORTH|15200000000001|321 MAIN STREET|PO BOX 1234|SPRINGFIELD||ACME MEDICAL CENTER|1112223333|321 MAIN STREET|SPRINGFIELD|PFI2128-LABDIR|BOBBY, MD|TESTUSER|21MAR2020:19:24:00.000000|22MAR2020:07:40:38.855000|49365|2019 nCoV Real-Time RT-PCR|94309-2|2019-nCoV N XXX Ql NAA N2|21MAR2020:19:24:00.000000|Positive (qualifier value)|Positive (qualifier value)|F|Acme Center|260373001|Positive (qualifier value)|IDR2000016257-01|19MAR2020:19:20:00.000000|Swab from nasal sinus|15200070260001|30APR2020:14:53:52.000000|"
	smithV1    = smithHead + "POSITIVE"
	smithWork  = "Employer Name|Employer Address|Employer Phone|Employer Phone Alt|Employee Number|Employee Job Title|School Name|School District|School Code|School Job Class|School Present|"
	smithV2    = smithHead + smithWork + "POSITIVE"
	smithV3    = smithHead + smithWork + "|||||||||" + "POSITIVE"
	goodeHead  = "GOODE|B|JOHNNY|02JAN1972:00:00:00.000000|M|789 ANOTHER ST|APT 2||00000|9999|5551234568|1067|33D0654341|WADSWORTH|15200000000002|321 MAIN STREET|PO BOX 1234|SPRINGFIELD||ACME MEDICAL CENTER|1112223333|321 MAIN STREET|SPRINGFIELD|PFI2128-LABDIR|BOBBY, MD|TESTUSER|21MAR2020:19:24:00.000000|22MAR2020:07:40:38.855000|49365|2019 nCoV Real-Time RT-PCR|94309-2|2019-nCoV N XXX Ql NAA N2|21MAR2020:19:24:00.000000|Positive (qualifier value)|Positive (qualifier value)|F|Acme Center|260373001|Positive (qualifier value)|IDR2000016257-02|19MAR2020:19:20:00.000000|Swab from nasal sinus|15200070260002|30APR2020:14:53:52.000000|"
	goodeV3AOE = goodeHead + "|||||||||||" + "A|20MAR2020:01:02:03.000000|B|C|21MAR2020:04:05:06.000000|D|E|F|G|POSITIVE"
)

var (
	// pipesV2 quotes two values that contain "|".
	pipesV2 = strings.NewReplacer(
		"ACME LABORATORIES INC", `"ACME LABORATORIES | INC"`,
		"|NEW YORK STATE|", `|"NEW YORK STATE | GREAT LAB"|`,
	).Replace(lastnameV2)
	// quotesV2 has PIDADDRESSLINE2 `""""""`: a quoted value holding two quotes.
	quotesV2 = strings.NewReplacer(
		"123 MAIN St||", `123 MAIN St|""""""|`,
		"|NEW YORK STATE|", "|NEW YORK STATE GREAT LAB|",
	).Replace(lastnameV2)
)

// withColumn returns row, which must contain no quotes, with its k-th column (in the
// row's own layout) replaced by raw, which is inserted as is.
func withColumn(row string, k int, raw string) string {
	cols := strings.Split(row, "|")
	cols[k] = raw
	return strings.Join(cols, "|")
}

func TestParseLine(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name    string
		version Version
		line    string
		lineNo  int
		// want holds expected values at v3 positions; other positions are not checked,
		// except that columns the layout lacks must be empty.
		want     map[int]string
		county   int64
		wantErr  string
		errField string
	}{
		{
			name: "V1MapsResultToLastPosition", version: V1, line: lastnameV1, county: 1111,
			want: map[int]string{
				FieldPatientNameLast: "LASTNAME", FieldPatientNameMiddle: "", FieldPatientNameFirst: "FIRSTNAME",
				FieldCountyCode: "1111", FieldPatientPhoneHome: "(555) 123-4567", FieldLabName: "ACME LABORATORIES INC",
				FieldPatientKey: "15200000000000", FieldCreateDate: "20MAR2020:06:03:36.589000",
				FieldPatientUpdatedAt: "14MAY2020:13:43:16.000000", FieldEmployerName: "", FieldSchoolPresent: "",
				FieldFirstTest: "", FieldPregnant: "", FieldResult: "POSITIVE",
			},
		},
		{
			name: "V2MapsResultToLastPosition", version: V2, line: smithV2, county: 9999,
			want: map[int]string{
				FieldPatientNameLast: "SMITH", FieldAccessionNumber: "IDR2000016257-01",
				FieldEmployerName: "Employer Name", FieldEmployerPhone: "Employer Phone", FieldSchoolPresent: "School Present",
				FieldFirstTest: "", FieldAOEDate: "", FieldPregnant: "", FieldResult: "POSITIVE",
			},
		},
		{
			name: "V3IsIdentity", version: V3, line: goodeV3AOE, county: 9999,
			want: map[int]string{
				FieldPatientNameMiddle: "B", FieldEmployerName: "", FieldSchoolPresent: "",
				FieldFirstTest: "A", FieldAOEDate: "20MAR2020:01:02:03.000000", FieldHealthcareEmployee: "B",
				FieldSymptomatic: "C", FieldSymptomOnsetDate: "21MAR2020:04:05:06.000000", FieldHospitalized: "D",
				FieldICU: "E", FieldCongregateCareResident: "F", FieldPregnant: "G", FieldResult: "POSITIVE",
			},
		},
		{
			name: "QuotedValuesKeepPipes", version: V2, line: pipesV2, county: 1111,
			want: map[int]string{
				FieldLabName: "ACME LABORATORIES | INC", FieldRequestFacilityName: "NEW YORK STATE | GREAT LAB",
				FieldRequestFacilityCode: "", FieldRequestPhoneFacility: "", FieldResult: "POSITIVE",
			},
		},
		{
			name: "DoubledQuotesDecode", version: V2, line: quotesV2, county: 1111,
			want: map[int]string{FieldPatientAddress2: `""`, FieldPatientCity: "", FieldRequestFacilityName: "NEW YORK STATE GREAT LAB"},
		},
		{
			name: "QuotedEmptyValue", version: V1, line: withColumn(lastnameV1, FieldPatientCity, `""`), county: 1111,
			want: map[int]string{FieldPatientCity: "", FieldPatientZip: ""},
		},
		{
			name: "QuotedInnerQuotes", version: V1, line: withColumn(lastnameV1, FieldPatientCity, `"5"" TALL ""X"""`), county: 1111,
			want: map[int]string{FieldPatientCity: `5" TALL "X"`},
		},
		{
			name: "QuotedFirstValueKeepsSpaces", version: V1, line: withColumn(lastnameV1, 0, `"  LAST NAME "`), county: 1111,
			want: map[int]string{FieldPatientNameLast: "  LAST NAME "},
		},
		{
			name: "QuotedLastValue", version: V1, line: withColumn(lastnameV1, 44, `"POS|ITIVE"`), county: 1111,
			want: map[int]string{FieldResult: "POS|ITIVE"},
		},
		{
			name: "QuotedCountyCode", version: V1, line: withColumn(lastnameV1, FieldCountyCode, `"0600"`), county: 600,
			want: map[int]string{FieldCountyCode: "0600"},
		},
		{
			name: "TrimsLineWhitespace", version: V1, line: " \t" + lastnameV1 + "  \r\n", county: 1111,
			want: map[int]string{FieldPatientNameLast: "LASTNAME", FieldResult: "POSITIVE"},
		},
		{
			name: "CRLF", version: V3, line: lastnameV3 + "\r\n", county: 1111,
			want: map[int]string{FieldResult: "POSITIVE"},
		},
		{
			name: "TrailingSpacesOfLastValueAreLost", version: V1, line: withColumn(lastnameV1, 44, "POSITIVE   "), county: 1111,
			want: map[int]string{FieldResult: "POSITIVE"},
		},
		{
			name: "WhitespaceValuesStay", version: V1, line: withColumn(lastnameV1, FieldPatientCity, "  "), county: 1111,
			want: map[int]string{FieldPatientCity: "  "},
		},
		{
			name: "LoneCarriageReturnIsData", version: V1, line: withColumn(lastnameV1, FieldPatientCity, "A\rB"), county: 1111,
			want: map[int]string{FieldPatientCity: "A\rB"},
		},
		{
			name: "CountyLeadingZeros", version: V1, line: withColumn(lastnameV1, FieldCountyCode, "0600"), county: 600,
		},
		{
			name: "CountyMaxInt64", version: V1, line: withColumn(lastnameV1, FieldCountyCode, "9223372036854775807"), county: 1<<63 - 1,
		},
		{
			name: "EmployerAt255Characters", version: V2, line: withColumn(lastnameV2, FieldEmployerName, strings.Repeat("é", 255)), county: 1111,
			want: map[int]string{FieldEmployerName: strings.Repeat("é", 255)},
		},
		{
			name: "PhoneWith255Digits", version: V1, line: withColumn(lastnameV1, FieldPatientPhoneHome, "("+strings.Repeat("5", 255)+")"), county: 1111,
		},
		{
			name: "ValueAt4096Bytes", version: V1, line: withColumn(lastnameV1, FieldPatientAddress1, strings.Repeat("A", 4096)), county: 1111,
		},

		{
			name: "EmptyLine", version: V1, line: "", lineNo: 3,
			wantErr: "line 3: empty line",
		},
		{
			name: "WhitespaceLine", version: V3, line: " \t\r\n", lineNo: 4,
			wantErr: "line 4: empty line",
		},
		{
			name: "TooFewFields", version: V3, line: lastnameV3[:strings.LastIndexByte(lastnameV3, '|')], lineNo: 9,
			wantErr: "line 9: row has 64 fields, v3 expects 65",
		},
		{
			name: "V1RowInV2File", version: V2, line: lastnameV1, lineNo: 2,
			wantErr: "line 2: row has 45 fields, v2 expects 56",
		},
		{
			name: "V3RowInV1File", version: V1, line: lastnameV3, lineNo: 2,
			wantErr: "line 2: row has 65 fields, v1 expects 45",
		},
		{
			name: "QuoteInsideUnquotedValue", version: V1, line: withColumn(lastnameV1, FieldPatientCity, `5" TALL`), lineNo: 7,
			wantErr: `line 7: field PIDCITY: unexpected '"' in unquoted value: "5\" TALL"`, errField: "PIDCITY",
		},
		{
			name: "TextAfterClosingQuote", version: V1, line: withColumn(lastnameV1, FieldLabName, `"ACME"INC`), lineNo: 5,
			wantErr: `line 5: field MSHSENDINGFACILITYNAME: unexpected text after closing quote: "\"ACME\"INC|15200000000000|321 Main Street||New Rochelle||NEW YORK"...`, errField: "MSHSENDINGFACILITYNAME",
		},
		{
			name: "SpaceAfterClosingQuote", version: V1, line: withColumn(lastnameV1, FieldLabName, `"ACME" `), lineNo: 5,
			errField: "MSHSENDINGFACILITYNAME",
		},
		{
			name: "UnterminatedQuote", version: V1, line: withColumn(lastnameV1, FieldLabName, `"ACME`), lineNo: 5,
			errField: "MSHSENDINGFACILITYNAME",
		},
		{
			name: "UnterminatedQuoteAtEnd", version: V1, line: withColumn(lastnameV1, 44, `"POSITIVE`), lineNo: 5,
			wantErr: `line 5: field RESULTPOSITIVE: unterminated quoted value: "\"POSITIVE"`, errField: "RESULTPOSITIVE",
		},
		{
			name: "QuoteErrorBeyondLayout", version: V1, line: lastnameV1 + `|x|y"z`, lineNo: 6,
			wantErr: `line 6: column 47 (beyond the v1 layout): unexpected '"' in unquoted value: "y\"z"`,
		},
		{
			name: "CountyWithLetters", version: V3, line: withColumn(lastnameV3, FieldCountyCode, "12a"), lineNo: 17,
			wantErr: `line 17: field PIDCOUNTYCODE: not a decimal county code: "12a"`, errField: "PIDCOUNTYCODE",
		},
		{
			name: "CountyEmpty", version: V1, line: withColumn(lastnameV1, FieldCountyCode, ""), lineNo: 2,
			wantErr: `line 2: field PIDCOUNTYCODE: not a decimal county code: ""`, errField: "PIDCOUNTYCODE",
		},
		{name: "CountySpace", version: V1, line: withColumn(lastnameV1, FieldCountyCode, " "), errField: "PIDCOUNTYCODE"},
		{name: "CountyPadded", version: V1, line: withColumn(lastnameV1, FieldCountyCode, " 12"), errField: "PIDCOUNTYCODE"},
		{name: "CountyNegative", version: V1, line: withColumn(lastnameV1, FieldCountyCode, "-5"), errField: "PIDCOUNTYCODE"},
		{name: "CountyPlus", version: V1, line: withColumn(lastnameV1, FieldCountyCode, "+5"), errField: "PIDCOUNTYCODE"},
		{name: "CountyUnderscore", version: V1, line: withColumn(lastnameV1, FieldCountyCode, "1_000"), errField: "PIDCOUNTYCODE"},
		{name: "CountyOverflow", version: V1, line: withColumn(lastnameV1, FieldCountyCode, "9223372036854775808"), errField: "PIDCOUNTYCODE"},
		{
			name: "EmployerOver255Characters", version: V2, line: withColumn(lastnameV2, FieldEmployerName, strings.Repeat("é", 256)), lineNo: 8,
			wantErr: "line 8: field PIDEMPLOYERNAME: value has 256 characters, the column holds 255", errField: "PIDEMPLOYERNAME",
		},
		{
			name: "SchoolOver255Characters", version: V3, line: withColumn(lastnameV3, FieldSchoolPresent, strings.Repeat("Y", 300)),
			errField: "PIDSCHOOLPRESENT",
		},
		{
			name: "NormalisedPhoneOver255Digits", version: V1, line: withColumn(lastnameV1, FieldRequestPhoneFacility, strings.Repeat("5", 256)), lineNo: 8,
			wantErr: "line 8: field ZLRFACILITYPHONE: normalised phone has 256 digits, the column holds 255", errField: "ZLRFACILITYPHONE",
		},
		{
			name: "ValueOver4096Bytes", version: V1, line: withColumn(lastnameV1, FieldResultObservationText, strings.Repeat("A", 4097)), lineNo: 8,
			wantErr: "line 8: field OBXOBSERVATIONRESULTTEXT: value is 4097 bytes long, more than the limit of 4096", errField: "OBXOBSERVATIONRESULTTEXT",
		},
		{
			name: "InvalidUTF8", version: V1, line: withColumn(lastnameV1, FieldPatientCity, "ALBANY\xff"), lineNo: 2,
			wantErr: "line 2: field PIDCITY: not valid UTF-8", errField: "PIDCITY",
		},
		{
			name: "NULByte", version: V1, line: withColumn(lastnameV1, FieldPatientZip, "12\x0034"), lineNo: 2,
			wantErr: "line 2: field PIDZIPCODE: contains a NUL byte", errField: "PIDZIPCODE",
		},
		{
			name: "UnknownVersion", version: 0, line: lastnameV1, lineNo: 2,
			wantErr: "line 2: unknown ECLRS version v0",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			r, err := tt.version.ParseLine([]byte(tt.line), tt.lineNo)
			require.Equal(t, tt.lineNo, r.Line)
			if tt.wantErr != "" || tt.errField != "" {
				var rowErr *RowError
				require.ErrorAs(t, err, &rowErr)
				require.Equal(t, tt.lineNo, rowErr.Line)
				require.Equal(t, tt.errField, rowErr.Field)
				if tt.wantErr != "" {
					require.EqualError(t, err, tt.wantErr)
				}
				require.Equal(t, string(bytes.TrimSpace([]byte(tt.line))), r.Raw, "a failed row still carries its raw line")
				require.Equal(t, [NumFields]string{}, r.Fields)
				return
			}
			require.NoError(t, err)
			require.Equal(t, string(bytes.TrimSpace([]byte(tt.line))), r.Raw)
			require.Equal(t, tt.county, r.CountyID)
			for i, want := range tt.want {
				require.Equal(t, want, r.Fields[i], "field %d %s", i, FieldName(i))
			}
			// Columns the layout lacks are empty.
			for i := tt.version.NumFields() - 1; i < FieldResult; i++ {
				require.Empty(t, r.Fields[i], "field %d %s", i, FieldName(i))
			}
		})
	}
}

func TestParseLineLayouts(t *testing.T) {
	t.Parallel()

	// The same result in the three layouts parses to the same fields.
	r1, err := V1.ParseLine([]byte(lastnameV1), 2)
	require.NoError(t, err)
	r2, err := V2.ParseLine([]byte(lastnameV2), 2)
	require.NoError(t, err)
	r3, err := V3.ParseLine([]byte(lastnameV3), 2)
	require.NoError(t, err)
	require.Equal(t, r3.Fields, r1.Fields)
	require.Equal(t, r3.Fields, r2.Fields)

	// Every v3 position but the padding is filled from the same column of a v3 row.
	cols := make([]string, NumFields)
	for i := range cols {
		cols[i] = FieldName(i) + "-value"
	}
	cols[FieldCountyCode] = "1"
	r, err := V3.ParseLine([]byte(strings.Join(cols, "|")), 2)
	require.NoError(t, err)
	for i := range cols {
		require.Equal(t, cols[i], r.Fields[i])
	}
}

func TestRowErrorError(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name string
		err  RowError
		want string
	}{
		{"Field", RowError{Line: 17, Field: "PIDCOUNTYCODE", Reason: `not a decimal county code: "12a"`}, `line 17: field PIDCOUNTYCODE: not a decimal county code: "12a"`},
		{"WholeRow", RowError{Line: 9, Reason: "row has 44 fields, v3 expects 65"}, "line 9: row has 44 fields, v3 expects 65"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.want, tt.err.Error())
		})
	}
}

// TestParseLineAllocations is not parallel: AllocsPerRun counts every goroutine's
// allocations and refuses to run during parallel tests.
func TestParseLineAllocations(t *testing.T) {
	tests := []struct {
		name    string
		version Version
		line    string
		allocs  float64
	}{
		{"V1", V1, lastnameV1, 1},
		{"V3", V3, goodeV3AOE, 1},
		{"QuotedPipes", V2, pipesV2, 1},
		{"QuotedEscapes", V2, quotesV2, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			line := []byte(tt.line)
			got := testing.AllocsPerRun(100, func() {
				if _, err := tt.version.ParseLine(line, 2); err != nil {
					panic(err)
				}
			})
			require.Equal(t, tt.allocs, got)
		})
	}
}

// roundTripLine serialises fields of a row in layout v so that ParseLine gives them
// back: canonical quoting, plus quotes around a first or last value whose edge
// whitespace the line trimming would otherwise remove.
func roundTripLine(v Version, r *Record) []byte {
	n := v.NumFields()
	cols := make([]string, 0, n)
	cols = append(cols, r.Fields[:n-1]...)
	cols = append(cols, r.Fields[FieldResult])
	var b []byte
	for i, c := range cols {
		if i > 0 {
			b = append(b, '|')
		}
		first, _ := utf8.DecodeRuneInString(c)
		last, _ := utf8.DecodeLastRuneInString(c)
		edge := (i == 0 && unicode.IsSpace(first)) || (i == n-1 && unicode.IsSpace(last))
		if edge && !strings.ContainsAny(c, "\"|\n") {
			b = append(b, '"')
			b = append(b, c...)
			b = append(b, '"')
			continue
		}
		b = appendCanonical(b, []string{c})
	}
	return b
}

func FuzzParseLine(f *testing.F) {
	seeds := []struct {
		v    Version
		line string
	}{
		{V1, lastnameV1}, {V1, smithV1}, {V2, lastnameV2}, {V2, smithV2}, {V2, pipesV2}, {V2, quotesV2},
		{V3, lastnameV3}, {V3, smithV3}, {V3, goodeV3AOE},
		{V1, withColumn(lastnameV1, 0, `"  A"`)}, {V1, withColumn(lastnameV1, 44, `"B "`)},
		{V1, withColumn(lastnameV1, 5, "A\nB")}, {V1, withColumn(lastnameV1, 5, "A\rB")},
		{V3, ""}, {V3, `"`}, {V3, `""|"`}, {V1, "|"},
	}
	for _, s := range seeds {
		f.Add(uint8(s.v), []byte(s.line))
	}
	f.Fuzz(func(t *testing.T, vb uint8, line []byte) {
		v := Version(vb%3 + 1)
		r, err := v.ParseLine(line, 2)
		if err != nil {
			var rowErr *RowError
			require.ErrorAs(t, err, &rowErr)
			return
		}
		require.Equal(t, string(bytes.TrimSpace(line)), r.Raw)
		// The fast path over the raw line and the canonical re-serialisation agree.
		require.Equal(t, checksumFields(&r.Fields), r.Checksum)
		requireWellFormedRow(t, AppendTestResultRow(nil, 1, 1, &r))

		again, err := v.ParseLine(roundTripLine(v, &r), 3)
		require.NoError(t, err)
		require.Equal(t, r.Fields, again.Fields)
		require.Equal(t, r.Checksum, again.Checksum)
		require.Equal(t, r.CountyID, again.CountyID)
	})
}

func BenchmarkParseLine(b *testing.B) {
	benchmarks := []struct {
		name    string
		version Version
		line    string
	}{
		{"V1", V1, lastnameV1},
		{"V2", V2, smithV2},
		{"V3", V3, goodeV3AOE},
		{"V2Quoted", V2, pipesV2},
	}
	for _, bm := range benchmarks {
		b.Run(bm.name, func(b *testing.B) {
			line := []byte(bm.line)
			b.ReportAllocs()
			b.SetBytes(int64(len(line)))
			for b.Loop() {
				if _, err := bm.version.ParseLine(line, 2); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func TestErrorsAsRowError(t *testing.T) {
	t.Parallel()

	_, err := V1.ParseLine(nil, 12)
	var rowErr *RowError
	require.True(t, errors.As(err, &rowErr))
	require.Equal(t, 12, rowErr.Line)
	require.Empty(t, rowErr.Field)
}
