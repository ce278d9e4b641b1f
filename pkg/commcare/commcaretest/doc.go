// Package commcaretest is an in-memory fake of CommCare HQ's HTTP API, for tests and the daemon's demo subcommand.
//
// A [Server] checks the ApiKey Authorization header the way CommCare does, answers the calls Viaduct makes from
// state it keeps in memory, records every request for assertions, and fails, stalls or rate-limits chosen calls on
// demand ([Server.Fail]). It grows with the engines: today it serves the county list (the county_list lookup
// table); the case, case list and form receiver endpoints arrive with the engines that call them.
//
// [NewYorkCounties] is a synthetic county list shaped like production's (New York's 62 counties, the statewide
// project and the non-participating entries), and [TestCounties] is the small list the original's tests used.
//
// The package imports no testing code, so the demo subcommand can link it into the daemon.
package commcaretest
