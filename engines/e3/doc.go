// Package e3 is Engine 3, the CommCare enqueuer: it hands index cases that changed to Engine 4.
//
// # Reads
//
// index_cases and their events (index_case_events, events): a case needs sending when its newest data-changing
// event (index_case_created/updated, lab_result_created/updated) is newer, by event id, than its newest hand-off
// event (send_to_commcare_enqueued/succeeded/failed), the reference's rule (changed). River's job table, for
// a case's job. Its own state: the horizon (e3_cursor) and the deferred cases (e3_deferred). Engine 2's NOTIFY on
// casedb.ChangedChannel, which only starts the next pass at once: passes poll anyway, and read the same whether a
// notification came or not.
//
// # Does
//
// Passes, one at a time across every daemon (an advisory lock; a daemon that finds it taken waits for its next
// interval). A pass costs what changed since the last one, not what the history holds:
//
//  1. It reads the stored horizon H and the xmin X of a fresh snapshot: every transaction with an id below X has
//     ended. index_case_events records the transaction that wrote each row (xid, filled by a column default).
//  2. The candidates are the cases with an event of any type written by a transaction at or above H, plus the
//     deferred cases; the rule, evaluated on those alone, picks the waiting ones.
//  3. A batch at a time, in one transaction each: lock the waiting cases (skipping those another transaction holds),
//     evaluate the rule again on a fresh statement (another daemon, or Engine 4, may just have handed one off),
//     insert one Engine 4 job per changed case (casedb.CaseLoaderArgs) and record its send_to_commcare_enqueued
//     event. A case whose job is already waiting gets the event too: that job sends the newest data. A case whose
//     job is running, or that was locked, is deferred: kept in e3_deferred until a pass hands it off or finds it
//     unchanged.
//  4. Once every batch has committed, the horizon becomes X.
//
// Why nothing is missed: a change event written by a transaction below the new horizon X committed before step 2
// read the candidates, so its case was handed off, found unchanged on a statement that saw the change (impossible)
// or deferred. A change from a transaction at or above X, committed or not yet, is a candidate of the next pass.
// Event ids are taken before commit and commit out of order, so an event-id cursor could pass an event still being
// written; a transaction-id horizon cannot. A long transaction elsewhere only holds X back: the next pass reads a
// little more again, and the rule, evaluated again, keeps that harmless. A pass killed at any point leaves the
// horizon where it was: the next pass reads the same candidates and the rule skips what was handed off. A database
// migrated from before horizons existed has none (NULL): its first pass evaluates the rule on every index case once.
//
// Jobs are unique per case while they wait, run or wait to retry, so a case is never queued twice at once. The
// status page's waiting count reads the same candidates through the same rule (waitingCases), so it is exact and
// costs what a pass costs.
//
// # Writes
//
// River jobs (queue casedb.CaseLoaderQueue), send_to_commcare_enqueued events on the index cases, the horizon and
// the deferred cases.
package e3
