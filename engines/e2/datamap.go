package e2

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/viaduct-nys/viaduct/pkg/countylist"
	"github.com/viaduct-nys/viaduct/pkg/eclrs"
)

// caseZone is the zone whose calendar the CommCare data maps use: a UTC instant becomes the New York date on which
// it happened. pkg/eclrs embeds tzdata, so loading cannot fail on a host without zoneinfo; the panic only guards
// against a broken toolchain.
var caseZone = func() *time.Location {
	loc, err := time.LoadLocation("America/New_York")
	if err != nil {
		panic("e2: loading America/New_York: " + err.Error())
	}
	return loc
}()

// isoDate is the layout of every date the data maps hold.
const isoDate = "2006-01-02"

// fmtDate renders a date column (UTC midnight) as YYYY-MM-DD, and NULL as "" as the original's format(nil) did.
func fmtDate(d time.Time) string {
	if d.IsZero() {
		return ""
	}
	return d.UTC().Format(isoDate)
}

// fmtInstant renders an instant as the New York calendar date it fell on (2020-05-30T03:59Z is "2020-05-29"), and
// NULL as "".
func fmtInstant(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.In(caseZone).Format(isoDate)
}

// orNil turns an ECLRS NULL (held as "") into JSON null, for the maps that keep raw NULLs.
func orNil(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// joinPresent joins the non-NULL values with sep. Like the original's compact join it drops only NULLs, which E1
// stores for every empty field, so a whitespace-only value is kept.
func joinPresent(sep string, values ...string) string {
	kept := make([]string, 0, len(values))
	for _, v := range values {
		if v != "" {
			kept = append(kept, v)
		}
	}
	return strings.Join(kept, sep)
}

// joinPresentOrNil is joinPresent for the lab result map, where a blank result (nothing, or only whitespace) is
// stored as null rather than as a string CommCare would show.
func joinPresentOrNil(sep string, values ...string) any {
	s := joinPresent(sep, values...)
	if strings.TrimSpace(s) == "" {
		return nil
	}
	return s
}

// initialsOf returns the first letter of each name, or nil unless both names are present. The original took the
// first byte, which cut multi-byte letters in half (É became an invalid string); taking the first rune is a
// conscious fix.
func initialsOf(first, last string) any {
	if first == "" || last == "" {
		return nil
	}
	a, _ := utf8.DecodeRuneInString(first)
	b, _ := utf8.DecodeRuneInString(last)
	return string(a) + string(b)
}

// genderFields maps the ECLRS sex code onto CommCare's gender and gender_other: only M and F (any case) are
// known; anything else keeps the code as sent in gender_other so no information is lost.
func genderFields(code string) (gender, other string) {
	switch {
	case code == "":
		return "", ""
	case strings.ToUpper(code) == "M":
		return "male", ""
	case strings.ToUpper(code) == "F":
		return "female", ""
	default:
		return "other", code
	}
}

// contactPhone prefixes a 10-digit normalised phone with the US country code 1, the form contact_phone_number has
// held since January 2021; any other length is not a plain US number and is passed on as it came.
func contactPhone(normalized string) string {
	if len(normalized) == 10 {
		return "1" + normalized
	}
	return normalized
}

// yesNo is CommCare's spelling of a boolean property.
func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// nonEmptyString reports whether data[key] is a string with at least one byte; the original's completeness checks
// matched on that and treated anything else, including non-strings, as missing.
func nonEmptyString(data map[string]any, key string) bool {
	s, ok := data[key].(string)
	return ok && s != ""
}

// addressComplete is "yes" when street, city and ZIP are all filled in. It is recomputed from the final data,
// after reinfection copies and merges, because CommCare uses it to decide whether the case needs an address hunt.
func addressComplete(data map[string]any) string {
	return yesNo(nonEmptyString(data, "address_street") && nonEmptyString(data, "address_city") &&
		nonEmptyString(data, "address_zip"))
}

// hasPhoneNumber is "yes" when the case has a contact phone number, recomputed from the final data like
// addressComplete.
func hasPhoneNumber(data map[string]any) string {
	return yesNo(nonEmptyString(data, "contact_phone_number"))
}

// indexCaseData returns the index case properties (§4.8) that test result tr carries for person personID in county
// c, with case_import_date set to now's New York date. It leaves out what only some paths add: age and age_range
// (creation only, addAge), the reinfection copy (copyForReinfection), reactivated_case and
// reinfected_case_created. Values are strings, NULL rendered as "", except first_name and last_name, which are the
// raw names (nil when NULL), and initials, nil unless both names are present.
func indexCaseData(tr *eclrs.TestResult, personID int64, c countylist.County, now time.Time) map[string]any {
	externalID := "P" + strconv.FormatInt(personID, 10)
	state := zipState(tr.PatientZip)
	fullName := joinPresent(" ", tr.PatientNameFirst, tr.PatientNameLast)
	gender, genderOther := genderFields(tr.PatientGender)
	data := map[string]any{
		"doh_mpi_id":              externalID,
		"external_id":             externalID,
		"patient_type":            "confirmed",
		"new_lab_result_received": "yes",

		"address":        joinPresent(", ", tr.PatientAddress1, tr.PatientCity, state, tr.PatientZip),
		"address_city":   tr.PatientCity,
		"address_state":  state,
		"address_street": tr.PatientAddress1,
		"address_zip":    tr.PatientZip,

		"address_county":         c.Name,
		"county_commcare_domain": c.Domain,
		"county_display":         c.Display,
		"fips":                   c.FIPS,
		"gaz":                    c.Gaz,
		"owner_id":               c.LocationID,

		"contact_phone_number": contactPhone(tr.PatientPhoneHomeNormalized),
		"phone_home":           tr.PatientPhoneHomeNormalized,
		"dob":                  fmtDate(tr.PatientDOB),
		"dob_known":            yesNo(!tr.PatientDOB.IsZero()),
		"first_name":           orNil(tr.PatientNameFirst),
		"last_name":            orNil(tr.PatientNameLast),
		"full_name":            fullName,
		"name":                 fullName,
		"name_and_id":          fullName + " (" + externalID + ")",
		"initials":             initialsOf(tr.PatientNameFirst, tr.PatientNameLast),
		"gender":               gender,
		"gender_other":         genderOther,

		"analysis_date":     fmtInstant(tr.ResultAnalysisDate),
		"case_import_date":  fmtInstant(now),
		"eclrs_create_date": fmtInstant(tr.EclrsCreateDate),
	}
	data["address_complete"] = addressComplete(data)
	data["has_phone_number"] = hasPhoneNumber(data)
	return data
}

// addAge sets age and age_range, which only a newly created index case gets: once a case exists its age stays what
// it was at diagnosis. The age is in whole years from the date of birth to eclrs_create_date's UTC date; an unknown
// date or a birth after the test gives "" for both.
func addAge(data map[string]any, tr *eclrs.TestResult) {
	age, ok := ageInYears(tr.PatientDOB, tr.EclrsCreateDate)
	if !ok {
		data["age"], data["age_range"] = "", ""
		return
	}
	data["age"] = strconv.Itoa(age)
	switch {
	case age <= 17:
		data["age_range"] = "0 - 17"
	case age <= 59:
		data["age_range"] = "18 - 59"
	default:
		data["age_range"] = "60+"
	}
}

// ageInYears counts the birthdays from dob up to the UTC date of at. Someone born on 29 February has a birthday on
// 28 February in other years, as in the original's date library. ok is false when either date is unknown or at is
// before dob.
func ageInYears(dob, at time.Time) (age int, ok bool) {
	if dob.IsZero() || at.IsZero() {
		return 0, false
	}
	by, bm, bd := dob.UTC().Date()
	ay, am, ad := at.UTC().Date()
	if ay < by || ay == by && (am < bm || am == bm && ad < bd) {
		return 0, false
	}
	if bm == time.February && bd == 29 && !isLeapYear(ay) {
		bd = 28
	}
	age = ay - by
	if am < bm || am == bm && ad < bd {
		age--
	}
	return age, true
}

// isLeapYear reports whether year y of the Gregorian calendar has a 29 February.
func isLeapYear(y int) bool {
	return y%4 == 0 && (y%100 != 0 || y%400 == 0)
}

// reinfectionFields are the identity and contact properties a reinfection case takes over from the most recent
// open case, so investigators keep what they learned about the person (§4.8). doh_mpi_id is copied but
// external_id is not: the new case needs its own identity in CommCare.
var reinfectionFields = []string{
	"first_name", "last_name", "full_name", "doh_mpi_id", "initials", "name_and_id", "preferred_name", "dob",
	"contact_phone_number", "phone_home", "phone_work",
	"address", "address_city", "address_county", "address_state", "address_street", "address_zip",
	"commcare_email_address", "gender", "gender_other", "race", "race_specify", "ethnicity",
	"ec_address_city", "ec_address_state", "ec_address_street", "ec_address_zip", "ec_email_address",
	"ec_first_name", "ec_last_name", "ec_phone_home", "ec_phone_work", "ec_relation",
	"provider_name", "provider_phone_number", "provider_email_address", "provider_affiliated_facility",
}

// isBlankValue reports whether a data map value counts as empty when filling gaps: null or a string of only
// whitespace. Other JSON values (numbers, booleans, objects from CommCare) are information and never blank.
func isBlankValue(v any) bool {
	if v == nil {
		return true
	}
	s, ok := v.(string)
	return ok && strings.TrimSpace(s) == ""
}

// copyForReinfection turns data, the properties of a new index case, into those of a reinfection case for the
// case whose properties are archived and whose case_id is archivedCaseID. The archived case's non-blank
// reinfectionFields win over the test result's values, since what CommCare users corrected is better than what a
// lab sent; a blank archived value only fills a key data lacks. The completeness flags are recomputed last, over
// the copied address and phone.
func copyForReinfection(data, archived map[string]any, archivedCaseID string) {
	for _, k := range reinfectionFields {
		v, ok := archived[k]
		if !ok {
			continue
		}
		if _, have := data[k]; !have || !isBlankValue(v) {
			data[k] = v
		}
	}
	data["reinfected_case"] = "yes"
	data["archived_case_id"] = archivedCaseID
	data["address_complete"] = addressComplete(data)
	data["has_phone_number"] = hasPhoneNumber(data)
}

// interpolated renders a data map value the way the original's string interpolation did, for the lab result's
// composed identifiers: null is "", and a JSON number keeps its digits rather than Go's exponent form.
func interpolated(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return v
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	default:
		return fmt.Sprint(v)
	}
}

