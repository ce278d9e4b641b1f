package e2

import (
	"slices"
	"strconv"

	"github.com/viaduct-nys/viaduct/pkg/casedb"
	"github.com/viaduct-nys/viaduct/pkg/countylist"
	"github.com/viaduct-nys/viaduct/pkg/eclrs"
)

// outcome is what a test result's first look decides.
type outcome int

const (
	outcomeMatch   outcome = iota // match it against people, index cases and lab results
	outcomeIgnored                // record test_result_ignored and finish
	outcomeFailed                 // cannot be processed as it is: record the attempt
)

// plan is one test result's first look: everything that can make it fail is checked here, before anything changes
// in memory, so a failure never leaves half of a result applied.
type plan struct {
	tr       *eclrs.TestResult
	attempts int
	queued   bool // has a test_result_attempts row, which finishing it deletes (claimed.queued)
	outcome  outcome
	reason   string
	final    bool // a failure no retry can fix
	county   countylist.County
	name     *nameKey // nil when the date of birth or a name is missing
}

// plan checks every claimed test result against the ignore rules and its county.
func (b *batch) plan() []plan {
	plans := make([]plan, len(b.results))
	ignoreBefore := b.engine.config.IgnoreBefore
	for i := range b.results {
		r := &b.results[i]
		p := plan{tr: &r.TestResult, attempts: r.attempts, queued: r.queued}
		plans[i] = p
		pp := &plans[i]
		tr := pp.tr
		if tr.EclrsCreateDate.IsZero() {
			pp.fail(true, "eclrs_create_date is empty: OBRCREATEDATE was missing or not a timestamp")
			continue
		}
		if !tr.EclrsCreateDate.After(ignoreBefore) {
			pp.outcome, pp.reason = outcomeIgnored, "test_result older than "+ignoreBefore.UTC().Format("2006-01-02 15:04:05Z")
			continue
		}
		county, res, err := b.counties.Resolve(tr.CountyID)
		if err != nil {
			// The county list may gain a statewide entry at its next refresh.
			pp.fail(false, err.Error())
			continue
		}
		if res == countylist.NonParticipating {
			pp.outcome, pp.reason = outcomeIgnored, "test_result is for fips "+county.FIPS+" (a non-participating county)"
			continue
		}
		if tr.RequestAccessionNumber == "" {
			pp.fail(true, "request_accession_number is empty: OBRACCESSIONNUMBER was missing, and a lab result needs it")
			continue
		}
		pp.county = county
		first, last := casedb.PersonFirstName(tr.PatientNameFirst), casedb.PersonLastName(tr.PatientNameLast)
		if first != "" && last != "" && !tr.PatientDOB.IsZero() {
			pp.name = &nameKey{dob: tr.PatientDOB, last: last, first: first}
		}
	}
	return plans
}

func (p *plan) fail(final bool, reason string) {
	p.outcome, p.final, p.reason = outcomeFailed, final, reason
}

// apply runs the transformer's rules for one planned test result over the batch's state.
func (b *batch) apply(p *plan) {
	tr := p.tr
	switch p.outcome {
	case outcomeIgnored:
		b.ignored++
		b.trEvent(tr.ID, eclrs.EventTestResultIgnored, eventData{reason: p.reason})
		b.finish(p)
		return
	case outcomeFailed:
		b.failAttempt(p)
		return
	}

	who := b.matchPerson(p)
	touched := false
	for _, ic := range b.indexCasesFor(who, p) {
		if ic.status != statusUntouched {
			touched = true
		}
		if ic.ic.data["reinfected_case_created"] == "yes" {
			// An archived case gets no new lab result; the new case made for the reinfection gets it.
			continue
		}
		if b.labResultsFor(ic.ic, p) {
			touched = true
		}
	}
	if !touched {
		b.trEvent(tr.ID, "no_new_information", eventData{})
	}
	b.finish(p)
}

// finish records the processed event that takes the test result off Engine 2's list.
func (b *batch) finish(p *plan) {
	b.events = append(b.events, event{typ: eclrs.EventProcessed, testResult: p.tr.ID, finished: true})
	if p.queued {
		b.clearAttempts = append(b.clearAttempts, p.tr.ID)
	}
}

// matchPerson finds the test result's person by patient key, then by date of birth and name, or creates one
// (reference §4.5).
func (b *batch) matchPerson(p *plan) *person {
	tr := p.tr
	if tr.PatientKey != "" {
		if who := b.byKey[tr.PatientKey]; who != nil {
			b.trEvent(tr.ID, "person_matched", eventData{person: who})
			return who
		}
	}
	if p.name != nil {
		if who := b.byName[*p.name]; who != nil {
			if tr.PatientKey != "" {
				who.keys = append([]string{tr.PatientKey}, who.keys...)
				who.added = append(who.added, tr.PatientKey)
				b.byKey[tr.PatientKey] = who
			}
			b.trEvent(tr.ID, "person_added_patient_key", eventData{person: who})
			return who
		}
	}
	who := &person{
		id:      b.takePersonID(),
		first:   casedb.PersonFirstName(tr.PatientNameFirst),
		last:    casedb.PersonLastName(tr.PatientNameLast),
		dob:     tr.PatientDOB,
		created: true,
	}
	if tr.PatientKey != "" {
		who.keys = []string{tr.PatientKey}
	}
	b.addPerson(who)
	b.trEvent(tr.ID, "person_created", eventData{person: who})
	return who
}

// caseStatus is what a test result did to an index case.
type caseStatus int

const (
	statusUntouched caseStatus = iota
	statusUpdated
	statusCreated
)

type touchedCase struct {
	ic     *indexCase
	status caseStatus
}

