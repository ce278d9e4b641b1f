package commcaretest

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"strconv"
	"strings"

	"github.com/viaduct-nys/viaduct/pkg/countylist"
)

// newYorkCountyNames are New York's counties in FIPS order: the i-th has FIPS code 2i+1.
var newYorkCountyNames = [...]string{
	"Albany", "Allegany", "Bronx", "Broome", "Cattaraugus", "Cayuga", "Chautauqua", "Chemung", "Chenango", "Clinton",
	"Columbia", "Cortland", "Delaware", "Dutchess", "Erie", "Essex", "Franklin", "Fulton", "Genesee", "Greene",
	"Hamilton", "Herkimer", "Jefferson", "Kings", "Lewis", "Livingston", "Madison", "Monroe", "Montgomery", "Nassau",
	"New York", "Niagara", "Oneida", "Onondaga", "Ontario", "Orange", "Orleans", "Oswego", "Otsego", "Putnam",
	"Queens", "Rensselaer", "Richmond", "Rockland", "St. Lawrence", "Saratoga", "Schenectady", "Schoharie",
	"Schuyler", "Seneca", "Steuben", "Suffolk", "Sullivan", "Tioga", "Tompkins", "Ulster", "Warren", "Washington",
	"Wayne", "Westchester", "Wyoming", "Yates",
}

// newYorkCityBoroughs are the counties whose results the city's own system handles, so they are not participating,
// as in production.
var newYorkCityBoroughs = map[string]bool{"5": true, "47": true, "61": true, "81": true, "85": true}

// NewYorkCounties returns a synthetic county list shaped like production's: New York's 62 counties (FIPS 1 to 123,
// odd) with domains ny-<name>-cdcms, the five New York City boroughs non-participating with neither domain nor
// location, 125 "Out of State/Country" and 127 "Unknown" non-participating, and the statewide project, fips 900,
// ny-statewide-cdcms. Location ids and gazetteer codes are made up but stable.
func NewYorkCounties() []countylist.County {
	counties := make([]countylist.County, 0, len(newYorkCountyNames)+3)
	for i, display := range newYorkCountyNames {
		fips := strconv.Itoa(2*i + 1)
		name := strings.ToLower(strings.ReplaceAll(display, ".", ""))
		c := countylist.County{
			FIPS:    fips,
			Name:    name,
			Display: display,
			Gaz:     strconv.Itoa(i + 1),
		}
		if !newYorkCityBoroughs[fips] {
			c.Domain = "ny-" + strings.ReplaceAll(name, " ", "-") + "-cdcms"
			c.LocationID = syntheticID("location", fips)
			c.Participating = true
		}
		counties = append(counties, c)
	}
	return append(counties,
		countylist.County{FIPS: "125", Name: "out of state_country", Display: "Out of State/Country", Gaz: "80"},
		countylist.County{FIPS: "127", Name: "unknown", Display: "Unknown", Gaz: "99"},
		countylist.County{
			FIPS:          "900",
			Name:          "ny statewide",
			Display:       "NY Statewide",
			Domain:        "ny-statewide-cdcms",
			LocationID:    syntheticID("location", "900"),
			Participating: true,
			Statewide:     true,
		},
	)
}

// The test counties' domains and locations (TestCounties), for tests that name them.
const (
	MidsomerDomain    = "uk-midsomer-cdcms"
	MidsomerLocation  = "a1a1a1a1a1"
	YggdrasilDomain   = "sw-yggdrasil-cdcms"
	YggdrasilLocation = "b2b2b2b22b2"
	WilkesDomain      = "aq-wilkes-cdcms"
	StatewideDomain   = "uk-statewide-cdcms"
	StatewideLocation = "statewide-owner-id"
)

