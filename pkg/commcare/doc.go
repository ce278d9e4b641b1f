// Package commcare is Viaduct's client of the CommCare HQ API: the HTTP client (Client) with its retries, rate-limit
// handling and errors (HTTPError), the wire shapes of cases and case lists (Case, CasePage, CaseQuery), the merge rule
// for CommCare's properties (MergeEmptyFields), and the XForm case blocks Engine 4 posts (Form, CaseBlock).
//
// It knows nothing of Viaduct's tables: what the engines store about cases is in pkg/casedb, the county list that
// routes results to CommCare project spaces in pkg/countylist.
package commcare