// indexCasesFor selects, updates or creates the person's index cases in the test result's county (reference §4.6,
// §4.7, §4.9): the open cases that already hold this accession number, else all open cases; none open means a new
// case; when every updated case turned out to be a reinfection, a new case is opened beside them.
func (b *batch) indexCasesFor(who *person, p *plan) []touchedCase {
	tr := p.tr
	fips, _ := strconv.ParseInt(p.county.FIPS, 10, 64) // countylist.List guarantees a decimal FIPS
	var inCounty, withAccession []*indexCase
	for _, ic := range b.cases[who.id] {
		if ic.countyID != fips {
			continue
		}
		inCounty = append(inCounty, ic)
		if slices.ContainsFunc(b.labs[ic.id], func(l *labResult) bool { return l.accession == tr.RequestAccessionNumber }) {
			withAccession = append(withAccession, ic)
		}
	}
	candidates := inCounty
	if len(withAccession) > 0 {
		candidates = withAccession
	}
	var open []*indexCase
	for _, ic := range candidates {
		if isOpen(ic.closed, ic.data) {
			open = append(open, ic)
		}
	}
	if len(open) == 0 {
		return []touchedCase{{b.createCase(who, p, fips, nil), statusCreated}}
	}

	out := make([]touchedCase, 0, len(open)+1)
	allReinfected := true
	for _, ic := range open {
		out = append(out, touchedCase{ic, b.updateCase(ic, who, p)})
		if ic.data["reinfected_case_created"] != "yes" {
			allReinfected = false
		}
	}
	if allReinfected {
		archived := open[len(open)-1]
		out = append([]touchedCase{{b.createCase(who, p, fips, archived), statusCreated}}, out...)
	}
	return out
}

// createCase inserts a new index case for the person in the county; archived, when not nil, is the case whose
// reinfection this is.
func (b *batch) createCase(who *person, p *plan, fips int64, archived *indexCase) *indexCase {
	tr := p.tr
	data := indexCaseData(tr, who.id, p.county, b.now)
	addAge(data, tr)
	if archived != nil {
		copyForReinfection(data, archived.data, archived.caseID)
	}
	ic := &indexCase{id: b.takeCaseID(), personID: who.id, countyID: fips, caseID: newCaseID(b.now), data: data, created: true}
	b.cases[who.id] = append(b.cases[who.id], ic)
	b.bothEvents(tr.ID, ic, "index_case_created", eventData{indexCase: ic})
	return ic
}

// updateCase merges the test result into an existing case without overwriting anything it already holds.
func (b *batch) updateCase(ic *indexCase, who *person, p *plan) caseStatus {
	tr := p.tr
	kind := repeatType(ic.data, tr)
	var incoming map[string]any
	switch kind {
	case repeatReinfection:
		incoming = map[string]any{"reinfected_case_created": "yes"}
	case repeatReactivation:
		incoming = indexCaseData(tr, who.id, p.county, b.now)
		incoming["reactivated_case"] = "yes"
	default:
		incoming = indexCaseData(tr, who.id, p.county, b.now)
	}
	merged, additions, updates := mergeIndexCase(ic.data, incoming, preferRightKeysFor(kind))
	b.changeLogs = append(b.changeLogs, changeLog{testResultID: tr.ID, indexCase: ic,
		previous: ic.data, applied: additions, dropped: updates})
	if len(additions) == 0 {
		b.bothEvents(tr.ID, ic, "index_case_untouched", eventData{indexCase: ic})
		return statusUntouched
	}
	ic.data, ic.dirty = merged, true
	b.bothEvents(tr.ID, ic, "index_case_updated", eventData{indexCase: ic})
	return statusUpdated
}

// labResultsFor creates the case's lab result for the accession number or updates every one it has (reference
// §4.10), and reports whether anything was created or changed.
func (b *batch) labResultsFor(ic *indexCase, p *plan) bool {
	tr := p.tr
	incoming := labResultData(tr, ic.data, p.county)
	var existing []*labResult
	for _, lr := range b.labs[ic.id] {
		if lr.accession == tr.RequestAccessionNumber {
			existing = append(existing, lr)
		}
	}
	if len(existing) == 0 {
		lr := &labResult{indexCase: ic, accession: tr.RequestAccessionNumber, data: incoming, created: true}
		b.labs[ic.id] = append(b.labs[ic.id], lr)
		b.newLabs = append(b.newLabs, lr)
		b.bothEvents(tr.ID, ic, "lab_result_created", eventData{lab: lr, indexCase: ic})
		return true
	}
	changed := false
	for _, lr := range existing {
		merged, additions, updates := mergeLabResult(lr.data, incoming)
		// Divergence: the original recorded the data after the update as previous_state; this is the data before.
		b.changeLogs = append(b.changeLogs, changeLog{testResultID: tr.ID, lab: lr,
			previous: lr.data, applied: additions, dropped: updates})
		if len(additions) == 0 {
			b.bothEvents(tr.ID, ic, "lab_result_untouched", eventData{lab: lr, indexCase: ic})
			continue
		}
		lr.data, lr.dirty, changed = merged, true, true
		b.bothEvents(tr.ID, ic, "lab_result_updated", eventData{lab: lr, indexCase: ic})
	}
	return changed
}

func (b *batch) takePersonID() int64 { return take(&b.personIDs) }

func (b *batch) takeCaseID() int64 { return take(&b.caseIDs) }

// take pops a reserved id. allocateIDs reserved one person and one index case per test result, and a test result
// creates at most one of each, so running out is a bug.
func take(ids *[]int64) int64 {
	if len(*ids) == 0 {
		panic("e2: a batch ran out of reserved ids")
	}
	id := (*ids)[0]
	*ids = (*ids)[1:]
	return id
}
