package eclrs

import (
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

// TestResult is a test_results row as Engine 2 reads it: the columns the transformer's rules use. Engine 1 stores
// an empty ECLRS value as NULL, so here an empty string is NULL and a zero time is NULL; whitespace-only values are
// kept as they came.
type TestResult struct {
	ID       int64
	FileID   int64
	CountyID int64 // PIDCOUNTYCODE, the ECLRS county code

	PatientKey                 string
	PatientNameFirst           string
	PatientNameLast            string
	PatientDOB                 time.Time // a date (UTC midnight)
	PatientGender              string
	PatientAddress1            string
	PatientCity                string
	PatientZip                 string
	PatientPhoneHomeNormalized string

	LabName                        string
	RequestFacilityAddress1        string
	RequestFacilityAddress2        string
	RequestFacilityCity            string
	RequestFacilityName            string
	RequestPhoneFacilityNormalized string
	RequestProviderAddress1        string
	RequestProviderCity            string
	RequestProviderNameFirst       string
	RequestProviderNameLast        string
	RequestCollectionDate          time.Time // an instant (UTC)
	EclrsCreateDate                time.Time // an instant (UTC)
	ResultLOINCCode                string
	ResultLOINCDesc                string
	RequestAccessionNumber         string
	ResultAnalysisDate             time.Time // an instant (UTC)
	RequestSpecimenSourceName      string
	Result                         string

	EmployerName     string
	EmployerAddress  string
	EmployerPhone    string
	EmployerPhoneAlt string
	EmployeeNumber   string
	EmployeeJobTitle string
	SchoolName       string
	SchoolDistrict   string
	SchoolCode       string
	SchoolJobClass   string
	SchoolPresent    string

	FirstTest                   string
	AOEDate                     time.Time // an instant (UTC)
	HealthcareEmployee          string
	EclrsSymptomatic            string
	EclrsSymptomOnsetDate       time.Time // an instant (UTC)
	EclrsHospitalized           string
	EclrsICU                    string
	EclrsCongregateCareResident string
	EclrsPregnant               string

	InsertedAt time.Time // when Engine 1 committed the row
}

// TestResultSelectList is the SELECT list ScanTestResult reads, for a query over test_results aliased tr.
const TestResultSelectList = `tr.id, tr.file_id, tr.county_id,
	tr.patient_key, tr.patient_name_first, tr.patient_name_last, tr.patient_dob, tr.patient_gender,
	tr.patient_address_1, tr.patient_city, tr.patient_zip, tr.patient_phone_home_normalized,
	tr.lab_name, tr.request_facility_address_1, tr.request_facility_address_2, tr.request_facility_city,
	tr.request_facility_name, tr.request_phone_facility_normalized, tr.request_provider_address_1,
	tr.request_provider_city, tr.request_provider_name_first, tr.request_provider_name_last,
	tr.request_collection_date, tr.eclrs_create_date, tr.result_loinc_code, tr.result_loinc_desc,
	tr.request_accession_number, tr.result_analysis_date, tr.request_specimen_source_name, tr.result,
	tr.employer_name, tr.employer_address, tr.employer_phone, tr.employer_phone_alt, tr.employee_number,
	tr.employee_job_title, tr.school_name, tr.school_district, tr.school_code, tr.school_job_class,
	tr.school_present,
	tr.first_test, tr.aoe_date, tr.healthcare_employee, tr.eclrs_symptomatic, tr.eclrs_symptom_onset_date,
	tr.eclrs_hospitalized, tr.eclrs_icu, tr.eclrs_congregate_care_resident, tr.eclrs_pregnant,
	tr.inserted_at`

// ScanTestResult reads one row selected with TestResultSelectList.
func ScanTestResult(row pgx.Row) (TestResult, error) {
	var t TestResult
	s := func(p *string) any { return (*nullText)(p) }
	ts := func(p *time.Time) any { return (*nullTime)(p) }
	err := row.Scan(&t.ID, &t.FileID, &t.CountyID,
		s(&t.PatientKey), s(&t.PatientNameFirst), s(&t.PatientNameLast), ts(&t.PatientDOB), s(&t.PatientGender),
		s(&t.PatientAddress1), s(&t.PatientCity), s(&t.PatientZip), s(&t.PatientPhoneHomeNormalized),
		s(&t.LabName), s(&t.RequestFacilityAddress1), s(&t.RequestFacilityAddress2), s(&t.RequestFacilityCity),
		s(&t.RequestFacilityName), s(&t.RequestPhoneFacilityNormalized), s(&t.RequestProviderAddress1),
		s(&t.RequestProviderCity), s(&t.RequestProviderNameFirst), s(&t.RequestProviderNameLast),
		ts(&t.RequestCollectionDate), ts(&t.EclrsCreateDate), s(&t.ResultLOINCCode), s(&t.ResultLOINCDesc),
		s(&t.RequestAccessionNumber), ts(&t.ResultAnalysisDate), s(&t.RequestSpecimenSourceName), s(&t.Result),
		s(&t.EmployerName), s(&t.EmployerAddress), s(&t.EmployerPhone), s(&t.EmployerPhoneAlt), s(&t.EmployeeNumber),
		s(&t.EmployeeJobTitle), s(&t.SchoolName), s(&t.SchoolDistrict), s(&t.SchoolCode), s(&t.SchoolJobClass),
		s(&t.SchoolPresent),
		s(&t.FirstTest), ts(&t.AOEDate), s(&t.HealthcareEmployee), s(&t.EclrsSymptomatic), ts(&t.EclrsSymptomOnsetDate),
		s(&t.EclrsHospitalized), s(&t.EclrsICU), s(&t.EclrsCongregateCareResident), s(&t.EclrsPregnant),
		&t.InsertedAt)
	return t, err
}

// nullText scans a text column, NULL as "".
type nullText string

func (n *nullText) ScanText(v pgtype.Text) error {
	*n = nullText(v.String)
	return nil
}

// nullTime scans a date or timestamp column, NULL as the zero time. Dates and timestamps without time zone hold
// UTC, so they are read as UTC.
type nullTime time.Time

func (n *nullTime) ScanDate(v pgtype.Date) error {
	*n = nullTime{}
	if v.Valid {
		*n = nullTime(v.Time)
	}
	return nil
}

func (n *nullTime) ScanTimestamp(v pgtype.Timestamp) error {
	*n = nullTime{}
	if v.Valid {
		*n = nullTime(v.Time)
	}
	return nil
}
