package eclrs

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
)

// Version is the layout of an ECLRS export, recognised from its header line.
// The zero value is not a valid layout.
type Version int

// The three ECLRS layouts. Each one appends columns to the previous one just before
// RESULTPOSITIVE, which is always the last column: v2 adds 11 employer/school
// columns, v3 adds 9 "ask on order entry" columns.
const (
	V1 Version = 1
	V2 Version = 2
	V3 Version = 3
)

// NumFields is the number of columns in the newest layout (v3). Every [Record]
// holds its values at v3 positions, whatever the layout of the file it came from.
const NumFields = 65

// Field indices at v3 positions, named after the test_results column each one feeds
// (the ECLRS header name is in the comment). RESULTPOSITIVE is at [FieldResult] for
// every layout, because rows from older layouts are padded before it.
const (
	FieldPatientNameLast            = 0  // PIDLASTNAME
	FieldPatientNameMiddle          = 1  // PIDMIDDLENAME
	FieldPatientNameFirst           = 2  // PIDFIRSTNAME
	FieldPatientDOB                 = 3  // PIDDATEOFBIRTH
	FieldPatientGender              = 4  // PIDSEXCODE
	FieldPatientAddress1            = 5  // PIDADDRESSLINE1
	FieldPatientAddress2            = 6  // PIDADDRESSLINE2
	FieldPatientCity                = 7  // PIDCITY
	FieldPatientZip                 = 8  // PIDZIPCODE
	FieldCountyCode                 = 9  // PIDCOUNTYCODE
	FieldPatientPhoneHome           = 10 // PIDHOMEPHONE
	FieldLabID                      = 11 // MSHLABPFI
	FieldSendingFacilityCLIA        = 12 // MSHSENDINGFACILITYCLIA
	FieldLabName                    = 13 // MSHSENDINGFACILITYNAME
	FieldPatientKey                 = 14 // PIDPATIENTKEY
	FieldRequestFacilityAddress1    = 15 // ZLRFACILITYADDRESSLINE1
	FieldRequestFacilityAddress2    = 16 // ZLRFACILITYADDRESSLINE2
	FieldRequestFacilityCity        = 17 // ZLRFACILITYCITY
	FieldRequestFacilityCode        = 18 // ZLRFACILITYCODE
	FieldRequestFacilityName        = 19 // ZLRFACILITYNAME
	FieldRequestPhoneFacility       = 20 // ZLRFACILITYPHONE
	FieldRequestProviderAddress1    = 21 // ZLRPROVIDERADDRESSLINE1
	FieldRequestProviderCity        = 22 // ZLRPROVIDERCITY
	FieldRequestProviderID          = 23 // OBRPROVIDERID
	FieldRequestProviderNameFirst   = 24 // OBRPROVIDERFIRSTNAME
	FieldRequestProviderNameLast    = 25 // OBRPROVIDERLASTNAME
	FieldCollectionDate             = 26 // OBRCOLLECTIONDATE
	FieldCreateDate                 = 27 // OBRCREATEDATE
	FieldResultLocalTestCode        = 28 // OBXLOCALTESTCODE
	FieldResultLocalTestDesc        = 29 // OBXLOCALTESTDESC
	FieldResultLOINCCode            = 30 // OBXLOINCCODE
	FieldResultLOINCDesc            = 31 // OBXLOINCDESC
	FieldResultObservationDate      = 32 // OBXOBSERVATIONDATE
	FieldResultObservationText      = 33 // OBXOBSERVATIONRESULTTEXT
	FieldResultObservationTextShort = 34 // OBXOBSERVATIONRESULTTEXTSHORT
	FieldResultStatusCode           = 35 // OBXRESULTSTATUSCODE
	FieldResultProducerLabName      = 36 // OBXPRODUCERLABNAME
	FieldResultSNOMEDCode           = 37 // OBXSNOMEDCODE
	FieldResultSNOMEDDesc           = 38 // OBXSNOMEDDESC
	FieldAccessionNumber            = 39 // OBRACCESSIONNUM
	FieldResultAnalysisDate         = 40 // OBXANALYSISDATE
	FieldRequestSpecimenSourceName  = 41 // OBRSPECIMENSOURCENAME
	FieldMessageMasterKey           = 42 // MSHMESSAGEMASTERKEY
	FieldPatientUpdatedAt           = 43 // PIDUPDATEDATE
	FieldEmployerName               = 44 // PIDEMPLOYERNAME (v2+)
	FieldEmployerAddress            = 45 // PIDEMPLOYERADDRESS (v2+)
	FieldEmployerPhone              = 46 // PIDEMPLOYERPHONE (v2+)
	FieldEmployerPhoneAlt           = 47 // PIDEMPLOYERPHONEALT (v2+)
	FieldEmployeeNumber             = 48 // PIDEMPLOYEENUMBER (v2+)
	FieldEmployeeJobTitle           = 49 // PIDEMPLOYEEJOBTITLE (v2+)
	FieldSchoolName                 = 50 // PIDSCHOOLNAME (v2+)
	FieldSchoolDistrict             = 51 // PIDSCHOOLDISTRICT (v2+)
	FieldSchoolCode                 = 52 // PIDSCHOOLCODE (v2+)
	FieldSchoolJobClass             = 53 // PIDSCHOOLJOBCLASS (v2+)
	FieldSchoolPresent              = 54 // PIDSCHOOLPRESENT (v2+)
	FieldFirstTest                  = 55 // PIDFIRSTTESTYN (v3)
	FieldAOEDate                    = 56 // PIDAOEDATE (v3)
	FieldHealthcareEmployee         = 57 // PIDHEALTHEMPLOYEDYN (v3)
	FieldSymptomatic                = 58 // PIDCOVIDSYMPTOMATICYN (v3)
	FieldSymptomOnsetDate           = 59 // PIDCOVIDDATEOFONSET (v3)
	FieldHospitalized               = 60 // PIDHOSPITALIZEDYN (v3)
	FieldICU                        = 61 // PIDICUYN (v3)
	FieldCongregateCareResident     = 62 // PIDCONGREGATECAREYN (v3)
	FieldPregnant                   = 63 // PIDPREGNANCYIND (v3)
	FieldResult                     = 64 // RESULTPOSITIVE (last in every layout)
)

