// Package retention removes the personal data Viaduct holds once it is older than a retention window, and keeps what
// the engines still need: `viaduct purge --older-than` runs it once, and a daemon given `--retention` once a day.
//
// # Reads
//
// Every table that holds personal data, in bounded batches: test_results with their finished flag
// (test_result_events), file_row_errors, events, change_logs, commcare_case_inbox, and the closed index cases with
// their events, lab results, people and person_keys. Its own state: retention_cursors.
//
// # Does
//
// A row is old when it was written (inserted_at; for cases and people updated_at, and every event on the case)
// before the cutoff, now less the window. Old rows are stripped of their personal data or deleted:
//
//   - test_results: a result Engine 2 has finished keeps its identity and where it came from (id, file_id,
//     line_number, county_id, checksum, checksum_version, its times) and loses the line and every parsed column, the
//     patient key's number (patient_key_id) included. The checksum must stay: Engine 1 de-duplicates every row of
//     every export against test_results.checksum (an export re-sends 14 days, and a result sent again later must
//     not come back as new), and keeping the row keeps that query and its index-only plan as they are. A result
//     Engine 2 has not finished is not touched.
//   - file_row_errors: the line (raw_data) and the reason, which can quote a value, are emptied; the file, line
//     number and field stay, and the file's counts (files.statistics) are untouched.
//   - events: the stash (Engine 4's form) goes, and the data keeps only ids, domains and outcomes (EventKeys);
//     reasons, CommCare's answers and anything else go. The type, id and time stay, so every rule that reads events
//     (Engine 2's finished flag, Engine 3's selection, Engine 4's newest change, the status page's counts) and the
//     join rows to test results and index cases read what they read before.
//   - change_logs: deleted. They record what a merge added and refused (with the case as it was); no engine reads
//     them.
//   - commcare_case_inbox: deleted. A forwarded case still there after the window is one whose import gave up;
//     Engine 5's polling reads every change anyway.
//   - people, with their index cases and lab results: a person's data goes only when every one of their index cases
//     is closed, has not been written or had an event within the window, and was posted to CommCare after its last
//     change (casedb.ChangeEventTypes against send_to_commcare_succeeded or _rerouted). Then the person's names,
//     date of birth, patient keys and data go, with their person_keys rows; each case keeps its ids, county, case id
//     and closed flag and, of its data, the transfer source Engine 4 follows; each lab result keeps its ids and case
//     id and loses its data and accession number. No engine can then match the person (a new result for them makes
//     a new person, as a new case would have been made anyway: their cases are closed) and none posts the cases
//     again: Engine 3 hands off only changes, and Engine 2 is the only writer of changes to a known person's cases.
//     A case Engine 5 merges a tracer's edit into afterwards takes CommCare's values again; the next purge notices
//     (index_cases.purged_at) and strips it again once it is quiet. Open cases, and the cases of anyone with an open
//     one, are kept whole: Engines 2, 4 and 5 merge into them.
//
// Nothing is deleted from a table with a tally (test_results, file_row_errors, events, people, index_cases,
// lab_results), so the status page's totals stay exact; files and their statistics, counties, River's jobs (case
// ids only), commcare_posts (fingerprints) and the engines' own state are not touched.
//
// Each table is walked in batches (Config.BatchSize rows, Config.Pause apart), each one transaction that commits the
// rows with how far the walk got (retention_cursors), under a short lock_timeout: a purge never makes an engine wait
// longer than that, and a batch that meets a lock is tried again a little later. A walk in id order stops before the
// first row that must stay as it is, so it never passes over one, and the next purge starts where it stopped: a
// purge costs what became old since the last, and a killed one loses nothing and repeats nothing. Cases are taken
// with the locks every writer of a person takes (casedb), tried rather than waited for: a person another
// transaction holds is left for the next purge. One purge runs at a time (advisory.Purge). A dry run counts, per
// table, the rows and bytes a purge would strip or delete, and writes nothing.
//
// # Writes
//
// The tables above, retention_cursors, and one purges row per purge that ran to its end (counts only).
package retention
