// Package e2 is Engine 2, the ECLRS → CommCare transformer: it turns test results into people, index cases and lab
// results.
//
// # Reads
//
// test_results that are ready: no finished event (processed or processing_failed) and not waiting for a retry —
// the data-at-rest contract with Engine 1. A test_result_attempts row is a retry: after failed attempts, or one an
// operator asked for (`viaduct retry e2`: no attempt spent, the processing_failed event no longer finished). The
// CommCare county list (through Deps.Counties). people, index_cases and lab_results that the results can match.
//
// # Does
//
// Claims a batch of ready results with FOR UPDATE SKIP LOCKED, so that any number of workers and daemons share the
// backlog without taking the same result twice. For each result, in id order: the ignore rules (created too long
// ago, a non-participating county); the county (an unknown code goes to the statewide county); the person (by
// patient key, then by date of birth, upper-cased last name and first token of the first name, else a new person);
// the index cases in that county (the open ones holding this accession number, else all open ones; none open means a
// new case; a positive result more than 90 days after a closed case opens a new case for the reinfection); and a
// lab result per accession number on each. Existing values are never overwritten: a merge only fills what is blank,
// and records what it added and what it refused in change_logs.
//
// Unique indexes on person_keys and on people's name and date of birth make a duplicate person impossible. An
// advisory lock per identity (the name, else the patient key) keeps batches from colliding over a new person, and
// row locks on the people found (casedb.LockPeople), held until commit, keep two daemons from merging into stale
// cases. A batch that collides anyway is tried once more. Rules run in memory over
// the batch and the outcome is written with COPY and set-based updates: one transaction per batch, so every result
// in it is either wholly written or not at all. When a batch's transaction fails, its results are tried one at a
// time; a result that fails alone is retried with exponential backoff and after the last attempt marked
// processing_failed with the reason. A result that cannot succeed (no creation date, no accession number) is marked
// failed at once.
//
// Idle workers poll every PollInterval and wake at once on Engine 1's NOTIFY; full batches are followed immediately
// by the next.
//
// Claims cost what is new, not what the history holds: they start above the claim floor (e2_claim_floor), below
// which every result is finished or waits for a retry in test_result_attempts, where the claim finds it when it is
// due. Engine 1 inserts results only under its import lock, taking their ids inside it, so ids commit in increasing
// order and no result can appear below the floor later. After each batch a worker moves the floor up to just below
// the first unfinished result that waits for no retry; each daemon stores it at most once a second (and when it
// stops) as the greatest of its own and the stored one, and a daemon that starts claims from it. A kill between a
// batch and the store only leaves the floor lower: the next claim skips a few more finished results. The status
// page counts the waiting results from the same floor (waitingResults).
//
// # Writes
//
// people, index_cases, lab_results, change_logs, events with test_result_events and index_case_events (the
// original's event types, listed in pkg/eclrs and pkg/commcare), test_result_attempts for failed attempts, and the
// claim floor. A batch that records index case changes sends one NOTIFY on casedb.ChangedChannel, delivered at its
// commit, which wakes Engine 3.
package e2