// v3Columns is the v3 header, in order. The v1 and v2 headers are prefixes of it
// followed by RESULTPOSITIVE.
var v3Columns = [NumFields]string{
	"PIDLASTNAME", "PIDMIDDLENAME", "PIDFIRSTNAME", "PIDDATEOFBIRTH", "PIDSEXCODE",
	"PIDADDRESSLINE1", "PIDADDRESSLINE2", "PIDCITY", "PIDZIPCODE", "PIDCOUNTYCODE",
	"PIDHOMEPHONE", "MSHLABPFI", "MSHSENDINGFACILITYCLIA", "MSHSENDINGFACILITYNAME", "PIDPATIENTKEY",
	"ZLRFACILITYADDRESSLINE1", "ZLRFACILITYADDRESSLINE2", "ZLRFACILITYCITY", "ZLRFACILITYCODE", "ZLRFACILITYNAME",
	"ZLRFACILITYPHONE", "ZLRPROVIDERADDRESSLINE1", "ZLRPROVIDERCITY", "OBRPROVIDERID", "OBRPROVIDERFIRSTNAME",
	"OBRPROVIDERLASTNAME", "OBRCOLLECTIONDATE", "OBRCREATEDATE", "OBXLOCALTESTCODE", "OBXLOCALTESTDESC",
	"OBXLOINCCODE", "OBXLOINCDESC", "OBXOBSERVATIONDATE", "OBXOBSERVATIONRESULTTEXT", "OBXOBSERVATIONRESULTTEXTSHORT",
	"OBXRESULTSTATUSCODE", "OBXPRODUCERLABNAME", "OBXSNOMEDCODE", "OBXSNOMEDDESC", "OBRACCESSIONNUM",
	"OBXANALYSISDATE", "OBRSPECIMENSOURCENAME", "MSHMESSAGEMASTERKEY", "PIDUPDATEDATE",
	"PIDEMPLOYERNAME", "PIDEMPLOYERADDRESS", "PIDEMPLOYERPHONE", "PIDEMPLOYERPHONEALT", "PIDEMPLOYEENUMBER",
	"PIDEMPLOYEEJOBTITLE", "PIDSCHOOLNAME", "PIDSCHOOLDISTRICT", "PIDSCHOOLCODE", "PIDSCHOOLJOBCLASS",
	"PIDSCHOOLPRESENT",
	"PIDFIRSTTESTYN", "PIDAOEDATE", "PIDHEALTHEMPLOYEDYN", "PIDCOVIDSYMPTOMATICYN", "PIDCOVIDDATEOFONSET",
	"PIDHOSPITALIZEDYN", "PIDICUYN", "PIDCONGREGATECAREYN", "PIDPREGNANCYIND",
	"RESULTPOSITIVE",
}

