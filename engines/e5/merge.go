package e5

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"

	"github.com/viaduct-nys/viaduct/pkg/advisory"
	"github.com/viaduct-nys/viaduct/pkg/casedb"
	"github.com/viaduct-nys/viaduct/pkg/commcare"
)

// outcome is what merging one case did.
type outcome int

const (
	outcomeUpdated   outcome = iota // a known case took CommCare's changes
	outcomeUnchanged                // a known case, nothing new
	outcomeCreated                  // a new index case (and maybe person) with its lab results
	outcomeOwn                      // Viaduct's own post coming back
	outcomeSkipped                  // a case the rules keep out (closed, a duplicate, a stub, in transfer, no name)
)

// Stats counts what a round did to cases.
type Stats struct {
	Updated, Unchanged, Created, Own, Skipped, Failed int
}

func (s *Stats) count(o outcome) {
	switch o {
	case outcomeUpdated:
		s.Updated++
	case outcomeUnchanged:
		s.Unchanged++
	case outcomeCreated:
		s.Created++
	case outcomeOwn:
		s.Own++
	case outcomeSkipped:
		s.Skipped++
	}
}

func (s *Stats) add(o Stats) {
	s.Updated += o.Updated
	s.Unchanged += o.Unchanged
	s.Created += o.Created
	s.Own += o.Own
	s.Skipped += o.Skipped
	s.Failed += o.Failed
}

func (s *Stats) fields() []zap.Field {
	return []zap.Field{zap.Int("updated", s.Updated), zap.Int("unchanged", s.Unchanged), zap.Int("created", s.Created),
		zap.Int("own_posts", s.Own), zap.Int("skipped", s.Skipped), zap.Int("failed", s.Failed)}
}

// closedDispositions are final dispositions of cases that are not cases to import.
var closedDispositions = []string{"registered_in_error", "duplicate", "not_a_case"}

// skipReason says why a case CommCare has and Viaduct does not is kept out, "" when it is imported (the rules the
// original added in June 2021).
func skipReason(c *commcare.Case) string {
	switch {
	case c.Closed:
		return "closed"
	case slices.Contains(closedDispositions, c.Property("final_disposition")):
		return "final disposition " + c.Property("final_disposition")
	case c.Property("patient_type") == "pui" && c.Property("current_status") == "closed":
		return "a closed PUI"
	case c.Property("stub") == "yes":
		return "a stub"
	case c.Property("transfer_status") == "pending" || c.Property("transfer_status") == "sent":
		return "being transferred"
	}
	return ""
}

// mergeCase merges one CommCare patient case from domain (county fips) in one transaction (§6.3, as the issue
// states the rules):
//   - Viaduct's own post coming back is skipped;
//   - a case Viaduct has takes CommCare's changes (CommCare's non-blank values win, as in Engine 4); its lab
//     results are left alone;
//   - otherwise, unless the rules keep it out, the case is created, with its lab results, for the person with the
//     same date of birth, last name and first name, created when there is none.
//
// Merging the same case twice changes nothing the second time.
func (e *Engine) mergeCase(ctx context.Context, c *commcare.Case, domain string, fips int64) (outcome, error) {
	if slices.Contains(e.config.OwnUserIDs, c.UserID) && c.UserID != "" {
		return outcomeOwn, nil
	}
	if c.Domain == "" {
		c.Domain = domain
	}
	tx, err := e.deps.Pool.Begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("beginning a transaction: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck

	out, err := e.mergeKnown(ctx, tx, c)
	if errors.Is(err, errUnknown) {
		out, err = e.create(ctx, tx, c, fips)
	}
	if err != nil {
		return 0, err
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, fmt.Errorf("committing case %s: %w", c.CaseID, err)
	}
	return out, nil
}

// errUnknown: Viaduct has no index case with that case id.
var errUnknown = errors.New("unknown case")

// mergeKnown merges c into the index case with its case id, under the person's lock and the row's.
func (e *Engine) mergeKnown(ctx context.Context, tx pgx.Tx, c *commcare.Case) (outcome, error) {
	id, data, closed, err := casedb.FindAndLockIndexCase(ctx, tx, c.CaseID)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, errUnknown
	}
	if err != nil {
		return 0, err
	}
	_, changed, err := casedb.MergeIntoIndexCase(ctx, tx, id, data, closed, c)
	if err != nil {
		return 0, err
	}
	if len(changed) == 0 && closed == c.Closed {
		return outcomeUnchanged, nil
	}
	return outcomeUpdated, nil
}

