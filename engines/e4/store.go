package e4

import (
	"context"
	"crypto/sha256"
	"encoding/json"
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

// newestChangeOf is the id of the newest change event of the index case whose id is the SQL expression caseID (0
// when it has none); $1 is casedb.ChangeEventTypes.
func newestChangeOf(caseID string) string {
	return `(SELECT coalesce(max(x.event_id), 0) FROM ` + casedb.CaseEventsSQL(caseID) + ` x WHERE x.type = ANY($1))`
}

// indexCaseColumns reads an index case aliased ic with its newest change event id; $1 is
// casedb.ChangeEventTypes.
var indexCaseColumns = `ic.id, ic.person_id, ic.county_id, ic.case_id, ic.data, ic.closed, ic.inserted_at, ` +
	newestChangeOf("ic.id")

func scanIndexCase(row pgx.Row) (*indexCase, error) {
	var ic indexCase
	if err := row.Scan(&ic.id, &ic.personID, &ic.countyID, &ic.caseID, &ic.data, &ic.closed, &ic.insertedAt, &ic.seen); err != nil {
		return nil, err
	}
	return &ic, nil
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

// caseToPost is an index case with what posting it to a domain takes: its lab results, in the order they arrived,
// and the last payload posted successfully for it to that domain.
type caseToPost struct {
	*indexCase
	labs []labResult
	// posted says whether a payload was posted successfully to the domain: lastSum is its fingerprint, lastAt
	// when it was posted.
	posted  bool
	lastSum [sha256.Size]byte
	lastAt  time.Time
}

// caseToPostSQL reads an index case aliased ic, its lab results (one array per column, in the order they arrived)
// and its last post to a domain in one statement; $1 is casedb.ChangeEventTypes, $3 the domain, and where picks the
// case with $2.
func caseToPostSQL(where string) string {
	return `SELECT ` + indexCaseColumns + `, l.case_ids, l.accessions, l.data, l.inserted_at,
	       p.payload_sha256, p.posted_at
	  FROM index_cases ic
	  CROSS JOIN LATERAL (SELECT array_agg(case_id ORDER BY inserted_at, id) AS case_ids,
	                             array_agg(accession_number ORDER BY inserted_at, id) AS accessions,
	                             array_agg(data ORDER BY inserted_at, id) AS data,
	                             array_agg(inserted_at ORDER BY inserted_at, id) AS inserted_at
	                        FROM lab_results WHERE index_case_id = ic.id) l
	  LEFT JOIN commcare_posts p ON p.index_case_id = ic.id AND p.domain = $3
	 WHERE ` + where
}

var (
	caseToPostByID     = caseToPostSQL("ic.id = $2")
	caseToPostByCaseID = caseToPostSQL("ic.case_id = $2")
)

// findCaseToPost reads the index case with CommCare case id caseID as loadCaseToPost does; errCaseMissing when
// there is none.
func findCaseToPost(ctx context.Context, db casedb.DBTX, caseID, domain string) (*caseToPost, error) {
	c, err := scanCaseToPost(db.QueryRow(ctx, caseToPostByCaseID, casedb.ChangeEventTypes, caseID, domain))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("index case %s: %w", caseID, errCaseMissing)
	}
	if err != nil {
		return nil, fmt.Errorf("reading index case %s and its lab results: %w", caseID, err)
	}
	return c, nil
}

// loadCaseToPost reads the index case with id as it now stands, with its newest change, its lab results and its
// last post to domain.
func loadCaseToPost(ctx context.Context, db casedb.DBTX, id int64, domain string) (*caseToPost, error) {
	c, err := scanCaseToPost(db.QueryRow(ctx, caseToPostByID, casedb.ChangeEventTypes, id, domain))
	if err != nil {
		return nil, fmt.Errorf("reading index case %d and its lab results: %w", id, err)
	}
	return c, nil
}

func scanCaseToPost(row pgx.Row) (*caseToPost, error) {
	var (
		c                   = caseToPost{indexCase: &indexCase{}}
		ic                  = c.indexCase
		caseIDs, accessions []string
		data                []map[string]any
		insertedAt          []time.Time
		sum                 []byte
		at                  *time.Time
	)
	err := row.Scan(&ic.id, &ic.personID, &ic.countyID, &ic.caseID, &ic.data, &ic.closed, &ic.insertedAt, &ic.seen,
		&caseIDs, &accessions, &data, &insertedAt, &sum, &at)
	if err != nil {
		return nil, err
	}
	c.labs = make([]labResult, len(caseIDs))
	for i := range c.labs {
		c.labs[i] = labResult{caseID: caseIDs[i], accession: accessions[i], data: data[i], insertedAt: insertedAt[i]}
	}
	if at != nil {
		c.posted, c.lastAt = true, *at
		copy(c.lastSum[:], sum)
	}
	return &c, nil
}

// genericPlans is a SQL expression that has PostgreSQL use generic plans for the rest of the transaction, for River's
// JobCompleteTx. PostgreSQL plans River's statement (JobSetStateIfRunningMany) afresh every time: its generic plan
// is estimated for ten jobs, its custom plan for the one being completed, so the custom plan always looks cheaper,
// though both are the same index scans. Planning it took three times as long as running it (0.46 against 0.17 ms)
// and a fifth of PostgreSQL's CPU per job in make bench-e4.
const genericPlans = `set_config('plan_cache_mode', 'force_generic_plan', true)`

// recordSuccess records target's post as succeeded (a send_to_commcare_succeeded event with data and stash, as
// casedb.RecordEvent writes it) and fp, when not nil, as the payload last posted successfully for target to domain
// at at. It reports whether target, or source when it is another case, has a change newer than the one it was read
// with (indexCase.seen): then CommCare did not get that change. The caller holds the people's locks, so every
// change committed before is seen. One statement does all three for the target, to save two round trips; its
// shape does not depend on its arguments, so PostgreSQL plans it once per connection.
//
// The same statement has the rest of the transaction use generic plans (genericPlans): what is left of it is
// River's completing of the job.
func recordSuccess(ctx context.Context, tx pgx.Tx, source, target *indexCase, domain string, data map[string]any,
	stash string, fp *[sha256.Size]byte, at time.Time) (changed bool, err error) {
	raw, err := json.Marshal(data)
	if err != nil {
		return false, fmt.Errorf("recording the post of index case %d: encoding its event: %w", target.id, err)
	}
	var sum []byte
	if fp != nil {
		sum = fp[:]
	}
	var newest int64
	err = tx.QueryRow(ctx, `WITH ev AS (INSERT INTO events (type, data, stash) VALUES ($6, $7, NULLIF($8, ''))
		     RETURNING id),
		  link AS (INSERT INTO index_case_events (index_case_id, event_id) SELECT $2, id FROM ev),
		  saved AS (INSERT INTO commcare_posts (index_case_id, domain, payload_sha256, posted_at)
		     SELECT $2, $3, $4, $5 WHERE $4::bytea IS NOT NULL
		     ON CONFLICT (index_case_id, domain) DO UPDATE
		       SET payload_sha256 = excluded.payload_sha256, posted_at = excluded.posted_at)
		SELECT `+newestChangeOf("$2::bigint")+`, `+genericPlans,
		casedb.ChangeEventTypes, target.id, domain, sum, at, casedb.EventSendToCommCareSucceeded, raw, stash).Scan(&newest,
		nil) // the setting's new value
	if err != nil {
		return false, fmt.Errorf("recording the post of index case %d: %w", target.id, err)
	}
	if newest > target.seen || source.id == target.id {
		// The source, when it is the target, was read once, fresher than at the job's start.
		return newest > target.seen, nil
	}
	err = tx.QueryRow(ctx, `SELECT `+newestChangeOf("$2::bigint"), casedb.ChangeEventTypes, source.id).Scan(&newest)
	if err != nil {
		return false, fmt.Errorf("reading the changes of index case %d: %w", source.id, err)
	}
	return newest > source.seen, nil
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
