package eclrs

import (
	"encoding/binary"
	"slices"
	"strings"
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

// TestResultColumns lists the test_results columns a row's line fills: id, file_id, line_number, county_id,
// raw_data, then one column per converted field (two for each phone: as given and normalised). TestResultCopySQL
// writes them followed by the row's identity: checksum, checksum_version, patient_key_id.
var TestResultColumns = func() []string {
	cols := []string{"id", "file_id", "line_number", "county_id", "raw_data"}
	for _, c := range copyColumns {
		cols = append(cols, c.name)
	}
	return cols
}()

// identityColumns follow TestResultColumns in every row AppendTestResultRow writes.
var identityColumns = []string{"checksum", "checksum_version", "patient_key_id"}

// TestResultCopySQL is the COPY statement that reads a stream of CopyHeader, rows made by AppendTestResultRow and
// CopyTrailer.
var TestResultCopySQL = "COPY test_results (" +
	strings.Join(append(slices.Clone(TestResultColumns), identityColumns...), ", ") + ") FROM STDIN (FORMAT binary)"

// ChecksumVersion is the layout Record.Checksum is computed in, stored as test_results.checksum_version.
const ChecksumVersion = 3

// CopyHeader starts a PostgreSQL binary COPY stream: the signature, no flags, no header extension.
var CopyHeader = []byte("PGCOPY\n\xff\r\n\x00" + "\x00\x00\x00\x00" + "\x00\x00\x00\x00")

// CopyTrailer ends a binary COPY stream.
var CopyTrailer = []byte{0xff, 0xff}

// copyFieldCount is the number of fields in every row AppendTestResultRow writes.
var copyFieldCount = len(TestResultColumns) + len(identityColumns)

// pgEpochDays and pgEpochSeconds place PostgreSQL's epoch, 2000-01-01, from Unix's: binary dates count days and
// binary timestamps microseconds from it.
const (
	pgEpochDays    = 10957
	pgEpochSeconds = pgEpochDays * secondsPerDay
)

// AppendTestResultRow appends r as one row of PostgreSQL's binary COPY format, with the columns of
// TestResultCopySQL, and returns the extended buffer. Binary, as pgx's CopyFrom writes the other tables: a date is a
// day count, a timestamp a count of microseconds, and text goes as it is, with nothing to escape. (It was expected
// to spare PostgreSQL parsing eight dates and timestamps per row; make bench-e1 showed no measurable difference:
// a cold import's time is in the indexes.) Conversions follow the original: "" is NULL (whitespace is kept), dates of birth become dates, timestamps become
// UTC for a timestamp-without-time-zone column, and an unparseable date or timestamp is NULL. raw_data is the line,
// or NULL when the other columns rebuild it byte for byte (RawRebuildable). It allocates only to grow buf.
func AppendTestResultRow(buf []byte, id, fileID int64, r *Record) []byte {
	buf = binary.BigEndian.AppendUint16(buf, uint16(copyFieldCount))
	buf = appendInt8(buf, id)
	buf = appendInt8(buf, fileID)
	buf = binary.BigEndian.AppendUint32(buf, 4)
	buf = binary.BigEndian.AppendUint32(buf, uint32(int32(r.Line)))
	buf = appendInt8(buf, r.CountyID)
	if r.RawRebuildable() {
		buf = appendNull(buf)
	} else {
		buf = appendText(buf, r.Raw)
	}
	for i := range copyColumns {
		c := &copyColumns[i]
		s := r.Fields[c.field]
		switch c.kind {
		case kindText:
			buf = appendText(buf, s)
		case kindDate:
			if y, m, d, ok := parseDay(s); ok {
				buf = binary.BigEndian.AppendUint32(buf, 4)
				buf = binary.BigEndian.AppendUint32(buf, uint32(int32(daysFromCivil(y, m, d)-pgEpochDays)))
			} else {
				buf = appendNull(buf)
			}
		case kindTimestamp:
			if sec, usec, ok := parseStamp(s); ok {
				buf = appendInt8(buf, (sec-pgEpochSeconds)*1_000_000+usec)
			} else {
				buf = appendNull(buf)
			}
		case kindPhone:
			// No digits at all is "" and so NULL.
			if n := countDigits(s); n == 0 {
				buf = appendNull(buf)
			} else {
				buf = binary.BigEndian.AppendUint32(buf, uint32(n))
				buf = appendDigits(buf, s)
			}
		}
	}
	buf = binary.BigEndian.AppendUint32(buf, uint32(len(r.Checksum)))
	buf = append(buf, r.Checksum[:]...)
	buf = binary.BigEndian.AppendUint32(buf, 2)
	buf = binary.BigEndian.AppendUint16(buf, ChecksumVersion)
	if key, ok := PatientKeyID(r.Fields[FieldPatientKey]); ok {
		buf = appendInt8(buf, key)
	} else {
		buf = appendNull(buf)
	}
	return buf
}

// appendInt8 appends a bigint field.
func appendInt8(buf []byte, v int64) []byte {
	buf = binary.BigEndian.AppendUint32(buf, 8)
	return binary.BigEndian.AppendUint64(buf, uint64(v))
}

// appendNull appends a NULL field: a length of -1.
func appendNull(buf []byte) []byte {
	return append(buf, 0xff, 0xff, 0xff, 0xff)
}

// appendText appends a text field; "" becomes NULL, as the original's changeset cast turned empty strings into
// NULL.
func appendText(buf []byte, s string) []byte {
	if s == "" {
		return appendNull(buf)
	}
	buf = binary.BigEndian.AppendUint32(buf, uint32(len(s)))
	return append(buf, s...)
}

// PatientKeyID converts a patient key to the bigint stored in abouts.patient_key_id:
// strict decimal digits, leading zeros dropped. An empty, non-numeric or too large
// key gives false (the original then failed to create the about).
func PatientKeyID(s string) (int64, bool) {
	return parseDecimal(s)
}