// labResultData returns the lab result properties (§4.10, HEAD's 45 keys) for test result tr on the index case
// whose properties are caseData, in county c. The patient is identified by the case's external_id, which may be
// missing on cases that came from CommCare. Unlike the index case map, raw NULLs are JSON null; dates are still
// formatted, NULL as "".
func labResultData(tr *eclrs.TestResult, caseData map[string]any, c countylist.County) map[string]any {
	dohMPIID := caseData["external_id"]
	return map[string]any{
		"accession_number": orNil(tr.RequestAccessionNumber),
		"analysis_date":    fmtInstant(tr.ResultAnalysisDate),
		"aoe_date":         fmtInstant(tr.AOEDate),
		"doh_mpi_id":       dohMPIID,

		"eclrs_congregate_care_resident": orNil(tr.EclrsCongregateCareResident),
		"eclrs_create_date":              fmtInstant(tr.EclrsCreateDate),
		"eclrs_hospitalized":             orNil(tr.EclrsHospitalized),
		"eclrs_icu":                      orNil(tr.EclrsICU),
		"eclrs_loinc":                    orNil(tr.ResultLOINCCode),
		"eclrs_pregnant":                 orNil(tr.EclrsPregnant),
		"eclrs_symptom_onset_date":       fmtInstant(tr.EclrsSymptomOnsetDate),
		"eclrs_symptomatic":              orNil(tr.EclrsSymptomatic),

		"employee_job_title": orNil(tr.EmployeeJobTitle),
		"employee_number":    orNil(tr.EmployeeNumber),
		"employer_address":   orNil(tr.EmployerAddress),
		"employer_name":      orNil(tr.EmployerName),
		"employer_phone":     orNil(tr.EmployerPhone),
		"employer_phone_2":   orNil(tr.EmployerPhoneAlt),

		"external_id": interpolated(dohMPIID) + "#" + tr.PatientKey + "#" + tr.RequestAccessionNumber,
		"first_test":  orNil(tr.FirstTest),

		"healthcare_employee":  orNil(tr.HealthcareEmployee),
		"lab_result":           classifyResult(tr.Result),
		"laboratory":           orNil(tr.LabName),
		"name":                 interpolated(dohMPIID) + " lab_result",
		"name_employer_school": joinPresentOrNil(", ", tr.SchoolName, tr.EmployerName),

		"ordering_facility_address":    joinPresentOrNil("\n", tr.RequestFacilityAddress1, tr.RequestFacilityAddress2),
		"ordering_facility_city":       orNil(tr.RequestFacilityCity),
		"ordering_facility_name":       orNil(tr.RequestFacilityName),
		"ordering_facility_phone":      orNil(tr.RequestPhoneFacilityNormalized),
		"ordering_provider_address":    orNil(tr.RequestProviderAddress1),
		"ordering_provider_city":       orNil(tr.RequestProviderCity),
		"ordering_provider_first_name": orNil(tr.RequestProviderNameFirst),
		"ordering_provider_last_name":  orNil(tr.RequestProviderNameLast),
		"ordering_provider_name":       joinPresentOrNil(" ", tr.RequestProviderNameFirst, tr.RequestProviderNameLast),

		"owner_id":           orNil(c.LocationID),
		"parent_external_id": dohMPIID,
		"parent_type":        "patient",

		"school_attended":     orNil(tr.SchoolPresent),
		"school_code":         orNil(tr.SchoolCode),
		"school_district":     orNil(tr.SchoolDistrict),
		"school_name":         orNil(tr.SchoolName),
		"school_visitor_type": orNil(tr.SchoolJobClass),

		"specimen_collection_date": fmtInstant(tr.RequestCollectionDate),
		"specimen_source":          orNil(tr.RequestSpecimenSourceName),
		"test_type":                orNil(tr.ResultLOINCDesc),
	}
}

// resultWords are the outcomes CommCare's lab_result property knows; a regexp alternation finds the left-most one.
var resultWords = regexp.MustCompile(`positive|negative|inconclusive|invalid|unknown`)

// classifyResult maps the free-text ECLRS result onto CommCare's lab_result choices: the left-most known outcome
// word in the lower-cased text ("Positive for SARS" is "positive"), else "other". Texts such as "Not detected"
// are deliberately not interpreted.
func classifyResult(result string) string {
	if w := resultWords.FindString(strings.ToLower(result)); w != "" {
		return w
	}
	return "other"
}
