// Package e3 is Engine 3, the CommCare enqueuer: it hands index cases that changed to Engine 4.
//
// # Reads
//
// index_cases and their events (index_case_events, events): a case needs sending when its newest data-changing
// event (index_case_created/updated, lab_result_created/updated) is newer, by event id, than its newest hand-off
// event (send_to_commcare_enqueued/succeeded/failed), the reference's rule. River's job table, for a case's job.
//
// # Does
//
// Walks the index cases in id order a batch at a time, claiming changed ones with FOR UPDATE SKIP LOCKED so several
// daemons share the work, and for each inserts an Engine 4 job (commcare.CaseLoaderArgs) and records the hand-off
// in the same transaction. Jobs are unique per case while they wait, run or wait to retry, so a case is never queued
// twice at once; a case that changes while its job runs is left changed and queued again on a later pass, once that
// job has finished, so no change is lost. A pass that reaches the last case starts again from the first after the
// idle interval; while cases keep coming, batches follow each other after the busy interval.
//
// # Writes
//
// River jobs (queue commcare.CaseLoaderQueue) and send_to_commcare_enqueued events on the index cases.
package e3
