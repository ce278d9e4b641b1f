// Package e5 is Engine 5, the CommCare extractor: it pulls the patient cases that changed in CommCare back into
// Viaduct's database.
//
// # Reads
//
// Every participating county's CommCare domain: patient cases changed since the domain's high-water mark
// (commcare_sync_marks), page by page to the end, with their lab result children. Local people, index cases and
// lab results, to merge into.
//
// # Does
//
// (Being built for issue 5.)
//
// # Writes
//
// index_cases, lab_results and people, with retrieved_from_commcare and updated_from_commcare events;
// commcare_sync_marks.
package e5
