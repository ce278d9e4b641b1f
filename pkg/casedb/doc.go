// Package casedb is the contract of the case tables that Engines 2–5 share: people and person_keys, index_cases,
// lab_results, events and their join tables. It holds what every writer of those tables must agree on:
//
//   - the locks a writer takes and their order: identities (LockIdentities, with advisory.PersonName and PersonKey) before people
//     (LockPeople) before index case rows (LockIndexCase, FindAndLockIndexCase);
//   - the event vocabulary (EventIndexCaseCreated …) with which engine writes and which reads each, how an event is
//     recorded (RecordEvent), and which events are changes and which hand-offs (ChangeEventTypes, HandOffEventTypes,
//     CaseEventsSQL);
//   - how a CommCare case is merged into an index case (MergeIntoIndexCase), as Engines 4 and 5 both do;
//   - the job Engine 3 inserts and Engine 4 works (CaseLoaderArgs).
package casedb
