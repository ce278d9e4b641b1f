// Package commcaretest is an in-memory fake of CommCare HQ's HTTP API, for tests and the daemon's demo subcommand.
//
// A [Server] checks the ApiKey Authorization header the way CommCare does, answers the calls Viaduct makes from
// state it keeps in memory, and records every request for assertions. It serves:
//
//   - the county list (the county_list lookup table) from the root domain;
//   - the case API v0.5: one case with its child cases, and the case list with CommCare's filters and paging;
//   - the form receiver, which applies an XForm's case blocks (create, update, index, close) all or nothing,
//     acknowledges a repeated instanceID without applying it twice, and rejects what CommCare rejects (a case block
//     without case_id, an update to a case that does not exist, an index to nowhere, a case of another domain).
//
// Only the root domain and the domains the county list names exist; the others answer 404, as CommCare does for a
// project space it does not have. Tests seed and inspect the store directly ([Server.PutCase], [Server.Case],
// [Server.Cases], [Server.Forms]) and can edit a case the way a CommCare user would ([Server.UpdateCase]).
//
// Failure is on demand: [Server.Fail] fails, stalls or rate-limits chosen paths, once or until cleared, and a fault
// rate ([Options].FaultRate, [Server.SetFaultRate]) fails case API and receiver requests at random with a 429 (with
// Retry-After), a 500 or a hung response, from a seeded generator so a run can be repeated. A failed submission is
// never applied. [Options].Latency slows every answer.
//
// It can also forward, as CommCare's data forwarding (a case repeater) does: [Server.ForwardTo] posts each change a
// form or an edit makes to a patient case, as JSON with HTTP Basic auth, to a URL (Viaduct's webhook), in order per
// case, asynchronously, retrying failures a few times; [Server.Forward] sends a case again as it stands.
//
// [NewYorkCounties] is a synthetic county list shaped like production's (New York's 62 counties, the statewide
// project and the non-participating entries), and [TestCounties] is the small list the original's tests used.
//
// The package imports no testing code, so the demo subcommand can link it into the daemon.
package commcaretest
