package e4

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/viaduct-nys/viaduct/pkg/casedb"
	"github.com/viaduct-nys/viaduct/pkg/commcare"
	"github.com/viaduct-nys/viaduct/pkg/commcare/commcaretest"
)

const receiverPath = "/a/" + midsomer + "/receiver/"

func casePath(domain, caseID string) string { return "/a/" + domain + "/api/v0.5/case/" + caseID + "/" }

func TestCreateCaseNotInCommCare(t *testing.T) {
	t.Parallel()
	f := newFixture(t, commcaretest.Options{})
	id := f.addCase(t, "case-1", 1111, map[string]any{"full_name": "Ada Lovelace", "dob": "1815-12-10",
		"owner_id": "someone-else", "assigned_to_primary_name": "Nobody", "blank": " "},
		lab{"acc-1", map[string]any{"specimen_collection_date": "2020-06-01", "lab_result_notes": "note"}},
		lab{"acc-2", map[string]any{"specimen_collection_date": "2020-06-03", "test_type": "PCR"}})

	res := f.work(t, "case-1", 1111, testConfig(), nil)
	require.Equal(t, river.EventKindJobCompleted, res.EventKind)

	got, ok := f.cc.Case(midsomer, "case-1")
	require.True(t, ok, "the patient case is in the county's domain")
	require.Equal(t, "patient", got.Type())
	require.Equal(t, "Ada Lovelace", got.Property("case_name"))
	require.Equal(t, midsomerLocation, got.Property("owner_id"), "the county's location owns the case")
	require.Equal(t, "1815-12-10", got.Property("dob"))
	require.Equal(t, "2020-06-03", got.Property("new_lab_result_specimen_collection_date"))
	require.Equal(t, "yes", got.Property("new_lab_result_received"))
	require.NotContains(t, got.Properties, "assigned_to_primary_name")
	require.NotContains(t, got.Properties, "blank", "blank values are not posted")
	labs := children(got)
	require.Len(t, labs, 2)
	lab1 := got.ChildCases[labs["acc-1"]]
	require.Equal(t, "-", lab1.Property("owner_id"))
	require.Equal(t, "2020-06-01", lab1.Property("specimen_collection_date"))
	require.NotContains(t, lab1.Properties, "lab_result_notes", "case workers' notes are never posted")
	require.Equal(t, commcare.CaseIndex{CaseID: "case-1", CaseType: "patient", Relationship: "extension"},
		lab1.Indices["parent"])

	evs := f.events(t, id, casedb.EventSendToCommCareSucceeded)
	require.Len(t, evs, 1)
	require.Equal(t, "create", evs[0].data["action"])
	require.Equal(t, midsomer, evs[0].data["domain"])
	require.Contains(t, evs[0].data["response"], "submit_success")
	require.True(t, strings.HasPrefix(evs[0].stash, `<?xml version="1.0" encoding="UTF-8"?>`), "the form is the stash")
	require.Equal(t, 1, f.cc.Submissions(midsomer))
}

func TestUpdateMergesCommCareFirst(t *testing.T) {
	t.Parallel()
	f := newFixture(t, commcaretest.Options{})
	f.cc.PutCase(midsomer, patient("case-1", map[string]any{"full_name": "Updated Full Name", "interviewed": "yes",
		"phone": "", "owner_id": "tracer-location"}))
	id := f.addCase(t, "case-1", 1111, map[string]any{"full_name": "Local Name", "phone": "5551234567"},
		lab{"acc-1", map[string]any{}})

	res := f.work(t, "case-1", 1111, testConfig(), nil)
	require.Equal(t, river.EventKindJobCompleted, res.EventKind)

	local := f.indexCase(t, "case-1")
	require.Equal(t, "Updated Full Name", local.data["full_name"], "CommCare's value wins over the local one")
	require.Equal(t, "yes", local.data["interviewed"], "CommCare-only values are kept")
	require.Equal(t, "5551234567", local.data["phone"], "a blank in CommCare does not erase a local value")
	require.Equal(t, []string{casedb.EventUpdatedFromCommCare, casedb.EventSendToCommCareSucceeded},
		f.eventTypes(t, id))
	require.Equal(t, "update", f.events(t, id, casedb.EventSendToCommCareSucceeded)[0].data["action"])

	got, _ := f.cc.Case(midsomer, "case-1")
	require.Equal(t, "Updated Full Name", got.Property("full_name"))
	require.Equal(t, "5551234567", got.Property("phone"))
	require.Equal(t, midsomerLocation, got.Property("owner_id"), "the county's location, whatever CommCare had")
	require.Len(t, children(got), 1)
}

