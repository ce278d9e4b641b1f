// Package countylist is the county list that routes results to CommCare project spaces: a county's FIPS code, its
// project space (domain) and the location that owns its cases, whether it participates, and which entry is the
// statewide one that takes results for unknown counties.
//
// A List is validated once and never changes; a Cache keeps the list in force fresh from a Source (CommCare's lookup
// table through commcare.Client, or a file) and seeds it into the counties table (Seed), so that SQL can join on it.
// Engines that route by county take a Provider.
package countylist
