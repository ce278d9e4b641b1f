package casedb

import (
	"context"
	"encoding/json"
	"fmt"
)

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
	// EventSendToCommCareEnqueued: written by Engine 3 in the transaction that inserts the Engine 4 job, and by
	// `viaduct resend`, which records who asked in its data (by).
	EventSendToCommCareEnqueued = "send_to_commcare_enqueued"
	// EventSendToCommCareSucceeded, EventSendToCommCareFailed: written by Engine 4 after each post.
	EventSendToCommCareSucceeded = "send_to_commcare_succeeded"
	EventSendToCommCareFailed    = "send_to_commcare_failed"
	// EventSendToCommCareDiscarded: written by Engine 4 when a post can never succeed (a transfer cycle, a 4xx);
	// its job is cancelled.
	EventSendToCommCareDiscarded = "send_to_commcare_discarded"
	// EventRetrievedFromCommCare, EventUpdatedFromCommCare: written by Engine 5 when it merges CommCare's changes.
	EventRetrievedFromCommCare = "retrieved_from_commcare"
	EventUpdatedFromCommCare   = "updated_from_commcare"
)

// EventSendToCommCareRerouted: written by Engine 4 on a case CommCare transferred to another county, when the
// update went to the destination case instead.
const EventSendToCommCareRerouted = "send_to_commcare_rerouted"

// EventResendRequested: written by `viaduct resend` on an index case it handed to Engine 4 again, with who asked
// (by), why (reason) and what became of the case's job (job_id, job: queued, waiting, due_now or running). It is
// neither a change nor a hand-off event: the hand-off is the send_to_commcare_enqueued recorded with it, except
// when the case's job was running (that job posts the case, and the case keeps whatever Engine 3 makes of it).
const EventResendRequested = "resend_requested"

// RecordEvent inserts an event of type typ with data (JSON-encoded; nil for none) and stash (the exact payload
// posted, "" for none) and links it to the index case, returning the event's id. Callers record it in the
// transaction of the change it describes.
func RecordEvent(ctx context.Context, db DBTX, indexCaseID int64, typ string, data any, stash string) (int64, error) {
	var raw []byte
	if data != nil {
		var err error
		if raw, err = json.Marshal(data); err != nil {
			return 0, fmt.Errorf("recording a %s event: encoding its data: %w", typ, err)
		}
	}
	var id int64
	err := db.QueryRow(ctx, `WITH ev AS (INSERT INTO events (type, data, stash) VALUES ($1, $2, NULLIF($3, ''))
		 RETURNING id)
		INSERT INTO index_case_events (index_case_id, event_id) SELECT $4, id FROM ev RETURNING event_id`,
		typ, raw, stash, indexCaseID).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("recording a %s event on index case %d: %w", typ, indexCaseID, err)
	}
	return id, nil
}

// ChangeEventTypes are the events that make an index case need sending to CommCare; HandOffEventTypes those that
// record it was handed off. Engine 3 sends a case whose newest change event is newer, by id, than its newest
// hand-off event; Engine 4 compares change event ids to tell whether a case changed while it was being posted.
// Succeeded and failed count as hand-offs: a transfer records succeeded on a destination case that was never
// enqueued, and a failed post belongs to a job that is still retrying.
var (
	ChangeEventTypes = []string{EventIndexCaseCreated, EventIndexCaseUpdated, EventLabResultCreated,
		EventLabResultUpdated}
	HandOffEventTypes = []string{EventSendToCommCareEnqueued, EventSendToCommCareFailed,
		EventSendToCommCareSucceeded}
)

// ChangedChannel is the PostgreSQL NOTIFY channel Engine 2 signals on when it commits index case changes, once per
// transaction; Engine 3 LISTENs on it to start a pass at once instead of at its next poll. The payload is empty.
// Only a shortcut: Engine 3 polls anyway, so a lost notification costs a poll interval, never a change.
const ChangedChannel = "viaduct_index_cases_changed"

// CaseEventsSQL is a SQL row source (event_id, type) of the events of the index case whose id is the SQL expression
// caseID, for the rules that compare a case's change and hand-off events (Engine 3's selection, Engine 4's newest
// change). Each event's type is read by a lateral subquery that OFFSET 0 keeps PostgreSQL from flattening into a
// join: whatever the planner's statistics say (none, on tables Engine 2 has just filled), reading a case's events
// costs an index probe per event of that case, never a hash over every event in the table.
func CaseEventsSQL(caseID string) string {
	return `(SELECT j.event_id, t.type FROM index_case_events j,
	                LATERAL (SELECT e.type FROM events e WHERE e.id = j.event_id OFFSET 0) t
	          WHERE j.index_case_id = ` + caseID + `)`
}