func TestUnchangedCaseIsNotPostedAgain(t *testing.T) {
	t.Parallel()
	f := newFixture(t, commcaretest.Options{})
	id := f.addCase(t, "case-1", 1111, map[string]any{"full_name": "Ada"}, lab{"acc-1", map[string]any{}})

	require.Equal(t, river.EventKindJobCompleted, f.work(t, "case-1", 1111, testConfig(), nil).EventKind)
	require.Equal(t, river.EventKindJobCompleted, f.work(t, "case-1", 1111, testConfig(), nil).EventKind)
	require.Equal(t, 1, f.cc.Submissions(midsomer), "the second job found nothing new to post")
	evs := f.events(t, id, casedb.EventSendToCommCareSucceeded)
	require.Len(t, evs, 2)
	require.NotContains(t, evs[0].data, "skipped")
	require.Contains(t, evs[1].data["skipped"], "unchanged since the last successful post to "+midsomer)

	// A new lab result changes the payload: posted again.
	f.addLab(t, id, lab{"acc-2", map[string]any{}})
	require.Equal(t, river.EventKindJobCompleted, f.work(t, "case-1", 1111, testConfig(), nil).EventKind)
	require.Equal(t, 2, f.cc.Submissions(midsomer))
	got, _ := f.cc.Case(midsomer, "case-1")
	require.Len(t, children(got), 2)
}

func TestDryRunRecordsWithoutPosting(t *testing.T) {
	t.Parallel()
	f := newFixture(t, commcaretest.Options{})
	id := f.addCase(t, "case-1", 1111, map[string]any{"full_name": "Ada"})
	cfg := testConfig()
	cfg.DryRun = true

	require.Equal(t, river.EventKindJobCompleted, f.work(t, "case-1", 1111, cfg, nil).EventKind)
	require.Zero(t, f.cc.Submissions(midsomer))
	evs := f.events(t, id, casedb.EventSendToCommCareSucceeded)
	require.Len(t, evs, 1)
	require.Equal(t, "Sending to CommCare is not enabled", evs[0].data["response"])
	require.NotEmpty(t, evs[0].stash, "the form that would have been posted is kept")

	// A dry run is not a post: the next real run posts.
	require.Equal(t, river.EventKindJobCompleted, f.work(t, "case-1", 1111, testConfig(), nil).EventKind)
	require.Equal(t, 1, f.cc.Submissions(midsomer))
}

func TestRateLimitSnoozesWithoutSpendingAnAttempt(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name, method, path string
		wantEvent          []string
	}{
		{"GET", http.MethodGet, casePath(midsomer, "case-1"), nil},
		{"POST", http.MethodPost, receiverPath, []string{casedb.EventSendToCommCareFailed}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, commcaretest.Options{})
			id := f.addCase(t, "case-1", 1111, map[string]any{"full_name": "Ada"})
			f.cc.Fail(tt.method, tt.path, commcaretest.Fault{Status: http.StatusTooManyRequests, Times: 1,
				Header: http.Header{"Retry-After": {"7"}}})

			before := time.Now()
			res := f.work(t, "case-1", 1111, testConfig(), nil)
			require.Equal(t, river.EventKindJobSnoozed, res.EventKind)
			require.Equal(t, rivertype.JobStateScheduled, res.Job.State)
			after := time.Now()
			// Retry-After is honoured: 7 s from the answer, which came between before and after (PostgreSQL keeps
			// microseconds).
			require.False(t, res.Job.ScheduledAt.Before(before.Add(7*time.Second-time.Microsecond)), "%s",
				res.Job.ScheduledAt.Sub(before))
			require.False(t, res.Job.ScheduledAt.After(after.Add(7*time.Second)), "%s", res.Job.ScheduledAt.Sub(after))
			require.Zero(t, f.cc.Submissions(midsomer))
			require.Equal(t, tt.wantEvent, f.eventTypes(t, id))
			if tt.wantEvent != nil {
				require.Equal(t, "rate_limited", f.events(t, id, casedb.EventSendToCommCareFailed)[0].data["response"])
			}
		})
	}
}

