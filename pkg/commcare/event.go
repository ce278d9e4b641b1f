package commcare

// Event types recorded against index cases (table index_case_events), with the engine that writes each and the
// engine that reads it. Engines compare event ids, never timestamps.
const (
	// EventIndexCaseCreated, EventIndexCaseUpdated: written by Engine 2 (and Engine 5 for cases pulled from
	// CommCare); Engine 3 selects cases whose newest such event is newer than their newest hand-off event.
	EventIndexCaseCreated = "index_case_created"
	EventIndexCaseUpdated = "index_case_updated"
	// EventIndexCaseUntouched: written by Engine 2 when a test result added nothing; ignored by Engine 3.
	EventIndexCaseUntouched = "index_case_untouched"
	// EventLabResultCreated, EventLabResultUpdated: written by Engine 2; selected on by Engine 3 like the above.
	EventLabResultCreated = "lab_result_created"
	EventLabResultUpdated = "lab_result_updated"
	// EventLabResultUntouched: written by Engine 2; ignored by Engine 3.
	EventLabResultUntouched = "lab_result_untouched"
	// EventSendToCommCareEnqueued: written by Engine 3 in the transaction that inserts the Engine 4 job.
	EventSendToCommCareEnqueued = "send_to_commcare_enqueued"
	// EventSendToCommCareSucceeded, EventSendToCommCareFailed: written by Engine 4 after each post.
	EventSendToCommCareSucceeded = "send_to_commcare_succeeded"
	EventSendToCommCareFailed    = "send_to_commcare_failed"
	// EventSendToCommCareDiscarded: written by Engine 4 when a post can never succeed (a transfer cycle, a 4xx).
	EventSendToCommCareDiscarded = "send_to_commcare_discarded"
	// EventRetrievedFromCommCare, EventUpdatedFromCommCare: written by Engine 5 when it merges CommCare's changes.
	EventRetrievedFromCommCare = "retrieved_from_commcare"
	EventUpdatedFromCommCare   = "updated_from_commcare"
)
