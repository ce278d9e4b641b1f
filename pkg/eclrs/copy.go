package eclrs

import (
	"strconv"
	"time"
)

// columnKind says how a field is converted for its test_results column.
type columnKind uint8

const (
	kindText      columnKind = iota // stored as is
	kindDate                        // ParseDOB, a date
	kindTimestamp                   // ParseTimestamp, a timestamp holding UTC
	kindPhone                       // NormalizePhone, the _normalized column
)

type copyColumn struct {
	name  string
	field int
	kind  columnKind
}

// copyColumns maps every converted test_results column to the field it comes from,
// in COPY order (the order of the spec's header table). PIDCOUNTYCODE is not here:
// it is written, already converted, as county_id among the leading columns.
var copyColumns = [...]copyColumn{
	{"patient_name_last", FieldPatientNameLast, kindText},
	{"patient_name_middle", FieldPatientNameMiddle, kindText},
	{"patient_name_first", FieldPatientNameFirst, kindText},
	{"patient_dob", FieldPatientDOB, kindDate},
	{"patient_gender", FieldPatientGender, kindText},
	{"patient_address_1", FieldPatientAddress1, kindText},
	{"patient_address_2", FieldPatientAddress2, kindText},
	{"patient_city", FieldPatientCity, kindText},
	{"patient_zip", FieldPatientZip, kindText},
	{"patient_phone_home", FieldPatientPhoneHome, kindText},
	{"patient_phone_home_normalized", FieldPatientPhoneHome, kindPhone},
	{"lab_id", FieldLabID, kindText},
	{"sending_facility_clia", FieldSendingFacilityCLIA, kindText},
	{"lab_name", FieldLabName, kindText},
	{"patient_key", FieldPatientKey, kindText},
	{"request_facility_address_1", FieldRequestFacilityAddress1, kindText},
	{"request_facility_address_2", FieldRequestFacilityAddress2, kindText},
	{"request_facility_city", FieldRequestFacilityCity, kindText},
	{"request_facility_code", FieldRequestFacilityCode, kindText},
	{"request_facility_name", FieldRequestFacilityName, kindText},
	{"request_phone_facility", FieldRequestPhoneFacility, kindText},
	{"request_phone_facility_normalized", FieldRequestPhoneFacility, kindPhone},
	{"request_provider_address_1", FieldRequestProviderAddress1, kindText},
	{"request_provider_city", FieldRequestProviderCity, kindText},
	{"request_provider_id", FieldRequestProviderID, kindText},
	{"request_provider_name_first", FieldRequestProviderNameFirst, kindText},
	{"request_provider_name_last", FieldRequestProviderNameLast, kindText},
	{"request_collection_date", FieldCollectionDate, kindTimestamp},
	{"eclrs_create_date", FieldCreateDate, kindTimestamp},
	{"result_local_test_code", FieldResultLocalTestCode, kindText},
	{"result_local_test_desc", FieldResultLocalTestDesc, kindText},
	{"result_loinc_code", FieldResultLOINCCode, kindText},
	{"result_loinc_desc", FieldResultLOINCDesc, kindText},
	{"result_observation_date", FieldResultObservationDate, kindTimestamp},
	{"result_observation_text", FieldResultObservationText, kindText},
	{"result_observation_text_short", FieldResultObservationTextShort, kindText},
	{"result_status_code", FieldResultStatusCode, kindText},
	{"result_producer_lab_name", FieldResultProducerLabName, kindText},
	{"result_snomed_code", FieldResultSNOMEDCode, kindText},
	{"result_snomed_desc", FieldResultSNOMEDDesc, kindText},
	{"request_accession_number", FieldAccessionNumber, kindText},
	{"result_analysis_date", FieldResultAnalysisDate, kindTimestamp},
	{"request_specimen_source_name", FieldRequestSpecimenSourceName, kindText},
	{"message_master_key", FieldMessageMasterKey, kindText},
	{"patient_updated_at", FieldPatientUpdatedAt, kindTimestamp},
	{"employer_name", FieldEmployerName, kindText},
	{"employer_address", FieldEmployerAddress, kindText},
	{"employer_phone", FieldEmployerPhone, kindText},
	{"employer_phone_alt", FieldEmployerPhoneAlt, kindText},
	{"employee_number", FieldEmployeeNumber, kindText},
	{"employee_job_title", FieldEmployeeJobTitle, kindText},
	{"school_name", FieldSchoolName, kindText},
	{"school_district", FieldSchoolDistrict, kindText},
	{"school_code", FieldSchoolCode, kindText},
	{"school_job_class", FieldSchoolJobClass, kindText},
	{"school_present", FieldSchoolPresent, kindText},
	{"first_test", FieldFirstTest, kindText},
	{"aoe_date", FieldAOEDate, kindTimestamp},
	{"healthcare_employee", FieldHealthcareEmployee, kindText},
	{"eclrs_symptomatic", FieldSymptomatic, kindText},
	{"eclrs_symptom_onset_date", FieldSymptomOnsetDate, kindTimestamp},
	{"eclrs_hospitalized", FieldHospitalized, kindText},
	{"eclrs_icu", FieldICU, kindText},
	{"eclrs_congregate_care_resident", FieldCongregateCareResident, kindText},
	{"eclrs_pregnant", FieldPregnant, kindText},
	{"result", FieldResult, kindText},
}