// TestCounties returns the four-county list the original's tests used: Midsomer (1111) and Yggdrasil (9999)
// participate, Wilkes Land (5678) does not, and UK Statewide (1234) takes results for unknown counties.
func TestCounties() []countylist.County {
	return []countylist.County{
		{
			FIPS: "1111", Name: "midsomer", Display: "Midsomer", Domain: MidsomerDomain, Gaz: "ms-gaz",
			LocationID: MidsomerLocation, Participating: true,
		},
		{
			FIPS: "9999", Name: "yggdrasil", Display: "Yggdrasil", Domain: YggdrasilDomain, Gaz: "yg-gaz",
			LocationID: YggdrasilLocation, Participating: true,
		},
		{FIPS: "5678", Name: "wilkes", Display: "Wilkes Land", Domain: WilkesDomain, Gaz: "wl-gaz"},
		{
			FIPS: "1234", Name: "statewide", Display: "UK Statewide", Domain: StatewideDomain,
			LocationID: StatewideLocation, Participating: true, Statewide: true,
		},
	}
}

// CountyListJSON returns counties as CommCare's fixture API sends them
// (GET /a/<root domain>/api/v0.5/fixture/?fixture_type=county_list): every field a string, the fields Viaduct ignores
// filled in, and stable made-up ids.
func CountyListJSON(counties []countylist.County) []byte {
	type fields struct {
		AnalysisDate       string `json:"analysis_date"`
		CountyDisplay      string `json:"county_display"`
		CountyName         string `json:"county_name"`
		CountySort         string `json:"county_sort"`
		Domain             string `json:"domain"`
		FIPS               string `json:"fips"`
		Gaz                string `json:"gaz"`
		IsStateDomain      string `json:"is_state_domain"`
		LocationID         string `json:"location_id"`
		Participating      string `json:"participating"`
		TravelerLocationID string `json:"traveler_location_id"`
	}
	type object struct {
		Fields      fields `json:"fields"`
		FixtureType string `json:"fixture_type"`
		ID          string `json:"id"`
		ResourceURI string `json:"resource_uri"`
	}
	type meta struct {
		Limit      int     `json:"limit"`
		Next       *string `json:"next"`
		Offset     int     `json:"offset"`
		Previous   *string `json:"previous"`
		TotalCount int     `json:"total_count"`
	}
	response := struct {
		Meta    meta     `json:"meta"`
		Objects []object `json:"objects"`
	}{
		Meta:    meta{Limit: 1000, TotalCount: len(counties)},
		Objects: make([]object, 0, len(counties)),
	}
	for _, c := range counties {
		f := fields{
			CountyDisplay: c.Display,
			CountyName:    c.Name,
			CountySort:    c.Name,
			Domain:        c.Domain,
			FIPS:          c.FIPS,
			Gaz:           c.Gaz,
			LocationID:    c.LocationID,
			Participating: "no",
		}
		if c.Participating {
			f.Participating = "yes"
			if !c.Statewide {
				f.TravelerLocationID = syntheticID("traveler", c.FIPS)
			}
		}
		if c.Statewide {
			f.IsStateDomain = "yes"
		}
		response.Objects = append(response.Objects, object{
			Fields:      f,
			FixtureType: "county_list",
			ID:          syntheticID("fixture", c.FIPS),
		})
	}
	data, err := json.MarshalIndent(response, "", "  ")
	if err != nil {
		// Only strings and ints: marshalling cannot fail.
		panic(err)
	}
	return append(data, '\n')
}

// WriteCountyListFile writes counties to path in the shape CountyListJSON gives, for a countylist.FileSource.
func WriteCountyListFile(path string, counties []countylist.County) error {
	return os.WriteFile(path, CountyListJSON(counties), 0o644)
}

// syntheticID is a 32-digit hex id, like CommCare's, derived from kind and fips so it is the same in every run.
func syntheticID(kind, fips string) string {
	sum := sha256.Sum256([]byte("viaduct-nys commcaretest " + kind + " " + fips))
	return hex.EncodeToString(sum[:16])
}
