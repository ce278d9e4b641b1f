package e2

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/viaduct-nys/viaduct/pkg/advisory"
	"github.com/viaduct-nys/viaduct/pkg/casedb"
	"github.com/viaduct-nys/viaduct/pkg/countylist"
	"go.uber.org/zap"
)

// person is a people row as a batch sees it.
type person struct {
	id      int64
	keys    []string
	first   string // upper-cased first token of the first name; "" is NULL
	last    string // upper-cased last name; "" is NULL
	dob     time.Time
	created bool     // inserted by this batch
	added   []string // patient keys to prepend, oldest first
}

// nameKey is the (date of birth, last name, first name) people are matched on when the patient key is unknown.
type nameKey struct {
	dob         time.Time
	last, first string
}

// indexCase is an index_cases row as a batch sees it.
type indexCase struct {
	id       int64
	personID int64
	countyID int64
	caseID   string
	closed   bool
	data     map[string]any
	created  bool // inserted by this batch
	dirty    bool // data changed by this batch
}

// labResult is a lab_results row as a batch sees it. Its id is assigned when the batch is written.
type labResult struct {
	id        int64
	indexCase *indexCase
	accession string
	data      map[string]any
	created   bool
	dirty     bool
}

// changeLog is a change_logs row: what one test result added to a case or lab result and what it was not allowed
// to overwrite.
type changeLog struct {
	testResultID int64
	indexCase    *indexCase // destination when lab is nil
	lab          *labResult
	previous     map[string]any
	applied      map[string]any
	dropped      map[string]any
}

// batch is one transaction's worth of test results with everything they are matched against. Rules run in memory
// over it, in test result id order, so a person or case created for one result is found by the next; the outcome is
// written at the end with a few set-based statements.
type batch struct {
	engine   *Engine
	now      time.Time
	counties *countylist.List
	results  []claimed

	byKey  map[string]*person
	byName map[nameKey]*person
	people []*person              // every person loaded or created, in order
	cases  map[int64][]*indexCase // by person id, in id order
	labs   map[int64][]*labResult // by index case id, in id order; only the accession numbers of this batch

	personIDs []int64 // pre-allocated ids for people this batch may create
	caseIDs   []int64 // and for index cases

	newLabs       []*labResult
	changeLogs    []changeLog
	events        []event
	retries       []retry
	clearAttempts []int64 // finished test results that had a test_result_attempts row

	ignored, failed int
	stepTimes       []zap.Field // how long each write step took, for the debug log
}

func (e *Engine) newBatch(results []claimed) *batch {
	return &batch{
		engine:   e,
		now:      e.deps.Now(),
		counties: e.deps.Counties.Current(),
		results:  results,
		byKey:    map[string]*person{},
		byName:   map[nameKey]*person{},
		cases:    map[int64][]*indexCase{},
		labs:     map[int64][]*labResult{},
	}
}

