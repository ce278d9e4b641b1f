package e4

import (
	"context"
	"net/http"
	"testing"

	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"

	"github.com/viaduct-nys/viaduct/pkg/casedb"
	"github.com/viaduct-nys/viaduct/pkg/commcare"
	"github.com/viaduct-nys/viaduct/pkg/commcare/commcaretest"
)

// transferred is the source case in Midsomer, transferred to the county with FIPS code to.
func transferred(to string) commcare.Case {
	return patient("source-1", map[string]any{"external_id": "ext-1", "transfer_destination_county_id": to,
		"transfer_status": "sent"})
}

// arrived is a destination case for source-1.
func arrived(caseID string, props map[string]any) commcare.Case {
	p := map[string]any{"external_id": "ext-1", "transfer_source_case_id": "source-1"}
	for k, v := range props {
		p[k] = v
	}
	return patient(caseID, p)
}

// TestTransferChains covers every outcome of the reference's transfer-chain table (§5.4–5.7, §8.7).
func TestTransferChains(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// seed puts cases in the fake CommCare and, with local, index cases in the database.
		seed  func(t *testing.T, f *fixture)
		want  river.EventKind
		error string // in the job's error
		// posted is the domain and case id the update went to; "" for no post.
		postedDomain, postedCase, owner string
		sourceEvents                    []string
	}{
		{
			name: "NotTransferred",
			seed: func(t *testing.T, f *fixture) {
				f.cc.PutCase(midsomer, patient("source-1", map[string]any{"transfer_destination_county_id": "1111"}))
			},
			want: river.EventKindJobCompleted, postedDomain: midsomer, postedCase: "source-1", owner: midsomerLocation,
			sourceEvents: []string{casedb.EventUpdatedFromCommCare, casedb.EventSendToCommCareSucceeded},
		},
		{
			name: "ToParticipatingCounty",
			seed: func(t *testing.T, f *fixture) {
				f.cc.PutCase(midsomer, transferred("9999"))
				f.cc.PutCase(yggdrasil, arrived("dest-1", nil))
			},
			want: river.EventKindJobCompleted, postedDomain: yggdrasil, postedCase: "dest-1", owner: yggdrasilLocation,
			sourceEvents: []string{casedb.EventSendToCommCareRerouted},
		},
		{
			name: "ToNonParticipatingCountyGoesStatewide",
			seed: func(t *testing.T, f *fixture) {
				f.cc.PutCase(midsomer, transferred("5678"))
				f.cc.PutCase(statewide, arrived("dest-sw", nil))
			},
			want: river.EventKindJobCompleted, postedDomain: statewide, postedCase: "dest-sw", owner: statewideLocation,
			sourceEvents: []string{casedb.EventSendToCommCareRerouted},
		},
		{
			name: "TwoHops",
			seed: func(t *testing.T, f *fixture) {
				f.cc.PutCase(midsomer, transferred("9999"))
				f.cc.PutCase(yggdrasil, arrived("dest-1", map[string]any{"transfer_destination_county_id": "5678"}))
				f.cc.PutCase(statewide, patient("dest-2", map[string]any{"external_id": "ext-1",
					"transfer_source_case_id": "dest-1"}))
			},
			want: river.EventKindJobCompleted, postedDomain: statewide, postedCase: "dest-2", owner: statewideLocation,
			sourceEvents: []string{casedb.EventSendToCommCareRerouted},
		},
		{
			name: "SeveralFoundOneFromTheSource",
			seed: func(t *testing.T, f *fixture) {
				f.cc.PutCase(midsomer, transferred("9999"))
				f.cc.PutCase(yggdrasil, patient("other", map[string]any{"external_id": "ext-1",
					"transfer_source_case_id": "someone-else"}))
				f.cc.PutCase(yggdrasil, arrived("dest-1", nil))
			},
			want: river.EventKindJobCompleted, postedDomain: yggdrasil, postedCase: "dest-1", owner: yggdrasilLocation,
			sourceEvents: []string{casedb.EventSendToCommCareRerouted},
		},
		{
			name: "SeveralFromTheSource",
			seed: func(t *testing.T, f *fixture) {
				f.cc.PutCase(midsomer, transferred("9999"))
				f.cc.PutCase(yggdrasil, arrived("dest-1", nil))
				f.cc.PutCase(yggdrasil, arrived("dest-2", nil))
			},
			want: river.EventKindJobFailed, error: "more than one case matches source case id",
		},
		{
			name: "TargetNotFound",
			seed: func(t *testing.T, f *fixture) {
				f.cc.PutCase(midsomer, transferred("9999"))
			},
			want: river.EventKindJobFailed, error: "no destination case matches source case id",
		},
		{
			name: "TargetSearchNotFound",
			seed: func(t *testing.T, f *fixture) {
				f.cc.PutCase(midsomer, transferred("9999"))
				f.cc.Fail(http.MethodGet, "/a/"+yggdrasil+"/api/v0.5/case/", commcaretest.Fault{Status: http.StatusNotFound})
			},
			want: river.EventKindJobFailed, error: "was transferred but the target case was not found",
		},
		{
			name: "FoundThroughLocalCase",
			seed: func(t *testing.T, f *fixture) {
				f.cc.PutCase(midsomer, transferred("9999"))
				// CommCare's search finds nothing (the destination lacks the external id); a local case knows it.
				f.cc.PutCase(yggdrasil, patient("dest-local", map[string]any{"transfer_source_case_id": "source-1"}))
				f.addCase(t, "dest-local", 9999, map[string]any{"transfer_source_case_id": "source-1", "full_name": "Ada"})
			},
			want: river.EventKindJobCompleted, postedDomain: yggdrasil, postedCase: "dest-local", owner: yggdrasilLocation,
			sourceEvents: []string{casedb.EventSendToCommCareRerouted},
		},
		{
			name: "DuplicateChainToItsEnd",
			seed: func(t *testing.T, f *fixture) {
				f.cc.PutCase(midsomer, transferred("9999"))
				f.cc.PutCase(yggdrasil, patient("duplicate-1", map[string]any{"duplicate_of_case_id": "duplicate-2"}))
				f.cc.PutCase(yggdrasil, patient("duplicate-2", map[string]any{"duplicate_of_case_id": "terminal"}))
				f.cc.PutCase(yggdrasil, patient("terminal", nil))
				f.addCase(t, "duplicate-1", 9999, map[string]any{"transfer_source_case_id": "source-1"})
			},
			want: river.EventKindJobCompleted, postedDomain: yggdrasil, postedCase: "terminal", owner: yggdrasilLocation,
			sourceEvents: []string{casedb.EventSendToCommCareRerouted},
		},
		{
			name: "DuplicateCycle",
			seed: func(t *testing.T, f *fixture) {
				f.cc.PutCase(midsomer, transferred("9999"))
				f.cc.PutCase(yggdrasil, patient("duplicate-cycle-1", map[string]any{"duplicate_of_case_id": "duplicate-cycle-2"}))
				f.cc.PutCase(yggdrasil, patient("duplicate-cycle-2", map[string]any{"duplicate_of_case_id": "duplicate-cycle-1"}))
				f.addCase(t, "duplicate-cycle-1", 9999, map[string]any{"transfer_source_case_id": "source-1"})
			},
			want: river.EventKindJobCompleted, postedDomain: yggdrasil, postedCase: "duplicate-cycle-2", owner: yggdrasilLocation,
			sourceEvents: []string{casedb.EventSendToCommCareRerouted},
		},
		{
			name: "DuplicateDeadEnd",
			seed: func(t *testing.T, f *fixture) {
				f.cc.PutCase(midsomer, transferred("9999"))
				f.cc.PutCase(yggdrasil, patient("dead-end-duplicate", map[string]any{
					"duplicate_of_case_id": "missing-duplicate-terminal-case"}))
				f.addCase(t, "dead-end-duplicate", 9999, map[string]any{"transfer_source_case_id": "source-1",
					"full_name": "Ada"})
			},
			want: river.EventKindJobCompleted, postedDomain: yggdrasil, postedCase: "dead-end-duplicate",
			owner: yggdrasilLocation, sourceEvents: []string{casedb.EventSendToCommCareRerouted},
		},
		{
			name: "CycleBackToTheSource",
			seed: func(t *testing.T, f *fixture) {
				f.cc.PutCase(midsomer, transferred("9999"))
				f.cc.PutCase(yggdrasil, arrived("dest-1", map[string]any{"transfer_destination_county_id": "1111"}))
			},
			want: river.EventKindJobCancelled, error: "case transfer cycle detected: source-1@" + midsomer +
				" -> dest-1@" + yggdrasil + " -> " + midsomer,
			sourceEvents: []string{casedb.EventSendToCommCareDiscarded},
		},
		{
			name: "UnknownDestinationCounty",
			seed: func(t *testing.T, f *fixture) {
				f.cc.PutCase(midsomer, transferred("4242"))
			},
			want: river.EventKindJobFailed, error: `no county found with FIPS code "4242"`,
		},
		{
			name: "BadRequestOnTheDestination",
			seed: func(t *testing.T, f *fixture) {
				f.cc.PutCase(midsomer, transferred("9999"))
				f.cc.Fail(http.MethodGet, "/a/"+yggdrasil+"/api/v0.5/case/", commcaretest.Fault{Status: http.StatusBadRequest,
					Body: "Error!"})
			},
			want: river.EventKindJobCancelled, error: "400 Bad Request",
			sourceEvents: []string{casedb.EventSendToCommCareDiscarded},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, commcaretest.Options{})
			source := f.addCase(t, "source-1", 1111, map[string]any{"full_name": "Ada", "dob": "1990-01-02"},
				lab{"acc-1", map[string]any{"result": "positive"}}, lab{"acc-2", map[string]any{"result": "positive"}})
			tt.seed(t, f)

			res := f.work(t, "source-1", 1111, testConfig(), nil)
			require.Equal(t, tt.want, res.EventKind)
			if tt.error != "" {
				require.NotEmpty(t, res.Job.Errors)
				require.Contains(t, res.Job.Errors[len(res.Job.Errors)-1].Error, tt.error)
			}
			require.Equal(t, tt.sourceEvents, f.eventTypes(t, source))

			var submissions int
			for _, d := range []string{midsomer, yggdrasil, statewide} {
				submissions += f.cc.Submissions(d)
			}
			if tt.postedDomain == "" {
				require.Zero(t, submissions, "nothing is posted")
				return
			}
			require.Equal(t, 1, submissions)
			require.Equal(t, 1, f.cc.Submissions(tt.postedDomain))
			got, ok := f.cc.Case(tt.postedDomain, tt.postedCase)
			require.True(t, ok)
			require.Equal(t, tt.owner, got.Property("owner_id"))
			require.Equal(t, "Ada", got.Property("full_name"), "local data fills CommCare's blanks")
			require.Len(t, children(got), 2, "the source's lab results went with the case")

			if tt.postedCase != "source-1" {
				dest := f.indexCase(t, tt.postedCase)
				require.Equal(t, f.person, dest.personID, "the destination case belongs to the same person")
				require.ElementsMatch(t, []string{"acc-1", "acc-2"}, f.labAccessions(t, dest.id))
				evs := f.events(t, dest.id, casedb.EventSendToCommCareSucceeded)
				require.Len(t, evs, 1)
				require.Equal(t, "update", evs[0].data["action"])
				rerouted := f.events(t, source, casedb.EventSendToCommCareRerouted)[0]
				require.Equal(t, tt.postedCase, rerouted.data["destination_case_id"])
			}
		})
	}
}

