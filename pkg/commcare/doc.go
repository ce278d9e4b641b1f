// Package commcare owns the CommCare side of Viaduct: the tables Engines 2–5 share (people, person_keys,
// index_cases, lab_results, events and their join tables, commcare_posts, commcare_sync_marks), the county list
// that routes results to CommCare project spaces (CountyList, kept fresh by CountyCache and seeded into counties),
// the CommCare HTTP API client (Client), and the locks writers of a person's cases share (LockPeople). The job
// contract between Engines 3 and 4 arrives with them.
package commcare
