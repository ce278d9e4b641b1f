// Package e4 is Engine 4, the CommCare case loader: a River worker that sends each index case Engine 3 hands it to
// its county's CommCare project space.
//
// # Reads
//
// River jobs of kind commcare_case_loader (casedb.CaseLoaderArgs) from the commcare queue; the index case they
// name, its lab results and change events; commcare_posts, for what was last posted; the county list; and, from
// CommCare, the case as it stands there and any cases it was transferred to.
//
// # Does
//
// For each job, follows the case's transfer chain across county domains (§5.4–5.6 of the reference): a case
// transferred to another county is updated there, one transferred to a non-participating county goes to the
// statewide domain, and a chain that returns to a domain it visited is a cycle, which cancels the job. A case
// CommCare lacks is created; one it has is updated, after CommCare's values are merged into the local case so
// that a contact tracer's edit is never overwritten. The patient case and every lab result go as XForm case blocks
// in one form (commcare.Form). A form identical to the last one posted successfully to that domain is not posted
// again. Posting can be switched off for a dry run.
//
// Each attempt ends one way: completed; snoozed after a 429, for as long as Retry-After asks, without spending an
// attempt; cancelled when CommCare's answer can never change (a 4xx other than 401, 403, 408, 409, 425 and 429 —
// and 404 on a lookup, which means the case is to be created —, a form CommCare rejects, a transfer cycle) with the
// reason recorded; or failed and retried by RetryPolicy, up to
// casedb.CaseLoaderMaxAttempts attempts over about a week. A case that changes while it is being posted is
// posted again at once, since Engine 3 would take the post for the hand-off of that change; for a transferred case
// that holds for both the source and the destination.
//
// # Writes
//
// Events on the index case posted: send_to_commcare_succeeded (with the form as stash, and whether the post was
// skipped as unchanged or switched off), send_to_commcare_failed and send_to_commcare_discarded (each with the
// job_id of the attempt, which the status page links to); on a transferred
// case, send_to_commcare_rerouted, and updated_from_commcare when CommCare's values changed the local case.
// commcare_posts, the fingerprint of the last successful post per case and domain, in the transaction that
// records the success and completes the job (or, when the case changed meanwhile, snoozes it to run again). For transfers, the destination index case and copies of the
// source's lab results.
package e4
