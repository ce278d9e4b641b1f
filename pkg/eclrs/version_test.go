package eclrs

import (
	"bytes"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// The header lines exactly as the original's fixtures have them.
const (
	headerV1 = "PIDLASTNAME|PIDMIDDLENAME|PIDFIRSTNAME|PIDDATEOFBIRTH|PIDSEXCODE|PIDADDRESSLINE1|PIDADDRESSLINE2|PIDCITY|PIDZIPCODE|PIDCOUNTYCODE|PIDHOMEPHONE|MSHLABPFI|MSHSENDINGFACILITYCLIA|MSHSENDINGFACILITYNAME|PIDPATIENTKEY|ZLRFACILITYADDRESSLINE1|ZLRFACILITYADDRESSLINE2|ZLRFACILITYCITY|ZLRFACILITYCODE|ZLRFACILITYNAME|ZLRFACILITYPHONE|ZLRPROVIDERADDRESSLINE1|ZLRPROVIDERCITY|OBRPROVIDERID|OBRPROVIDERFIRSTNAME|OBRPROVIDERLASTNAME|OBRCOLLECTIONDATE|OBRCREATEDATE|OBXLOCALTESTCODE|OBXLOCALTESTDESC|OBXLOINCCODE|OBXLOINCDESC|OBXOBSERVATIONDATE|OBXOBSERVATIONRESULTTEXT|OBXOBSERVATIONRESULTTEXTSHORT|OBXRESULTSTATUSCODE|OBXPRODUCERLABNAME|OBXSNOMEDCODE|OBXSNOMEDDESC|OBRACCESSIONNUM|OBXANALYSISDATE|OBRSPECIMENSOURCENAME|MSHMESSAGEMASTERKEY|PIDUPDATEDATE|RESULTPOSITIVE"
	headerV2 = "PIDLASTNAME|PIDMIDDLENAME|PIDFIRSTNAME|PIDDATEOFBIRTH|PIDSEXCODE|PIDADDRESSLINE1|PIDADDRESSLINE2|PIDCITY|PIDZIPCODE|PIDCOUNTYCODE|PIDHOMEPHONE|MSHLABPFI|MSHSENDINGFACILITYCLIA|MSHSENDINGFACILITYNAME|PIDPATIENTKEY|ZLRFACILITYADDRESSLINE1|ZLRFACILITYADDRESSLINE2|ZLRFACILITYCITY|ZLRFACILITYCODE|ZLRFACILITYNAME|ZLRFACILITYPHONE|ZLRPROVIDERADDRESSLINE1|ZLRPROVIDERCITY|OBRPROVIDERID|OBRPROVIDERFIRSTNAME|OBRPROVIDERLASTNAME|OBRCOLLECTIONDATE|OBRCREATEDATE|OBXLOCALTESTCODE|OBXLOCALTESTDESC|OBXLOINCCODE|OBXLOINCDESC|OBXOBSERVATIONDATE|OBXOBSERVATIONRESULTTEXT|OBXOBSERVATIONRESULTTEXTSHORT|OBXRESULTSTATUSCODE|OBXPRODUCERLABNAME|OBXSNOMEDCODE|OBXSNOMEDDESC|OBRACCESSIONNUM|OBXANALYSISDATE|OBRSPECIMENSOURCENAME|MSHMESSAGEMASTERKEY|PIDUPDATEDATE|PIDEMPLOYERNAME|PIDEMPLOYERADDRESS|PIDEMPLOYERPHONE|PIDEMPLOYERPHONEALT|PIDEMPLOYEENUMBER|PIDEMPLOYEEJOBTITLE|PIDSCHOOLNAME|PIDSCHOOLDISTRICT|PIDSCHOOLCODE|PIDSCHOOLJOBCLASS|PIDSCHOOLPRESENT|RESULTPOSITIVE"
	headerV3 = "PIDLASTNAME|PIDMIDDLENAME|PIDFIRSTNAME|PIDDATEOFBIRTH|PIDSEXCODE|PIDADDRESSLINE1|PIDADDRESSLINE2|PIDCITY|PIDZIPCODE|PIDCOUNTYCODE|PIDHOMEPHONE|MSHLABPFI|MSHSENDINGFACILITYCLIA|MSHSENDINGFACILITYNAME|PIDPATIENTKEY|ZLRFACILITYADDRESSLINE1|ZLRFACILITYADDRESSLINE2|ZLRFACILITYCITY|ZLRFACILITYCODE|ZLRFACILITYNAME|ZLRFACILITYPHONE|ZLRPROVIDERADDRESSLINE1|ZLRPROVIDERCITY|OBRPROVIDERID|OBRPROVIDERFIRSTNAME|OBRPROVIDERLASTNAME|OBRCOLLECTIONDATE|OBRCREATEDATE|OBXLOCALTESTCODE|OBXLOCALTESTDESC|OBXLOINCCODE|OBXLOINCDESC|OBXOBSERVATIONDATE|OBXOBSERVATIONRESULTTEXT|OBXOBSERVATIONRESULTTEXTSHORT|OBXRESULTSTATUSCODE|OBXPRODUCERLABNAME|OBXSNOMEDCODE|OBXSNOMEDDESC|OBRACCESSIONNUM|OBXANALYSISDATE|OBRSPECIMENSOURCENAME|MSHMESSAGEMASTERKEY|PIDUPDATEDATE|PIDEMPLOYERNAME|PIDEMPLOYERADDRESS|PIDEMPLOYERPHONE|PIDEMPLOYERPHONEALT|PIDEMPLOYEENUMBER|PIDEMPLOYEEJOBTITLE|PIDSCHOOLNAME|PIDSCHOOLDISTRICT|PIDSCHOOLCODE|PIDSCHOOLJOBCLASS|PIDSCHOOLPRESENT|PIDFIRSTTESTYN|PIDAOEDATE|PIDHEALTHEMPLOYEDYN|PIDCOVIDSYMPTOMATICYN|PIDCOVIDDATEOFONSET|PIDHOSPITALIZEDYN|PIDICUYN|PIDCONGREGATECAREYN|PIDPREGNANCYIND|RESULTPOSITIVE"
)

func TestDetectVersion(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name     string
		header   string
		want     Version
		wantErr  string
		notInErr []string
	}{
		{name: "V1", header: headerV1, want: V1},
		{name: "V2", header: headerV2, want: V2},
		{name: "V3", header: headerV3, want: V3},
		{name: "CRLF", header: headerV3 + "\r\n", want: V3},
		{name: "SurroundingWhitespace", header: " \t" + headerV2 + " \n", want: V2},
		{name: "BOM", header: "\uFEFF" + headerV1 + "\r\n", want: V1},
		{name: "BOMThenSpace", header: "\uFEFF " + headerV1, want: V1},
		{name: "LowerCase", header: strings.ToLower(headerV1), wantErr: "unexpected header: ECLRS v1's header in other letter case"},
		{name: "Short", header: "PIDLASTNAME|PIDFIRSTNAME\r\n",
			wantErr: "unexpected header: 2 fields, where ECLRS v1, v2 and v3 headers have 45, 56 and 65 (a file without its header starts with a data row)"},
		{name: "TrailingPipe", header: headerV1 + "|"},
		{name: "SpaceAfterPipe", header: strings.Replace(headerV1, "|", "| ", 1),
			wantErr: "unexpected header: 45 fields, as in ECLRS v1, but field 2 is not PIDMIDDLENAME"},
		{name: "Empty", header: "", wantErr: "unexpected header: the first line is empty"},
		// A file that lost its header: the row is a patient's and must not be quoted.
		{name: "DataRow", header: lastnameV1},
		{name: "PatientRow", header: "DOE|JANE|" + strings.Repeat("X|", 42) + "5185550100",
			notInErr: []string{"DOE", "JANE", "5185550100"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			got, err := DetectVersion([]byte(tt.header))
			if tt.want != 0 {
				require.NoError(t, err)
				require.Equal(t, tt.want, got)
				return
			}
			var headerErr *HeaderError
			require.ErrorAs(t, err, &headerErr)
			require.Zero(t, got)
			if tt.wantErr != "" {
				require.EqualError(t, err, tt.wantErr)
			}
			for _, not := range tt.notInErr {
				require.NotContains(t, err.Error(), not)
			}
		})
	}
}

