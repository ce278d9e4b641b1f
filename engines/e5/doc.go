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
// Every Interval, one daemon at a time (a session advisory lock; the others skip the round), reads each
// participating domain, a few at once, from its high-water mark less Overlap (FirstWindow back for a domain without
// one), page by page until CommCare says there is no next page, asking for each case's children. Each case is
// merged in a transaction of its own:
//   - a case whose last change was made by Viaduct's own CommCare user is its own post coming back, and skipped;
//   - a case Viaduct has takes CommCare's values where CommCare has them (casedb.MergeIntoIndexCase, as Engine 4
//     merges before it posts), with its closed flag; its lab results are left alone;
//   - any other case, unless closed, a duplicate, registered in error, not a case, a stub or being transferred, is
//     created with its lab results for the person with the same date of birth, last name and first name, made
//     when there is none (under the identity lock Engine 2 takes, so the two never both make the person).
//
// Merging is idempotent, so reading a change twice is harmless, and the overlap can be generous. A domain's mark
// moves to the time its reading started only once every page is merged; a domain that fails keeps its mark and its
// error, is read again next round, and holds up no other domain.
//
// # Writes
//
// index_cases, lab_results and people, with retrieved_from_commcare and updated_from_commcare events;
// commcare_sync_marks.
package e5
