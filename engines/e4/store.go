package e4

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/viaduct-nys/viaduct/pkg/casedb"
)

// errCaseMissing is a job for an index case the database does not have; no retry can help it.
var errCaseMissing = errors.New("no such index case")

// indexCase is the part of an index_cases row Engine 4 posts.
type indexCase struct {
	id         int64
	personID   int64
	countyID   int64
	caseID     string
	data       map[string]any
	closed     bool
	insertedAt time.Time
	// seen is the id of the case's newest change event when the row was read, in the same statement: a newer
	// change after the post means CommCare did not get it.
	seen int64
}

// labResult is the part of a lab_results row Engine 4 posts.
type labResult struct {
	caseID     string
	accession  string
	data       map[string]any
	insertedAt time.Time
}

// newestChange is the id of the newest change event of the index case aliased ic (0 when it has none); $1 is
// casedb.ChangeEventTypes.
var newestChange = `(SELECT coalesce(max(x.event_id), 0) FROM ` + casedb.CaseEventsSQL("ic.id") + ` x
	  WHERE x.type = ANY($1))`

// indexCaseColumns reads an index case aliased ic with its newest change event id; $1 is
// casedb.ChangeEventTypes.
var indexCaseColumns = `ic.id, ic.person_id, ic.county_id, ic.case_id, ic.data, ic.closed, ic.inserted_at, ` + newestChange

func scanIndexCase(row pgx.Row) (*indexCase, error) {
	var ic indexCase
	if err := row.Scan(&ic.id, &ic.personID, &ic.countyID, &ic.caseID, &ic.data, &ic.closed, &ic.insertedAt, &ic.seen); err != nil {
		return nil, err
	}
	return &ic, nil
}

// loadIndexCase reads the index case with CommCare case id caseID; errCaseMissing when there is none.
func loadIndexCase(ctx context.Context, db casedb.DBTX, caseID string) (*indexCase, error) {
	ic, err := scanIndexCase(db.QueryRow(ctx, `SELECT `+indexCaseColumns+` FROM index_cases ic WHERE case_id = $2`,
		casedb.ChangeEventTypes, caseID))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("index case %s: %w", caseID, errCaseMissing)
	}
	if err != nil {
		return nil, fmt.Errorf("reading index case %s: %w", caseID, err)
	}
	return ic, nil
}

// lockIndexCase locks the index case with id and the other people given (casedb.LockIndexCase) and reads the
// case as it now stands.
func lockIndexCase(ctx context.Context, tx pgx.Tx, id int64, people ...int64) (*indexCase, error) {
	if err := casedb.LockIndexCase(ctx, tx, id, people...); err != nil {
		return nil, err
	}
	ic, err := scanIndexCase(tx.QueryRow(ctx, `SELECT `+indexCaseColumns+` FROM index_cases ic WHERE id = $2`,
		casedb.ChangeEventTypes, id))
	if err != nil {
		return nil, fmt.Errorf("reading index case %d: %w", id, err)
	}
	return ic, nil
}

// loadLabResults reads an index case's lab results in the order they arrived.
func loadLabResults(ctx context.Context, db casedb.DBTX, indexCaseID int64) ([]labResult, error) {
	rows, err := db.Query(ctx, `SELECT case_id, accession_number, data, inserted_at FROM lab_results
		 WHERE index_case_id = $1 ORDER BY inserted_at, id`, indexCaseID)
	if err != nil {
		return nil, fmt.Errorf("reading the lab results of index case %d: %w", indexCaseID, err)
	}
	labs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (labResult, error) {
		var l labResult
		err := row.Scan(&l.caseID, &l.accession, &l.data, &l.insertedAt)
		return l, err
	})
	if err != nil {
		return nil, fmt.Errorf("reading the lab results of index case %d: %w", indexCaseID, err)
	}
	return labs, nil
}

// lastChange returns the id of the index case's newest change event (0 when it has none). Comparing it before
// and after a post tells whether the case changed meanwhile.
func lastChange(ctx context.Context, db casedb.DBTX, indexCaseID int64) (int64, error) {
	var id int64
	err := db.QueryRow(ctx, `SELECT `+newestChange+` FROM index_cases ic WHERE ic.id = $2`,
		casedb.ChangeEventTypes, indexCaseID).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("reading the changes of index case %d: %w", indexCaseID, err)
	}
	return id, nil
}

// lastPost returns the fingerprint of the last payload posted successfully for the index case to domain, and when.
func lastPost(ctx context.Context, db casedb.DBTX, indexCaseID int64, domain string) (fp [sha256.Size]byte, at time.Time, ok bool, err error) {
	var sum []byte
	err = db.QueryRow(ctx, `SELECT payload_sha256, posted_at FROM commcare_posts WHERE index_case_id = $1 AND domain = $2`,
		indexCaseID, domain).Scan(&sum, &at)
	if errors.Is(err, pgx.ErrNoRows) {
		return fp, at, false, nil
	}
	if err != nil {
		return fp, at, false, fmt.Errorf("reading the last post of index case %d: %w", indexCaseID, err)
	}
	copy(fp[:], sum)
	return fp, at, true, nil
}

// savePost records fp as the payload last posted successfully for the index case to domain.
func savePost(ctx context.Context, db casedb.DBTX, indexCaseID int64, domain string, fp [sha256.Size]byte, at time.Time) error {
	_, err := db.Exec(ctx, `INSERT INTO commcare_posts (index_case_id, domain, payload_sha256, posted_at)
		VALUES ($1, $2, $3, $4)
		ON CONFLICT (index_case_id, domain) DO UPDATE SET payload_sha256 = excluded.payload_sha256, posted_at = excluded.posted_at`,
		indexCaseID, domain, fp[:], at)
	if err != nil {
		return fmt.Errorf("recording the post of index case %d: %w", indexCaseID, err)
	}
	return nil
}

// casesTransferredFrom returns the case ids of the local index cases, in any county, whose data says they were
// transferred from sourceCaseID.
func casesTransferredFrom(ctx context.Context, db casedb.DBTX, sourceCaseID string) ([]string, error) {
	rows, err := db.Query(ctx, `SELECT case_id FROM index_cases WHERE data->>'transfer_source_case_id' = $1
		 ORDER BY id LIMIT 2`, sourceCaseID)
	if err != nil {
		return nil, fmt.Errorf("looking for cases transferred from %s: %w", sourceCaseID, err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("looking for cases transferred from %s: %w", sourceCaseID, err)
	}
	return ids, nil
}