// TestResultColumns lists, in COPY order, the test_results columns
// AppendTestResultCopy writes: id, file_id, line_number, county_id, raw_data, then
// one column per converted field (two for each phone: as given and normalised).
var TestResultColumns = func() []string {
	cols := []string{"id", "file_id", "line_number", "county_id", "raw_data"}
	for _, c := range copyColumns {
		cols = append(cols, c.name)
	}
	return cols
}()

// AppendTestResultCopy appends r as one line of PostgreSQL COPY text format (tab
// separated, "\N" for NULL, trailing "\n"), with the columns of TestResultColumns,
// and returns the extended buffer. Conversions follow the original: "" is NULL
// (whitespace is kept), dates of birth become dates, timestamps become UTC
// "YYYY-MM-DD HH:MM:SS.ffffff" for a timestamp-without-time-zone column, and an
// unparseable date or timestamp is NULL. raw_data is the line, or NULL when the other
// columns rebuild it byte for byte (RawRebuildable). It allocates only to grow buf.
func AppendTestResultCopy(buf []byte, id, fileID int64, r *Record) []byte {
	buf = strconv.AppendInt(buf, id, 10)
	buf = append(buf, '\t')
	buf = strconv.AppendInt(buf, fileID, 10)
	buf = append(buf, '\t')
	buf = strconv.AppendInt(buf, int64(r.Line), 10)
	buf = append(buf, '\t')
	buf = strconv.AppendInt(buf, r.CountyID, 10)
	buf = append(buf, '\t')
	if r.RawRebuildable() {
		buf = append(buf, copyNull...)
	} else {
		buf = appendCopyText(buf, r.Raw)
	}
	for i := range copyColumns {
		c := &copyColumns[i]
		buf = append(buf, '\t')
		s := r.Fields[c.field]
		switch c.kind {
		case kindText:
			buf = appendCopyText(buf, s)
		case kindDate:
			if y, m, d, ok := parseDay(s); ok {
				buf = appendDate(buf, y, m, d)
			} else {
				buf = append(buf, copyNull...)
			}
		case kindTimestamp:
			if sec, usec, ok := parseStamp(s); ok {
				buf = appendTimestamp(buf, sec, usec)
			} else {
				buf = append(buf, copyNull...)
			}
		case kindPhone:
			// Digits need no escaping; no digits at all is "" and so NULL.
			if countDigits(s) == 0 {
				buf = append(buf, copyNull...)
			} else {
				buf = appendDigits(buf, s)
			}
		}
	}
	return append(buf, '\n')
}

// copyNull is NULL in COPY text format.
const copyNull = `\N`

