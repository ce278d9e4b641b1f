package eclrs

import (
	"encoding/json"
	"maps"
	"slices"
	"strconv"
)

// Statistics are the per-file counts stored in files.statistics, in the original's shape:
// {"new": {"total": 3, "1111": 1, "9999": 2}, "matched": {"total": 0}, "duplicate": {…}, "error": {…}}.
type Statistics struct {
	// New counts rows never seen before, which became test results.
	New Tally `json:"new"`
	// Matched counts rows already imported from an earlier file.
	Matched Tally `json:"matched"`
	// Duplicate counts rows seen earlier in the same file.
	Duplicate Tally `json:"duplicate"`
	// Error counts malformed rows; they are listed in file_row_errors.
	Error Tally `json:"error"`
}

// Tally is a total and its split by county (FIPS code). Counties appear only with non-zero counts.
type Tally struct {
	// Total is the sum over all counties.
	Total int64
	// ByCounty maps a FIPS code to its count; rows whose county is unknown count only in Total.
	ByCounty map[int64]int64
}

// Add counts n rows of county; county 0 means unknown and counts only in the total.
func (t *Tally) Add(county, n int64) {
	t.Total += n
	if county == 0 || n == 0 {
		return
	}
	if t.ByCounty == nil {
		t.ByCounty = make(map[int64]int64)
	}
	t.ByCounty[county] += n
}

// MarshalJSON writes the flat {"total": n, "<fips>": n} object, counties in numeric order.
func (t Tally) MarshalJSON() ([]byte, error) {
	b := []byte(`{"total":`)
	b = strconv.AppendInt(b, t.Total, 10)
	for _, county := range slices.Sorted(maps.Keys(t.ByCounty)) {
		b = append(b, `,"`...)
		b = strconv.AppendInt(b, county, 10)
		b = append(b, `":`...)
		b = strconv.AppendInt(b, t.ByCounty[county], 10)
	}
	return append(b, '}'), nil
}

// UnmarshalJSON reads what MarshalJSON writes.
func (t *Tally) UnmarshalJSON(b []byte) error {
	var raw map[string]int64
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	*t = Tally{}
	for k, v := range raw {
		if k == "total" {
			t.Total = v
			continue
		}
		county, err := strconv.ParseInt(k, 10, 64)
		if err != nil {
			continue // the original wrote "nil" for rows without a county; such keys only ever sum into total
		}
		if t.ByCounty == nil {
			t.ByCounty = make(map[int64]int64)
		}
		t.ByCounty[county] = v
	}
	return nil
}
