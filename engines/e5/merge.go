package e5

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"go.uber.org/zap"

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
	outcomeStale                    // a known case's change older than the last one merged (the original's stale_data)
)

// Stats counts what a round did to cases, and how often CommCare's rate limits slowed it.
type Stats struct {
	Updated, Unchanged, Created, Own, Skipped, Failed int
	// RateLimited counts the case list requests CommCare answered 429 Too Many Requests: each is waited out and
	// asked again, so it is not a failure. Deferred counts the domains whose reading the waits cut short, past the
	// round's budget: they continue next round, and are not failures either.
	RateLimited, Deferred int
}

func (s *Stats) count(o outcome) {
	switch o {
	case outcomeUpdated:
		s.Updated++
	case outcomeUnchanged, outcomeStale: // read by polling, a change older than the one merged is nothing new
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
	s.RateLimited += o.RateLimited
	s.Deferred += o.Deferred
}

func (s *Stats) fields() []zap.Field {
	return []zap.Field{zap.Int("updated", s.Updated), zap.Int("unchanged", s.Unchanged), zap.Int("created", s.Created),
		zap.Int("own_posts", s.Own), zap.Int("skipped", s.Skipped), zap.Int("failed", s.Failed),
		zap.Int("rate_limited", s.RateLimited), zap.Int("domains_deferred", s.Deferred)}
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

// mergeCase merges one CommCare patient case from domain (county fips), as polling reads it, in a transaction of
// its own (mergeTx has the rules). A case two writers create at once (polling and forwarding, or two daemons) is
// found by the loser's unique index, which merges it again as a known case.
func (e *Engine) mergeCase(ctx context.Context, c *commcare.Case, domain string, fips int64) (outcome, error) {
	if c.Domain == "" {
		c.Domain = domain
	}
	m := merger{own: e.config.OwnUserIDs}
	if m.isOwn(c) {
		return outcomeOwn, nil
	}
	for attempt := 1; ; attempt++ {
		tx, err := e.deps.Pool.Begin(ctx)
		if err != nil {
			return 0, fmt.Errorf("beginning a transaction: %w", err)
		}
		out, err := m.mergeTx(ctx, tx, c, fips, false)
		if err == nil {
			if err = tx.Commit(ctx); err != nil {
				err = fmt.Errorf("committing case %s: %w", c.CaseID, err)
			}
		}
		_ = tx.Rollback(context.WithoutCancel(ctx))
		if err == nil {
			return out, nil
		}
		if attempt == 1 && isUniqueViolation(err) {
			continue
		}
		return 0, err
	}
}

// merger merges CommCare's patient cases into Viaduct's, for polling (Engine.mergeCase) and for forwarded cases
// (Importer), with one set of rules.
type merger struct {
	// own are Viaduct's own CommCare user ids: a change by one of them is Viaduct's own post coming back.
	own []string
}

// isOwn reports whether c's last change was Viaduct's own.
func (m merger) isOwn(c *commcare.Case) bool {
	return c.UserID != "" && slices.Contains(m.own, c.UserID)
}

// errNeedsFullCase: the case is new to Viaduct and lacks what creating it needs (its lab results, or a patient it
// can name), as a forwarded case may; the case API's copy has it.
var errNeedsFullCase = errors.New("the case lacks what creating it needs")

// mergeTx merges c, from county fips, in tx (§6.3 and §7.3 of the reference):
//   - Viaduct's own post coming back is skipped;
//   - a case Viaduct has takes CommCare's changes (CommCare's non-blank values win, as in Engine 4), unless Viaduct
//     already merged a later change of it (by date_modified, the original's stale_data); its lab results are left
//     alone;
//   - otherwise, unless the rules keep it out, the case is created with its lab results for its person
//     (findOrMakePerson). When the case lacks its child cases, or names nobody Viaduct can find or make, mergeTx
//     returns errNeedsFullCase if fetchable (a forwarded case: the importer fetches it and merges that), and
//     otherwise creates it without lab results or skips it.
//
// Merging the same change twice changes nothing the second time.
func (m merger) mergeTx(ctx context.Context, tx pgx.Tx, c *commcare.Case, fips int64, fetchable bool) (outcome, error) {
	if m.isOwn(c) {
		return outcomeOwn, nil
	}
	out, err := m.mergeKnown(ctx, tx, c)
	if errors.Is(err, errUnknown) {
		return m.create(ctx, tx, c, fips, fetchable)
	}
	return out, err
}

// errUnknown: Viaduct has no index case with that case id.
var errUnknown = errors.New("unknown case")

// mergeKnown merges c into the index case with its case id, under the person's lock and the row's. A change older
// than the last one merged is stale and changes nothing; the same one again is unchanged.
func (m merger) mergeKnown(ctx context.Context, tx pgx.Tx, c *commcare.Case) (outcome, error) {
	id, data, closed, err := casedb.FindAndLockIndexCase(ctx, tx, c.CaseID)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, errUnknown
	}
	if err != nil {
		return 0, err
	}
	modified, hasModified := dateModified(c)
	var merged *time.Time
	if err := tx.QueryRow(ctx, `SELECT commcare_date_modified FROM index_cases WHERE id = $1`, id).Scan(&merged); err != nil {
		return 0, fmt.Errorf("reading index case %d: %w", id, err)
	}
	if hasModified && merged != nil && modified.Before(*merged) {
		return outcomeStale, nil
	}
	_, changed, err := casedb.MergeIntoIndexCase(ctx, tx, id, data, closed, c)
	if err != nil {
		return 0, err
	}
	if len(changed) > 0 || closed != c.Closed {
		return outcomeUpdated, nil
	}
	if hasModified && (merged == nil || modified.After(*merged)) {
		// Nothing to merge, but this change is now the last one seen: an older one arriving late is stale.
		if _, err := tx.Exec(ctx, `UPDATE index_cases SET commcare_date_modified = $2 WHERE id = $1`, id, modified); err != nil {
			return 0, fmt.Errorf("recording index case %d's date_modified: %w", id, err)
		}
	}
	return outcomeUnchanged, nil
}

// dateModified returns c's date_modified, and false when it has none that parses.
func dateModified(c *commcare.Case) (time.Time, bool) {
	t, err := commcare.ParseTime(c.DateModified)
	return t, err == nil
}

// create stores c as a new index case in county fips with its lab results, for the person it names.
func (m merger) create(ctx context.Context, tx pgx.Tx, c *commcare.Case, fips int64, fetchable bool) (outcome, error) {
	if reason := skipReason(c); reason != "" {
		return outcomeSkipped, nil
	}
	if c.ChildCases == nil && fetchable {
		// Forwarded without child_cases: creating it now would leave its lab results out for good, since a known
		// case's lab results are never merged.
		return 0, errNeedsFullCase
	}
	labs := labResults(c)
	who := caseIdentity(c, labs)
	if err := casedb.LockIdentities(ctx, tx, who.lockKeys()); err != nil {
		return 0, err
	}
	personID, _, err := findOrMakePerson(ctx, tx, who)
	if errors.Is(err, errNoIdentity) {
		if fetchable {
			return 0, errNeedsFullCase
		}
		// Nobody to match or make; the original skipped these too.
		return outcomeSkipped, nil
	}
	if err != nil {
		return 0, err
	}
	if err := casedb.LockPeople(ctx, tx, []int64{personID}); err != nil {
		return 0, err
	}
	var modified any
	if t, ok := dateModified(c); ok {
		modified = t
	}
	labIDs := make([]string, len(labs))
	accessions := make([]string, len(labs))
	labData := make([]map[string]any, len(labs))
	for i, l := range labs {
		labIDs[i], accessions[i], labData[i] = l.caseID, l.accession, l.data
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

// isUniqueViolation reports whether err is PostgreSQL's unique_violation: here, another transaction created the same
// case (or the same person) first.
func isUniqueViolation(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505"
}
