// Package e5 is Engine 5, the CommCare extractor: it brings the patient cases that changed in CommCare back into
// Viaduct's database, by two paths with one set of rules. CommCare's data forwarding pushes each changed case to a
// webhook, so a tracer's edit arrives in about a second; polling reads every change since a high-water mark, and is
// the safety net for whatever forwarding missed.
//
// # Reads
//
// Polling: every participating county's CommCare domain, the patient cases changed since the domain's high-water
// mark (commcare_sync_marks), page by page to the end, with their lab result children. Forwarding: the cases
// CommCare's case repeater POSTs to the webhook (Webhook, WebhookPath), and, for a case new to Viaduct forwarded
// without what creating it needs, that case from the case API. Local people, person_keys, index cases and lab
// results, to merge into.
//
// # Does
//
// Polling (Engine): every Interval, one daemon at a time (a session advisory lock; the others skip the round), reads
// each participating domain, a few at once, from its high-water mark less Overlap (FirstWindow back for a domain
// without one), page by page until CommCare says there is no next page, asking for each case's children. Pages are
// read by key, from the newest modification time read so far, so a case edited during the round is read again but
// none is skipped. A domain's mark moves to the time its reading started only once every page is merged; a domain
// that fails keeps its mark and its error, is read again next round, and holds up no other domain. A 429 is waited
// out as CommCare asks and is no failure; a domain whose waits pass the round's budget stops with its mark at the
// last change it read, and goes on next round.
//
// Forwarding (Webhook, Importer): the webhook, on a listener of its own, checks the forwarder's HTTP Basic auth
// (user WebhookUser, compared in constant time with the password), refuses what is not a patient case of a
// participating county with the original's answers (400, 413, 415, 422), answers 202 and queues nothing for a change
// by Viaduct's own user, and otherwise keeps the case in commcare_case_inbox (one row per case; the copy with the
// later date_modified wins, since the forwarder retries each change on its own) and inserts an ImportArgs job that
// names the case, in one transaction. It never logs a body or a credential. A job is unique among the case's live
// jobs; it locks the inbox row, merges what it holds, deletes it and completes itself, all in one transaction, so a
// copy forwarded meanwhile either is the one merged or, arriving after that commit, finds no live job and queues one:
// none is lost. A case new to Viaduct forwarded without its child cases (CommCare's repeater leaves them out) or
// naming nobody is fetched from the case API outside the transaction; while the API's copy is older than the
// forwarded one (it trails the forwarder) or missing, the job snoozes LagWait, at most MaxLagWaits times before it
// leaves the case to polling; a 429 snoozes as long as Retry-After asks.
//
// Each case is merged in one transaction, by the same rules on both paths:
//   - a case whose last change was made by Viaduct's own CommCare user is its own post coming back, and skipped;
//   - a case Viaduct has takes CommCare's values where CommCare has them (casedb.MergeIntoIndexCase, as Engine 4
//     merges before it posts), with its closed flag; its lab results are left alone. A change older, by
//     date_modified, than the last one merged (index_cases.commcare_date_modified) is stale and changes nothing;
//   - any other case, unless closed, a duplicate, registered in error, not a case, a stub or being transferred, is
//     created with its lab results for its person (§6.3 of the reference): the person holding its patient key (from
//     external_id, name_and_id or a lab result's external_id), else the one with its date of birth, first and last
//     name, else one with its date of birth whose names are words of its full name; else a new person, with the
//     patient key, or with the names and date of birth when it has no key. Under the identity locks Engine 2 takes
//     (casedb.LockIdentities), so the two never both make the person.
//
// Merging is idempotent, so a change read twice, or by both paths, is merged once, and polling's overlap can be
// generous. Two writers that create the same case at once are told apart by its unique case id; the loser merges it
// again as a known case. Lock order: the inbox row (the importer only), then identities, people and index case rows
// as every writer takes them.
//
// # Writes
//
// index_cases, lab_results, people and person_keys, with retrieved_from_commcare and updated_from_commcare events;
// commcare_sync_marks; commcare_case_inbox and the importer's River jobs (queue ImportQueue).
package e5
