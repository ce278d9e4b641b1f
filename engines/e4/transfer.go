package e4

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"go.uber.org/zap"

	"github.com/viaduct-nys/viaduct/pkg/casedb"
	"github.com/viaduct-nys/viaduct/pkg/commcare"
	"github.com/viaduct-nys/viaduct/pkg/countylist"
)

// transfer handles a case CommCare transferred to another county (§5.9): the update goes to the case at the end of
// the chain, in its domain. That case is found or created locally, for the same person, with the source's lab
// results it lacks; the source records that its update was rerouted; then the destination is posted like any
// update.
func (w *Worker) transfer(ctx context.Context, job *river.Job[casedb.CaseLoaderArgs], log *zap.Logger,
	counties *countylist.List, source *indexCase, ch chain) (outcome, error) {
	final := ch.end()
	county, ok := counties.ByDomain(final.domain)
	if !ok {
		return outcomeFailed, fmt.Errorf("no county in the county list has domain %s", final.domain)
	}
	fips, err := county.FIPSCode()
	if err != nil {
		return outcomeFailed, err
	}
	log = log.With(zap.String("transfer_chain", ch.String()))

	tx, err := w.db.Begin(ctx)
	if err != nil {
		return outcomeFailed, fmt.Errorf("beginning a transaction: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck
	dest, created, err := findOrCreateDestination(ctx, tx, source, final.c, fips)
	if err != nil {
		return outcomeFailed, err
	}
	copied, err := copyLabResults(ctx, tx, source.id, dest.id, final.c)
	if err != nil {
		return outcomeFailed, err
	}
	if _, err := casedb.RecordEvent(ctx, tx, source.id, casedb.EventSendToCommCareRerouted, map[string]any{
		"reason":                    "Update for this case sent to another case due to county transfer",
		"destination_index_case_id": dest.id,
		"destination_case_id":       dest.caseID,
		"destination_county_id":     fips,
		"transfer_chain":            ch.String(),
	}, ""); err != nil {
		return outcomeFailed, err
	}
	if _, err := applyCommCare(ctx, tx, dest, final.c); err != nil {
		return outcomeFailed, err
	}
	if err := tx.Commit(ctx); err != nil {
		return outcomeFailed, fmt.Errorf("committing the transfer: %w", err)
	}
	log.Info("the case was transferred in CommCare; sending the update to the destination case",
		zap.String("destination_case_id", dest.caseID), zap.Bool("destination_created", created),
		zap.Int("lab_results_copied", copied))
	return w.post(ctx, job, log, source, dest, county, actionUpdate)
}

// findOrCreateDestination returns the local index case for CommCare's destination case c, locked with its
// person's lock and the source person's, creating it in county fips for the source's person, with c's properties
// filled in from the source's data, when there is none. The destination may belong to another person, e.g. when
// Engine 5 imported it first.
func findOrCreateDestination(ctx context.Context, tx pgx.Tx, source *indexCase, c *commcare.Case, fips int64) (*indexCase, bool, error) {
	var id int64
	err := tx.QueryRow(ctx, `SELECT id FROM index_cases WHERE case_id = $1`, c.CaseID).Scan(&id)
	if err == nil {
		ic, err := lockIndexCase(ctx, tx, id, source.personID)
		return ic, false, err
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return nil, false, fmt.Errorf("reading the destination case %s: %w", c.CaseID, err)
	}
	if err := casedb.LockPeople(ctx, tx, []int64{source.personID}); err != nil {
		return nil, false, err
	}
	err = tx.QueryRow(ctx, `INSERT INTO index_cases (person_id, county_id, case_id, data) VALUES ($1, $2, $3, $4)
		RETURNING id`, source.personID, fips, c.CaseID, commcare.MergeEmptyFields(c.Data(), source.data)).Scan(&id)
	if err != nil {
		return nil, false, fmt.Errorf("creating the destination case %s: %w", c.CaseID, err)
	}
	if _, err := casedb.RecordEvent(ctx, tx, id, casedb.EventIndexCaseCreated,
		map[string]any{"transferred_from_case_id": source.caseID}, ""); err != nil {
		return nil, false, err
	}
	ic, err := lockIndexCase(ctx, tx, id)
	return ic, true, err
}

// copyLabResults gives the destination case each of the source's lab results it lacks, by accession number, with
// the source's data: ECLRS's data is authoritative. A copy takes the case id of the destination's lab_result child
// in CommCare with the same accession number, so CommCare's case is updated rather than duplicated; without one,
// it gets a new id.
func copyLabResults(ctx context.Context, tx pgx.Tx, sourceID, destID int64, dest *commcare.Case) (int, error) {
	children := map[string]string{}
	for id, child := range dest.ChildCases {
		if child.Type() == "lab_result" {
			if acc := child.Property("accession_number"); acc != "" {
				children[acc] = id
			}
		}
	}
	accessions := make([]string, 0, len(children))
	caseIDs := make([]string, 0, len(children))
	for acc, id := range children {
		accessions = append(accessions, acc)
		caseIDs = append(caseIDs, id)
	}
	tag, err := tx.Exec(ctx, `INSERT INTO lab_results (index_case_id, case_id, accession_number, data, tid)
		SELECT $2, coalesce(m.case_id, gen_random_uuid()::text), s.accession_number, s.data, s.tid
		  FROM lab_results s
		  LEFT JOIN unnest($3::text[], $4::text[]) AS m(accession_number, case_id) ON m.accession_number = s.accession_number
		 WHERE s.index_case_id = $1
		   AND NOT EXISTS (SELECT 1 FROM lab_results d WHERE d.index_case_id = $2 AND d.accession_number = s.accession_number)
		 ORDER BY s.inserted_at, s.id`, sourceID, destID, accessions, caseIDs)
	if err != nil {
		return 0, fmt.Errorf("copying lab results to the destination case: %w", err)
	}
	return int(tag.RowsAffected()), nil
}
