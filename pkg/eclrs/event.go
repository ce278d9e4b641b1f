package eclrs

// Event types recorded against test results (table test_result_events). They are the original's names and, with
// the rows they point at, the interface between engines: an engine finds its work by the events a row has or lacks.
const (
	// EventProcessed is written by Engine 2 when it has finished with a test result; Engine 2 selects only test
	// results without it or EventProcessingFailed.
	EventProcessed = "processed"
	// EventProcessingFailed is written by Engine 2 when a test result failed its last attempt, with the reason.
	EventProcessingFailed = "processing_failed"
	// EventTestResultIgnored is written by Engine 2 for results it deliberately skips (too old, non-participating
	// county), with the reason.
	EventTestResultIgnored = "test_result_ignored"
	// EventRetryRequested is written by `viaduct retry e2` on a test result that had failed, with who asked (by),
	// why (reason) and the processing_failed event it undoes (failed_event_id). In the same transaction that
	// event's join row stops being finished and the result is put in test_result_attempts, due at once and with
	// no attempt spent, where Engine 2 claims it whatever its claim floor. No engine reads it.
	EventRetryRequested = "retry_requested"
)

// Event types recorded against files (table file_events).
const (
	// EventReimportRequested is written by `viaduct reimport` on a failed file it set importing again, with who asked
	// (by), why (reason) and the failure it had (failure_reason, attempts). No engine reads it: Engine 1 resumes
	// the file as it resumes any stale import.
	EventReimportRequested = "reimport_requested"
)

// NotifyChannel is the PostgreSQL NOTIFY channel Engine 1 signals on when a file's test results are committed.
// Engine 2 may listen on it to start work at once; polling alone must stay correct, so it is only a wake-up.
const NotifyChannel = "viaduct_test_results"
