package e2

// zipPrefixRange assigns the 3-digit ZIP prefixes from..to (inclusive) to a state.
type zipPrefixRange struct {
	from, to int
	state    string
}

// zipPrefixStates is the USPS assignment of 3-digit ZIP prefixes (sectional centers) to states, DC, territories
// and the military "states" AA, AE and AP, in ascending order. Prefixes never assigned (000–004, 213, 269, …) are
// absent. The original used a library with a per-ZIP database; by prefix the answer is the same for every ZIP
// in use, except a few that cross a state line (such as 96799 in American Samoa, given as HI, and the 969 Pacific
// islands, given as GU), and a ZIP that does not exist inside an assigned prefix still gets that prefix's state.
// That is enough for address_state, a hint for investigators.
var zipPrefixStates = []zipPrefixRange{
	{5, 5, "NY"}, // Holtsville: IRS
	{6, 7, "PR"},
	{8, 8, "VI"},
	{9, 9, "PR"},
	{10, 27, "MA"},
	{28, 29, "RI"},
	{30, 38, "NH"},
	{39, 49, "ME"},
	{50, 54, "VT"},
	{55, 55, "MA"}, // Andover: IRS
	{56, 59, "VT"},
	{60, 69, "CT"},
	{70, 89, "NJ"},
	{90, 98, "AE"},
	{100, 149, "NY"},
	{150, 196, "PA"},
	{197, 199, "DE"},
	{200, 200, "DC"},
	{201, 201, "VA"}, // Dulles
	{202, 205, "DC"},
	{206, 212, "MD"},
	{214, 219, "MD"},
	{220, 246, "VA"},
	{247, 268, "WV"},
	{270, 289, "NC"},
	{290, 299, "SC"},
	{300, 319, "GA"},
	{320, 339, "FL"},
	{340, 340, "AA"},
	{341, 342, "FL"},
	{344, 344, "FL"},
	{346, 347, "FL"},
	{349, 349, "FL"},
	{350, 369, "AL"},
	{370, 385, "TN"},
	{386, 397, "MS"},
	{398, 399, "GA"},
	{400, 427, "KY"},
	{430, 459, "OH"},
	{460, 479, "IN"},
	{480, 499, "MI"},
	{500, 528, "IA"},
	{530, 549, "WI"},
	{550, 567, "MN"},
	{569, 569, "DC"},
	{570, 577, "SD"},
	{580, 588, "ND"},
	{590, 599, "MT"},
	{600, 629, "IL"},
	{630, 658, "MO"},
	{660, 679, "KS"},
	{680, 693, "NE"},
	{700, 714, "LA"},
	{716, 729, "AR"},
	{730, 732, "OK"},
	{733, 733, "TX"}, // Austin: IRS
	{734, 749, "OK"},
	{750, 799, "TX"},
	{800, 816, "CO"},
	{820, 831, "WY"},
	{832, 838, "ID"},
	{840, 847, "UT"},
	{850, 865, "AZ"},
	{870, 884, "NM"},
	{885, 885, "TX"}, // El Paso
	{889, 898, "NV"},
	{900, 961, "CA"},
	{962, 966, "AP"},
	{967, 968, "HI"},
	{969, 969, "GU"},
	{970, 979, "OR"},
	{980, 994, "WA"},
	{995, 999, "AK"},
}

// zipState returns the 2-letter state of a ZIP code, looked up by its 3-digit prefix (see zipPrefixStates), or ""
// when the ZIP is not five digits, optionally followed by "-" and four digits (only the first five count), or its
// prefix was never assigned.
func zipState(zip string) string {
	switch {
	case len(zip) == 5 && allDigits(zip):
	case len(zip) == 10 && allDigits(zip[:5]) && zip[5] == '-' && allDigits(zip[6:]):
	default:
		return ""
	}
	prefix := int(zip[0]-'0')*100 + int(zip[1]-'0')*10 + int(zip[2]-'0')
	for _, r := range zipPrefixStates {
		if prefix < r.from {
			return ""
		}
		if prefix <= r.to {
			return r.state
		}
	}
	return ""
}

// allDigits reports whether s consists of ASCII digits only.
func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