// headers holds each layout's exact header line, computed once so DetectVersion is
// a plain comparison.
var headers = [...]string{
	V1: joinLayout(V1),
	V2: joinLayout(V2),
	V3: joinLayout(V3),
}

func joinLayout(v Version) string {
	n := v.NumFields()
	cols := make([]string, 0, n)
	cols = append(cols, v3Columns[:n-1]...)
	cols = append(cols, v3Columns[FieldResult])
	return strings.Join(cols, "|")
}

// NumFields returns the number of columns in v's layout: 45, 56 or 65. It returns 0
// for an unknown version.
func (v Version) NumFields() int {
	switch v {
	case V1:
		return 45
	case V2:
		return 56
	case V3:
		return 65
	}
	return 0
}

// Header returns v's exact header line, without a line ending, or "" for an unknown
// version.
func (v Version) Header() string {
	if !v.valid() {
		return ""
	}
	return headers[v]
}

// Columns returns v's header names in file order. The slice is a fresh copy.
func (v Version) Columns() []string {
	n := v.NumFields()
	if n == 0 {
		return nil
	}
	cols := make([]string, 0, n)
	cols = append(cols, v3Columns[:n-1]...)
	return append(cols, v3Columns[FieldResult])
}

// String returns "v1", "v2" or "v3", the spelling used in error messages.
func (v Version) String() string {
	return "v" + strconv.Itoa(int(v))
}

func (v Version) valid() bool { return v >= V1 && v <= V3 }

// columnName returns the header name of the i-th column of a row in v's layout, or ""
// when the row has more columns than the layout.
func (v Version) columnName(i int) string {
	n := v.NumFields()
	switch {
	case i < 0 || i >= n:
		return ""
	case i == n-1:
		return v3Columns[FieldResult]
	}
	return v3Columns[i]
}

// FieldName returns the v3 header name of the column at v3 position i, for error
// messages. It returns "" when i is out of range.
func FieldName(i int) string {
	if i < 0 || i >= NumFields {
		return ""
	}
	return v3Columns[i]
}

// utf8BOM is the byte order mark some Windows tools put at the start of a text file.
var utf8BOM = []byte{0xEF, 0xBB, 0xBF}

// HeaderError reports that a file's first line is not one of the known ECLRS headers.
// Nothing in such a file is imported.
type HeaderError struct {
	// Got is the header line as compared: trimmed, without a BOM. It may be a patient's row (a file that lost its
	// header), so it stays out of the message.
	Got string
}

// Error says how the line differs from the known headers without quoting any of it: the message is kept in the
// files table and shown in logs and on the status page, and a file that lost its header starts with a patient's
// row.
func (e *HeaderError) Error() string {
	if e.Got == "" {
		return "unexpected header: the first line is empty"
	}
	for v := V1; v <= V3; v++ {
		if strings.EqualFold(e.Got, headers[v]) {
			return fmt.Sprintf("unexpected header: ECLRS %s's header in other letter case", v)
		}
	}
	got := strings.Split(e.Got, "|")
	for v := V1; v <= V3; v++ {
		if want := strings.Split(headers[v], "|"); len(got) == len(want) {
			for i := range want {
				if got[i] != want[i] {
					return fmt.Sprintf("unexpected header: %d fields, as in ECLRS %s, but field %d is not %s", len(got), v, i+1, want[i])
				}
			}
		}
	}
	return fmt.Sprintf("unexpected header: %d fields, where ECLRS %s, %s and %s headers have %d, %d and %d "+
		"(a file without its header starts with a data row)", len(got), V1, V2, V3,
		strings.Count(headers[V1], "|")+1, strings.Count(headers[V2], "|")+1, strings.Count(headers[V3], "|")+1)
}

// DetectVersion recognises a file's layout from its header line. The line is trimmed
// of surrounding whitespace (including "\r") and must then equal one of the three
// headers byte for byte, as in the original. Unlike the original, a leading UTF-8
// byte order mark is ignored, because a file saved by a Windows tool is otherwise
// perfectly good. Any other header gives a *HeaderError.
func DetectVersion(header []byte) (Version, error) {
	h := bytes.TrimSpace(header)
	if bytes.HasPrefix(h, utf8BOM) {
		h = bytes.TrimSpace(h[len(utf8BOM):])
	}
	for v := V1; v <= V3; v++ {
		if string(h) == headers[v] {
			return v, nil
		}
	}
	return 0, &HeaderError{Got: string(h)}
}