func TestVersionLayouts(t *testing.T) {
	t.Parallel()

	tests := []struct {
		version Version
		header  string
		fields  int
	}{
		{V1, headerV1, 45},
		{V2, headerV2, 56},
		{V3, headerV3, 65},
		{0, "", 0},
		{4, "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.version.String(), func(t *testing.T) {
			t.Parallel()

			require.Equal(t, tt.fields, tt.version.NumFields())
			require.Equal(t, tt.header, tt.version.Header())
			if tt.fields == 0 {
				require.Nil(t, tt.version.Columns())
				return
			}
			require.Equal(t, strings.Split(tt.header, "|"), tt.version.Columns())
		})
	}
}

func TestFieldName(t *testing.T) {
	t.Parallel()

	tests := []struct {
		index int
		want  string
	}{
		{FieldPatientNameLast, "PIDLASTNAME"},
		{FieldCountyCode, "PIDCOUNTYCODE"},
		{FieldPatientKey, "PIDPATIENTKEY"},
		{FieldCreateDate, "OBRCREATEDATE"},
		{FieldAccessionNumber, "OBRACCESSIONNUM"},
		{FieldEmployerName, "PIDEMPLOYERNAME"},
		{FieldFirstTest, "PIDFIRSTTESTYN"},
		{FieldPregnant, "PIDPREGNANCYIND"},
		{FieldResult, "RESULTPOSITIVE"},
		{-1, ""},
		{NumFields, ""},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.want, FieldName(tt.index))
		})
	}
	// All 65 names, in order, are the v3 header.
	names := make([]string, NumFields)
	for i := range names {
		names[i] = FieldName(i)
	}
	require.Equal(t, headerV3, strings.Join(names, "|"))
}

func FuzzDetectVersion(f *testing.F) {
	for _, s := range []string{headerV1, headerV2, "\uFEFF" + headerV3 + "\r\n", "", "PIDLASTNAME", lastnameV1} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, header []byte) {
		v, err := DetectVersion(header)
		if err != nil {
			var headerErr *HeaderError
			require.ErrorAs(t, err, &headerErr)
			require.Zero(t, v)
			// The message quotes nothing of the line: it is short whatever the line.
			require.LessOrEqual(t, len(err.Error()), 200)
			return
		}
		h := bytes.TrimSpace(header)
		h = bytes.TrimSpace(bytes.TrimPrefix(h, utf8BOM))
		require.Equal(t, v.Header(), string(h))
	})
}