// copyEscapes marks the bytes COPY text format must escape, with the letter that
// follows the backslash.
var copyEscapes = [256]byte{'\\': '\\', '\t': 't', '\n': 'n', '\r': 'r'}

// appendCopyText appends s escaped for COPY text format; "" becomes NULL, as the
// original's changeset cast turned empty strings into NULL.
func appendCopyText(buf []byte, s string) []byte {
	if s == "" {
		return append(buf, copyNull...)
	}
	// Escapes are rare: skip eight bytes at a time while none can be one.
	i := 0
	for ; i+8 <= len(s); i += 8 {
		if mayNeedEscape(uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24 |
			uint64(s[i+4])<<32 | uint64(s[i+5])<<40 | uint64(s[i+6])<<48 | uint64(s[i+7])<<56) {
			break
		}
	}
	if i+8 > len(s) {
		// Only the tail is left to check.
		for j := i; j < len(s); j++ {
			if copyEscapes[s[j]] != 0 {
				return appendEscaped(buf, s, j)
			}
		}
		return append(buf, s...)
	}
	return appendEscaped(buf, s, i)
}

// appendEscaped appends s, escaping bytes from index i on (s[:i] needs none).
func appendEscaped(buf []byte, s string, i int) []byte {
	start := 0
	for ; i < len(s); i++ {
		if e := copyEscapes[s[i]]; e != 0 {
			buf = append(buf, s[start:i]...)
			buf = append(buf, '\\', e)
			start = i + 1
		}
	}
	return append(buf, s[start:]...)
}

// mayNeedEscape reports whether the eight bytes in x might include a backslash or a
// control character below 0x0E (tab, newline and carriage return among them). It
// may report true needlessly, never false wrongly.
func mayNeedEscape(x uint64) bool {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	below := (x - 0x0E*ones) & ^x & highs // some byte < 0x0E
	b := x ^ '\\'*ones
	backslash := (b - ones) & ^b & highs // some byte == '\\'
	return below|backslash != 0
}

// appendDate appends YYYY-MM-DD.
func appendDate(buf []byte, y int, m time.Month, d int) []byte {
	if y < 10000 {
		buf = append2(buf, y/100)
		buf = append2(buf, y%100)
	} else {
		buf = strconv.AppendInt(buf, int64(y), 10)
	}
	buf = append(buf, '-')
	buf = append2(buf, int(m))
	buf = append(buf, '-')
	return append2(buf, d)
}

// appendTimestamp appends the instant sec.usec in UTC as YYYY-MM-DD HH:MM:SS.ffffff.
func appendTimestamp(buf []byte, sec, usec int64) []byte {
	day := floorDiv(sec, secondsPerDay)
	y, m, d := civilFromDays(day)
	s := int(sec - day*secondsPerDay)
	buf = appendDate(buf, y, m, d)
	buf = append(buf, ' ')
	buf = append2(buf, s/3600)
	buf = append(buf, ':')
	buf = append2(buf, s/60%60)
	buf = append(buf, ':')
	buf = append2(buf, s%60)
	buf = append(buf, '.')
	u := int(usec)
	buf = append2(buf, u/10000)
	buf = append2(buf, u/100%100)
	return append2(buf, u%100)
}

// twoDigits holds "00" to "99" back to back.
const twoDigits = "00010203040506070809101112131415161718192021222324252627282930313233343536373839" +
	"40414243444546474849505152535455565758596061626364656667686970717273747576777879" +
	"8081828384858687888990919293949596979899"

// append2 appends 0 <= n < 100 as two digits.
func append2(buf []byte, n int) []byte {
	return append(buf, twoDigits[2*n], twoDigits[2*n+1])
}

// PatientKeyID converts a patient key to the bigint stored in abouts.patient_key_id:
// strict decimal digits, leading zeros dropped. An empty, non-numeric or too large
// key gives false (the original then failed to create the about).
func PatientKeyID(s string) (int64, bool) {
	return parseDecimal(s)
}