// create stores c as a new index case in county fips with its lab results, for the person it names.
func (e *Engine) create(ctx context.Context, tx pgx.Tx, c *commcare.Case, fips int64) (outcome, error) {
	if reason := skipReason(c); reason != "" {
		return outcomeSkipped, nil
	}
	first, last := casedb.PersonFirstName(c.Property("first_name")), casedb.PersonLastName(c.Property("last_name"))
	dob, err := time.Parse(time.DateOnly, c.Property("dob"))
	if first == "" || last == "" || err != nil {
		// Without a name and date of birth no person can be matched or made; the original skipped these too.
		return outcomeSkipped, nil
	}
	if err := casedb.LockIdentities(ctx, tx, []int64{advisory.PersonName(dob, last, first)}); err != nil {
		return 0, err
	}
	// Found or made in one statement: under the identity lock nobody else makes this person meanwhile.
	var personID int64
	err = tx.QueryRow(ctx, `WITH found AS (SELECT id FROM people WHERE dob = $1 AND name_last = $2 AND name_first = $3),
		made AS (INSERT INTO people (patient_keys, data, name_first, name_last, dob)
			SELECT '{}', '{}', $3, $2, $1 WHERE NOT EXISTS (SELECT FROM found) RETURNING id)
		SELECT id FROM found UNION ALL SELECT id FROM made`, dob, last, first).Scan(&personID)
	if err != nil {
		return 0, fmt.Errorf("finding the person of case %s: %w", c.CaseID, err)
	}
	if err := casedb.LockPeople(ctx, tx, []int64{personID}); err != nil {
		return 0, err
	}
	var modified any
	if t, err := commcare.ParseTime(c.DateModified); err == nil {
		modified = t
	}
	var labIDs, accessions []string
	var labData []map[string]any
	for _, childID := range slices.Sorted(maps.Keys(c.ChildCases)) {
		child := c.ChildCases[childID]
		if accession := child.Property("accession_number"); child.Type() == "lab_result" && accession != "" {
			labIDs = append(labIDs, childID)
			accessions = append(accessions, accession)
			labData = append(labData, child.Properties)
		}
	}
	// The case and its lab results in one statement, since each round trip is a good part of a merge's cost.
	var id int64
	err = tx.QueryRow(ctx, `WITH ic AS (
			INSERT INTO index_cases (person_id, county_id, case_id, data, closed, commcare_date_modified)
			VALUES ($1, $2, $3, $4, $5, $6) RETURNING id),
		lr AS (INSERT INTO lab_results (index_case_id, case_id, accession_number, data)
			SELECT ic.id, l.case_id, l.accession_number, l.data
			  FROM ic, unnest($7::text[], $8::text[], $9::jsonb[]) AS l (case_id, accession_number, data))
		SELECT id FROM ic`, personID, fips, c.CaseID, c.Properties, c.Closed, modified, labIDs, accessions, labData).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("creating case %s with its lab results: %w", c.CaseID, err)
	}
	if _, err := casedb.RecordEvent(ctx, tx, id, casedb.EventRetrievedFromCommCare,
		map[string]any{"domain": c.Domain, "lab_results": len(labIDs)}, ""); err != nil {
		return 0, err
	}
	return outcomeCreated, nil
}
