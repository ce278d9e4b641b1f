package eclrs

import "strings"

// stampFields are the v3 positions of the fields stored as timestamps.
var stampFields = [...]int{
	FieldCollectionDate, FieldCreateDate, FieldResultObservationDate, FieldResultAnalysisDate,
	FieldPatientUpdatedAt, FieldAOEDate, FieldSymptomOnsetDate,
}

// dobTime is the time part a date of birth must have for its line to be rebuilt: the
// date column keeps only the day.
const dobTime = ":00:00:00.000000"

// RawRebuildable reports whether r's line is exactly what the SQL function
// rebuilt_raw_line (migrations/00007_storage.sql) makes of the test_results row
// AppendTestResultRow writes for r. test_results.raw_data is then left NULL, since it
// would only repeat the other columns; raw_line(tr) reads the line of any row.
//
// rebuilt_raw_line joins the file layout's columns with "|", each as stored: text as
// it is (NULL as ""), county_id in decimal, the date of birth as
// DDMMMYYYY:00:00:00.000000 and timestamps as New York wall-clock time
// DDMMMYYYY:HH:MM:SS.ffffff, months in capitals. A line is rebuilt by it when it has no
// quotes (then the line is its fields joined by "|" again) and every converted value
// is spelled that way. Anything else keeps its line: a quoted value, a county code with
// a leading zero, a month in lower case, a date of birth with another time part, a
// timestamp with more fraction digits, one inside the spring-forward gap, one that
// does not parse, and timestamps outside 1970–2099, where the zone rules PostgreSQL and
// Go were each given might not agree on New York's history.
func (r *Record) RawRebuildable() bool {
	if strings.IndexByte(r.Raw, '"') >= 0 {
		return false
	}
	if c := r.Fields[FieldCountyCode]; c == "" || (c[0] == '0' && len(c) > 1) {
		return false // county_id::text has no leading zeros
	}
	if s := r.Fields[FieldPatientDOB]; s != "" {
		if len(s) != timestampLen || s[9:] != dobTime || !capitals(s[2:5]) {
			return false
		}
		if _, _, _, ok := parseDay(s); !ok {
			return false
		}
	}
	for _, f := range stampFields {
		if s := r.Fields[f]; s != "" && !stampRebuildable(s) {
			return false
		}
	}
	return true
}

// stampRebuildable reports whether the timestamp s is spelled as rebuilt_raw_line
// writes the instant it is stored as.
func stampRebuildable(s string) bool {
	if len(s) != timestampLen || !capitals(s[2:5]) {
		return false
	}
	if y, ok := digits(s[5:9]); !ok || y < 1970 || y > 2099 {
		return false
	}
	wall, _, ok := parseWall(s)
	return ok && newYorkWallExists(wall)
}

// capitals reports whether s is all ASCII capital letters.
func capitals(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 'A' || s[i] > 'Z' {
			return false
		}
	}
	return true
}