func TestServerErrorIsRetried(t *testing.T) {
	t.Parallel()
	f := newFixture(t, commcaretest.Options{})
	id := f.addCase(t, "case-1", 1111, map[string]any{"full_name": "Ada"})
	f.cc.Fail(http.MethodPost, receiverPath, commcaretest.Fault{Status: http.StatusInternalServerError,
		Body: "500 Internal Server Error", Times: 1})

	res := f.work(t, "case-1", 1111, testConfig(), nil)
	require.Equal(t, river.EventKindJobFailed, res.EventKind)
	require.Equal(t, rivertype.JobStateAvailable, res.Job.State, "a retry due within River's scheduler interval is available at once")
	require.Len(t, res.Job.Errors, 1)
	require.Contains(t, res.Job.Errors[0].Error, "500 Internal Server Error")
	evs := f.events(t, id, casedb.EventSendToCommCareFailed)
	require.Len(t, evs, 1)
	require.Equal(t, "500 Internal Server Error", evs[0].data["response"])
	require.EqualValues(t, 500, evs[0].data["status"])
}

func TestPermanentRejectionCancels(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name  string
		fault commcaretest.Fault
	}{
		{"BadRequest", commcaretest.Fault{Status: http.StatusBadRequest, Body: "Invalid XML", Times: 1}},
		{"NoSuchDomain", commcaretest.Fault{Status: http.StatusNotFound, Body: "No domain", Times: 1}},
		{"SubmitError", commcaretest.Fault{Status: http.StatusCreated, Times: 1, Body: `<OpenRosaResponse ` +
			`xmlns="http://openrosa.org/http/response"><message nature="submit_error">bad case</message></OpenRosaResponse>`}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, commcaretest.Options{})
			id := f.addCase(t, "case-1", 1111, map[string]any{"full_name": "Ada"})
			f.cc.Fail(http.MethodPost, receiverPath, tt.fault)

			res := f.work(t, "case-1", 1111, testConfig(), nil)
			require.Equal(t, river.EventKindJobCancelled, res.EventKind)
			require.Equal(t, rivertype.JobStateCancelled, res.Job.State)
			evs := f.events(t, id, casedb.EventSendToCommCareDiscarded)
			require.Len(t, evs, 1)
			require.Equal(t, tt.fault.Body, evs[0].data["response"], "CommCare's answer is kept in the event")
			require.NotEmpty(t, evs[0].data["reason"])
		})
	}
}

func TestUnauthorizedIsRetriedNotCancelled(t *testing.T) {
	t.Parallel()
	f := newFixture(t, commcaretest.Options{})
	f.addCase(t, "case-1", 1111, map[string]any{"full_name": "Ada"})
	f.cc.Fail(http.MethodPost, receiverPath, commcaretest.Fault{Status: http.StatusForbidden, Times: 1,
		Body: "Your current subscription does not have access to this feature"})
	require.Equal(t, river.EventKindJobFailed, f.work(t, "case-1", 1111, testConfig(), nil).EventKind)
}

func TestMissingIndexCaseCancels(t *testing.T) {
	t.Parallel()
	f := newFixture(t, commcaretest.Options{})
	res := f.work(t, "no-such-case", 1111, testConfig(), nil)
	require.Equal(t, river.EventKindJobCancelled, res.EventKind)
	require.Contains(t, res.Job.Errors[0].Error, "no such index case")
}

func TestNonParticipatingCountyIsRetried(t *testing.T) {
	t.Parallel()
	f := newFixture(t, commcaretest.Options{})
	f.addCase(t, "case-1", 5678, map[string]any{})
	res := f.work(t, "case-1", 5678, testConfig(), nil)
	require.Equal(t, river.EventKindJobFailed, res.EventKind)
	require.Contains(t, res.Job.Errors[0].Error, "county 5678 does not participate")
}

// changingCommCare adds a lab result to the case while its form is being posted, as Engine 2 might.
type changingCommCare struct {
	CommCare
	change func()
}

func (c changingCommCare) SubmitForm(ctx context.Context, domain string, form []byte) (*commcare.SubmitResult, error) {
	c.change()
	return c.CommCare.SubmitForm(ctx, domain, form)
}

func TestChangeWhilePostingRunsTheJobAgain(t *testing.T) {
	t.Parallel()
	f := newFixture(t, commcaretest.Options{})
	id := f.addCase(t, "case-1", 1111, map[string]any{"full_name": "Ada"}, lab{"acc-1", map[string]any{}})
	var changed bool
	cc := changingCommCare{CommCare: f.client, change: func() {
		if !changed {
			changed = true
			f.addLab(t, id, lab{"acc-2", map[string]any{}})
		}
	}}
	// The change is committed on another connection while the test worker's transaction is open; the
	// worker's check sees it because it reads after taking the person's lock.
	res := f.work(t, "case-1", 1111, testConfig(), cc)
	require.Equal(t, river.EventKindJobSnoozed, res.EventKind, "the job runs again at once")
	require.Equal(t, rivertype.JobStateAvailable, res.Job.State)
	require.Len(t, f.events(t, id, casedb.EventSendToCommCareSucceeded), 1, "the post that went through is recorded")

	require.Equal(t, river.EventKindJobCompleted, f.work(t, "case-1", 1111, testConfig(), nil).EventKind)
	got, _ := f.cc.Case(midsomer, "case-1")
	require.Len(t, children(got), 2, "the second run sent the new lab result")
}