// TestTransferReusesCommCareLabCases checks that a copied lab result takes the case id of the destination's lab
// result child with the same accession number, so CommCare gets no duplicate lab result.
func TestTransferReusesCommCareLabCases(t *testing.T) {
	t.Parallel()
	f := newFixture(t, commcaretest.Options{})
	f.addCase(t, "source-1", 1111, map[string]any{"full_name": "Ada"},
		lab{"acc-1", map[string]any{}}, lab{"acc-2", map[string]any{}})
	f.cc.PutCase(midsomer, transferred("9999"))
	f.cc.PutCase(yggdrasil, arrived("dest-1", nil))
	f.cc.PutCase(yggdrasil, commcare.Case{CaseID: "commcare-lab", Properties: map[string]any{"case_type": "lab_result",
		"accession_number": "acc-1"}, Indices: map[string]commcare.CaseIndex{"parent": {CaseID: "dest-1", CaseType: "patient",
		Relationship: "extension"}}})

	require.Equal(t, river.EventKindJobCompleted, f.work(t, "source-1", 1111, testConfig(), nil).EventKind)
	got, _ := f.cc.Case(yggdrasil, "dest-1")
	labs := children(got)
	require.Len(t, labs, 2)
	require.Equal(t, "commcare-lab", labs["acc-1"])

	// A second job changes nothing: the destination exists, its lab results too, and the post is skipped.
	require.Equal(t, river.EventKindJobCompleted, f.work(t, "source-1", 1111, testConfig(), nil).EventKind)
	dest := f.indexCase(t, "dest-1")
	require.Len(t, f.labAccessions(t, dest.id), 2)
	require.Equal(t, 1, f.cc.Submissions(yggdrasil))
	var count int
	require.NoError(t, f.db.Pool.QueryRow(context.Background(),
		`SELECT count(*) FROM index_cases WHERE case_id = 'dest-1'`).Scan(&count))
	require.Equal(t, 1, count)
}
