package e4

import (
	"maps"
	"time"

	"github.com/viaduct-nys/viaduct/pkg/commcare"
	"github.com/viaduct-nys/viaduct/pkg/countylist"
)

// unassigned are the patient properties Engine 4 never posts: Viaduct does not assign cases to anybody, and
// posting what it holds would undo an assignment made in CommCare.
var unassigned = []string{"assigned_to_primary_checkin_case_id", "assigned_to_primary_name",
	"assigned_to_primary_username", "assigned_to_temp_checkin_case_id", "assigned_to_temp_name",
	"assigned_to_temp_username"}

// caseWorkerNotes are the lab result properties Engine 4 never posts, so case workers' notes are not overwritten.
var caseWorkerNotes = []string{"created_manually", "lab_result_notes", "most_recent_lab_result_note"}

// labOwner is the owner of lab result cases: they are extension cases of the patient case, whose owner they follow.
const labOwner = "-"

// payload is what one post sends: the form's XML and what identifies its content (commcare.Form.Fingerprint).
type payload struct {
	xml         []byte
	fingerprint [32]byte
}

// buildForm makes the form that creates or updates ic and its lab results in the county's domain (§5.10): the
// patient case owned by the county's location, with the dates of its newest lab result, and each lab result as an
// extension case of it. All lab results are sent each time; the fingerprint lets an unchanged case be skipped.
func (w *Worker) buildForm(ic *caseToPost, county countylist.County, now time.Time) (payload, error) {
	labs := ic.labs
	data := without(ic.data, unassigned)
	data["owner_id"] = county.LocationID
	specimen, received := "", ic.insertedAt
	for i, l := range labs {
		if d, ok := l.data["specimen_collection_date"].(string); ok && d > specimen {
			specimen = d
		}
		if i == len(labs)-1 {
			received = l.insertedAt
		}
	}
	if specimen == "" {
		specimen = ic.insertedAt.In(w.zone).Format(time.DateOnly)
	}
	data["new_lab_result_specimen_collection_date"] = specimen
	data["new_lab_result_received_date"] = received.In(w.zone).Format(time.DateOnly)
	data["new_lab_result_received"] = "yes"

	name, _ := data["full_name"].(string)
	blocks := make([]commcare.CaseBlock, 1, 1+len(labs))
	blocks[0] = commcare.CaseBlock{
		CaseID:       ic.caseID,
		DateModified: now,
		UserID:       w.config.UserID,
		CaseType:     "patient",
		CaseName:     &name,
		OwnerID:      county.LocationID,
		Update:       data,
	}
	parent := &commcare.CaseIndex{CaseID: ic.caseID, CaseType: "patient", Relationship: "extension"}
	for _, l := range labs {
		ld := without(l.data, caseWorkerNotes)
		ld["accession_number"] = l.accession
		ld["owner_id"] = labOwner
		blocks = append(blocks, commcare.CaseBlock{
			CaseID:   l.caseID,
			CaseType: "lab_result",
			OwnerID:  labOwner,
			Update:   ld,
			Parent:   parent,
		})
	}
	form := commcare.Form{
		Cases:    blocks,
		Now:      now,
		Username: w.config.Username,
		UserID:   w.config.UserID,
	}
	// The instance id is derived from the content and the change posted (commcare.InstanceIDFor).
	xml, fp, err := form.XMLFor(county.Domain, ic.seen)
	if err != nil {
		return payload{}, err
	}
	return payload{xml: xml, fingerprint: fp}, nil
}

// without returns a copy of data, never nil, without keys.
func without(data map[string]any, keys []string) map[string]any {
	out := make(map[string]any, len(data)+4)
	maps.Copy(out, data)
	for _, k := range keys {
		delete(out, k)
	}
	return out
}
