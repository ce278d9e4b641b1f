package e2

import (
	"encoding/json"
	"strconv"
)

// event is an events row and its join row: on a test result (test_result_events), on an index case
// (index_case_events), never both — an event "on both" is two rows, as in the original.
type event struct {
	id         int64 // assigned when the batch is written
	typ        string
	testResult int64      // the test result it is on, or 0
	indexCase  *indexCase // the index case it is on, or nil
	finished   bool       // processed or processing_failed: takes the test result off Engine 2's list
	data       eventData
}

// eventData is an event's data; ids of rows created by the batch are only known when it is written, so the JSON is
// rendered then. Empty fields are left out.
type eventData struct {
	person       *person
	indexCase    *indexCase
	lab          *labResult
	testResultID int64
	reason       string
	attempts     int
}

// json renders the data as the original's keys, or nil when there is none.
func (d eventData) json() []byte {
	var b []byte
	field := func(key string) {
		if b == nil {
			b = append(b, '{')
		} else {
			b = append(b, ',')
		}
		b = append(b, '"')
		b = append(b, key...)
		b = append(b, '"', ':')
	}
	if d.person != nil {
		field("person_id")
		b = strconv.AppendInt(b, d.person.id, 10)
	}
	if d.lab != nil {
		field("lab_result_id")
		b = strconv.AppendInt(b, d.lab.id, 10)
	}
	if d.indexCase != nil {
		field("index_case_id")
		b = strconv.AppendInt(b, d.indexCase.id, 10)
	}
	if d.testResultID != 0 {
		field("test_result_id")
		b = strconv.AppendInt(b, d.testResultID, 10)
	}
	if d.reason != "" {
		field("reason")
		reason, _ := json.Marshal(d.reason) // a string always marshals
		b = append(b, reason...)
	}
	if d.attempts != 0 {
		field("attempts")
		b = strconv.AppendInt(b, int64(d.attempts), 10)
	}
	if b == nil {
		return nil
	}
	return append(b, '}')
}

// trEvent records an event on a test result.
func (b *batch) trEvent(trID int64, typ string, data eventData) {
	b.events = append(b.events, event{typ: typ, testResult: trID, data: data})
}

// bothEvents records an event on the test result (with data) and its twin on the index case (pointing back at the
// test result).
func (b *batch) bothEvents(trID int64, ic *indexCase, typ string, data eventData) {
	b.events = append(b.events,
		event{typ: typ, testResult: trID, data: data},
		event{typ: typ, indexCase: ic, data: eventData{testResultID: trID}})
}