// processBatch runs one transaction: claim, lock, load, decide, write, commit. It returns the ids it claimed, also
// when it fails, so the caller can retry them one at a time.
func (e *Engine) processBatch(ctx context.Context, claimFn func(pgx.Tx) ([]claimed, error)) ([]int64, error) {
	tx, err := e.deps.Pool.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("beginning a transaction: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck

	// Every lookup of a batch is by key, through an index. The tables can grow faster than autovacuum refreshes their
	// statistics (from empty to 200,000 rows in a minute while a backlog drains), and on stale statistics the planner
	// picks sequential scans that cost a hundred times more.
	if _, err := tx.Exec(ctx, "SET LOCAL enable_seqscan = off"); err != nil {
		return nil, fmt.Errorf("setting up the transaction: %w", err)
	}
	t0 := time.Now()
	results, err := claimFn(tx)
	e.mu.Lock()
	if e.stats.FirstClaim == 0 {
		e.stats.FirstClaim = time.Since(t0)
	}
	e.mu.Unlock()
	if err != nil || len(results) == 0 {
		return nil, err
	}
	ids := make([]int64, len(results))
	for i := range results {
		ids[i] = results[i].ID
	}
	t1 := time.Now()
	b := e.newBatch(results)
	plans := b.plan()
	if err := b.load(ctx, tx, plans); err != nil {
		return ids, err
	}
	for i := range plans {
		b.apply(&plans[i])
	}
	t2 := time.Now()
	if err := b.write(ctx, tx); err != nil {
		return ids, err
	}
	if err := tx.Commit(ctx); err != nil {
		return ids, fmt.Errorf("committing: %w", err)
	}
	t3 := time.Now()
	if e.logger.Core().Enabled(zap.DebugLevel) {
		e.logger.Debug("batch committed", zap.Int("test_results", len(results)),
			zap.Int("events", len(b.events)), zap.Duration("claim", t1.Sub(t0)), zap.Duration("match", t2.Sub(t1)),
			zap.Duration("write", t3.Sub(t2)), zap.Dict("write_steps", b.stepTimes...))
	}

	e.mu.Lock()
	e.stats.Batches++
	e.stats.Results += len(results) - len(b.retries)
	e.stats.Ignored += b.ignored
	e.stats.Failed += b.failed
	e.stats.Retried += len(b.retries)
	e.stats.Claim += t1.Sub(t0)
	e.stats.Match += t2.Sub(t1)
	e.stats.Write += t3.Sub(t2)
	e.mu.Unlock()
	e.deps.Metrics.observeBatch(b, t1.Sub(t0), t2.Sub(t1), t3.Sub(t2))
	return ids, nil
}

// load takes the person locks for the batch and reads the people, index cases and lab results its test results can
// match.
func (b *batch) load(ctx context.Context, tx pgx.Tx, plans []plan) error {
	var keys []string
	var lockKeys []int64
	var dobs []pgtype.Date
	var lasts, firsts []string
	accessions := map[string]bool{}
	need := 0
	for i := range plans {
		p := &plans[i]
		if p.outcome != outcomeMatch {
			continue
		}
		need++
		accessions[p.tr.RequestAccessionNumber] = true
		if p.tr.PatientKey != "" {
			keys = append(keys, p.tr.PatientKey)
		}
		// One lock per result, on the identity most likely to be shared: the name when there is one (results of one
		// person under different keys meet there), else the key. The locks only keep batches from colliding: the
		// unique indexes on person_keys and on people's name and date of birth make a duplicate person impossible
		// whatever the locks, by failing the later batch, which is then tried again.
		if p.name != nil {
			lockKeys = append(lockKeys, advisory.PersonName(p.name.dob, p.name.last, p.name.first))
			dobs = append(dobs, pgtype.Date{Time: p.name.dob, Valid: true})
			lasts = append(lasts, p.name.last)
			firsts = append(firsts, p.name.first)
		} else if p.tr.PatientKey != "" {
			lockKeys = append(lockKeys, advisory.PersonKey(p.tr.PatientKey))
		}
	}
	if need == 0 {
		return nil
	}
	// Phase one: the identities this batch may match or create people under. Taken in one sorted sweep, so two
	// batches never wait on each other in a cycle.
	if err := casedb.LockIdentities(ctx, tx, lockKeys); err != nil {
		return err
	}
	rows, err := tx.Query(ctx, `
		SELECT p.id, array_remove(p.patient_keys, NULL), coalesce(p.name_first, ''), coalesce(p.name_last, ''), p.dob
		  FROM person_keys k JOIN people p ON p.id = k.person_id
		 WHERE k.patient_key = ANY($1::text[])
		UNION
		SELECT p.id, array_remove(p.patient_keys, NULL), coalesce(p.name_first, ''), coalesce(p.name_last, ''), p.dob
		  FROM people p
		  JOIN unnest($2::date[], $3::text[], $4::text[]) AS n(dob, last, first)
		    ON p.dob = n.dob AND p.name_last = n.last AND p.name_first = n.first
		 ORDER BY 1`, keys, dobs, lasts, firsts)
	if err != nil {
		return fmt.Errorf("loading people: %w", err)
	}
	var existing []int64
	for rows.Next() {
		p := &person{}
		var dob pgtype.Date
		if err := rows.Scan(&p.id, &p.keys, &p.first, &p.last, &dob); err != nil {
			rows.Close()
			return fmt.Errorf("reading a person: %w", err)
		}
		if dob.Valid {
			p.dob = dob.Time
		}
		b.addPerson(p)
		existing = append(existing, p.id)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("loading people: %w", err)
	}
	// Phase two: the people themselves, so that nobody else changes their index cases and lab results between this
	// read and the commit, whichever identity they matched the person under.
	if err := casedb.LockPeople(ctx, tx, existing); err != nil {
		return err
	}
	if len(existing) > 0 {
		if err := b.loadCases(ctx, tx, existing, accessions); err != nil {
			return err
		}
	}
	return b.allocateIDs(ctx, tx, need)
}

func (b *batch) loadCases(ctx context.Context, tx pgx.Tx, people []int64, accessions map[string]bool) error {
	rows, err := tx.Query(ctx, `SELECT id, person_id, county_id, case_id, closed, data
		  FROM index_cases WHERE person_id = ANY($1) ORDER BY id`, people)
	if err != nil {
		return fmt.Errorf("loading index cases: %w", err)
	}
	byID := map[int64]*indexCase{}
	var caseIDs []int64
	for rows.Next() {
		ic := &indexCase{}
		if err := rows.Scan(&ic.id, &ic.personID, &ic.countyID, &ic.caseID, &ic.closed, &ic.data); err != nil {
			rows.Close()
			return fmt.Errorf("reading an index case: %w", err)
		}
		if ic.data == nil {
			ic.data = map[string]any{}
		}
		b.cases[ic.personID] = append(b.cases[ic.personID], ic)
		byID[ic.id] = ic
		caseIDs = append(caseIDs, ic.id)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("loading index cases: %w", err)
	}
	if len(caseIDs) == 0 {
		return nil
	}
	// By case only: with the accession numbers as a second array condition the index is probed for every pair of
	// the two arrays, a million probes a batch. A case has few lab results; those of other accessions are dropped here.
	rows, err = tx.Query(ctx, `SELECT id, index_case_id, accession_number, data
		  FROM lab_results WHERE index_case_id = ANY($1) ORDER BY id`, caseIDs)
	if err != nil {
		return fmt.Errorf("loading lab results: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		lr := &labResult{}
		var caseID int64
		if err := rows.Scan(&lr.id, &caseID, &lr.accession, &lr.data); err != nil {
			return fmt.Errorf("reading a lab result: %w", err)
		}
		if !accessions[lr.accession] {
			continue
		}
		if lr.data == nil {
			lr.data = map[string]any{}
		}
		lr.indexCase = byID[caseID]
		b.labs[caseID] = append(b.labs[caseID], lr)
	}
	return rows.Err()
}

// allocateIDs reserves ids for the people and index cases the batch may create (at most one of each per test
// result), so that data maps, which carry a person's external id, can be built in memory. Unused ids are gaps.
func (b *batch) allocateIDs(ctx context.Context, tx pgx.Tx, n int) error {
	rows, err := tx.Query(ctx, `SELECT nextval('people_id_seq'), nextval('index_cases_id_seq') FROM generate_series(1, $1)`, n)
	if err != nil {
		return fmt.Errorf("allocating ids: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var p, c int64
		if err := rows.Scan(&p, &c); err != nil {
			return fmt.Errorf("allocating ids: %w", err)
		}
		b.personIDs = append(b.personIDs, p)
		b.caseIDs = append(b.caseIDs, c)
	}
	return rows.Err()
}

func (b *batch) addPerson(p *person) {
	b.people = append(b.people, p)
	for _, k := range p.keys {
		if prev, ok := b.byKey[k]; !ok || p.id < prev.id {
			// A key shared by two people (possible only through data edited elsewhere) matches the older one.
			b.byKey[k] = p
		}
	}
	if p.first != "" && p.last != "" && !p.dob.IsZero() {
		b.byName[nameKey{p.dob, p.last, p.first}] = p
	}
}
