package countylist

import "fmt"

// County is one entry of CommCare's county list (the lookup table county_list), as the engines use it.
type County struct {
	// FIPS is the county code as the list spells it ("7", "900"); ECLRS county codes are compared with it as
	// decimal strings, so 7 matches "7" but not "007".
	FIPS string
	// Name is county_name ("broome"), Display is county_display ("Broome").
	Name    string
	Display string
	// Domain is the county's CommCare project space (ny-broome-cdcms); empty for non-participating entries.
	Domain string
	// Gaz is the county's gazetteer code.
	Gaz string
	// LocationID is the CommCare location that owns the county's cases: patient cases' owner_id.
	LocationID string
	// Participating is false when the list says participating "no": test results for the county are ignored.
	Participating bool
	// Statewide is true for the entry with is_state_domain "yes", where results for unknown counties go.
	Statewide bool
}

// extraCounties are appended to every county list, as the original's extra_county_list was: ECLRS uses these codes
// for results the Department of Health assigns to a county by hand or by geocoding, and no CommCare project takes
// them, so results carrying them are ignored rather than sent to the statewide project.
var extraCounties = [...]County{
	{
		FIPS:    "905",
		Name:    "DOH special 905 -- county assign, manual (address missing)",
		Display: "DOH special 905 -- county assign, manual (address missing)",
	},
	{
		FIPS:    "907",
		Name:    "DOH special 907 -- geocode (county assign, automatic)",
		Display: "DOH special 907 -- geocode (county assign, automatic)",
	},
}

// Resolution says how [List.Resolve] chose the county for an ECLRS county code.
type Resolution int

const (
	// Matched means the code is in the list and the county participates: its results go to the county's project.
	Matched Resolution = iota + 1
	// NonParticipating means the code is in the list but the county does not take part: its results are ignored.
	NonParticipating
	// StatewideFallback means the code is not in the list, so the statewide county takes the result.
	StatewideFallback
)

// String returns the resolution's name in snake case, as it appears in logs and event data.
func (r Resolution) String() string {
	switch r {
	case Matched:
		return "matched"
	case NonParticipating:
		return "non_participating"
	case StatewideFallback:
		return "statewide_fallback"
	default:
		return fmt.Sprintf("Resolution(%d)", int(r))
	}
}

// FIPSCode returns the county's FIPS code as the number index_cases.county_id holds. Counties in a List
// always have one.
func (c County) FIPSCode() (int64, error) {
	code, problem := parseFIPS(c.FIPS)
	if problem != "" {
		return 0, fmt.Errorf("county %s: %s", c.Domain, problem)
	}
	return code, nil
}
