// Package commcare owns the CommCare side of Viaduct: the tables Engines 2–5 share (people, index_cases,
// lab_results, events and their join tables, commcare_posts, commcare_sync_marks), the CommCare HTTP API client and
// the job contract between Engines 3 and 4. The tables exist from the first migration; their query functions and
// the client arrive with the engines that use them.
package commcare