func TestCaseCommCareLostIsCreatedAgain(t *testing.T) {
	t.Parallel()
	f := newFixture(t, commcaretest.Options{})
	id := f.addCase(t, "case-1", 1111, map[string]any{"full_name": "Ada"}, lab{"acc-1", map[string]any{}})
	require.Equal(t, river.EventKindJobCompleted, f.work(t, "case-1", 1111, testConfig(), nil).EventKind)

	// Another CommCare without the case (as when its form was archived): the unchanged case is created again.
	other := commcaretest.StartTest(t, commcaretest.Options{Counties: commcaretest.TestCounties()})
	client, err := commcare.NewClient(other.ClientConfig())
	require.NoError(t, err)
	require.Equal(t, river.EventKindJobCompleted, f.work(t, "case-1", 1111, testConfig(), client).EventKind)
	_, ok := other.Case(midsomer, "case-1")
	require.True(t, ok)
	evs := f.events(t, id, casedb.EventSendToCommCareSucceeded)
	require.Equal(t, "create", evs[1].data["action"])
	require.NotContains(t, evs[1].data, "skipped")
}

func TestChangeToTransferDestinationWhilePostingRunsTheJobAgain(t *testing.T) {
	t.Parallel()
	f := newFixture(t, commcaretest.Options{})
	f.addCase(t, "source-1", 1111, map[string]any{"full_name": "Ada"}, lab{"acc-1", map[string]any{}})
	dest := f.addCase(t, "dest-1", 9999, map[string]any{"transfer_source_case_id": "source-1"})
	f.cc.PutCase(midsomer, transferred("9999"))
	f.cc.PutCase(yggdrasil, arrived("dest-1", nil))
	var changed bool
	cc := changingCommCare{CommCare: f.client, change: func() {
		if !changed {
			changed = true
			// Only the event: the test worker's transaction holds the destination's row lock until it commits.
			_, err := casedb.RecordEvent(context.Background(), f.db.Pool, dest, casedb.EventIndexCaseUpdated, nil, "")
			require.NoError(t, err)
		}
	}}
	res := f.work(t, "source-1", 1111, testConfig(), cc)
	require.Equal(t, river.EventKindJobSnoozed, res.EventKind, "the destination changed during the post: sent again")
	require.Len(t, f.events(t, dest, casedb.EventSendToCommCareSucceeded), 1)
}

// TestAnswerLostIsNotAppliedTwice: CommCare applies the form and the answer never arrives (the connection drops),
// so the attempt fails. The retry posts the same form with the same instanceID, which CommCare takes for the form
// it already has: the case is created once, and the post is then recorded as accepted.
func TestAnswerLostIsNotAppliedTwice(t *testing.T) {
	t.Parallel()
	f := newFixture(t, commcaretest.Options{})
	id := f.addCase(t, "case-1", 1111, map[string]any{"full_name": "Ada"}, lab{"acc-1", map[string]any{"test_type": "PCR"}})
	f.cc.Fail(http.MethodPost, receiverPath, commcaretest.Fault{AnswerLost: true, Times: 1})

	res := f.work(t, "case-1", 1111, testConfig(), nil)
	require.Equal(t, river.EventKindJobFailed, res.EventKind, "no answer: the attempt failed")
	require.Equal(t, 1, f.cc.Submissions(midsomer), "but CommCare applied the form")

	res = f.work(t, "case-1", 1111, testConfig(), nil)
	require.Equal(t, river.EventKindJobCompleted, res.EventKind)
	require.Equal(t, 1, f.cc.Submissions(midsomer), "the retry is recognised as the same form")
	require.Equal(t, 1, f.cc.DuplicateSubmissions())
	require.Len(t, f.events(t, id, casedb.EventSendToCommCareSucceeded), 1)

	// A change is new data: a new form, applied.
	f.addLab(t, id, lab{"acc-2", map[string]any{"test_type": "PCR"}})
	res = f.work(t, "case-1", 1111, testConfig(), nil)
	require.Equal(t, river.EventKindJobCompleted, res.EventKind)
	require.Equal(t, 2, f.cc.Submissions(midsomer))
}
