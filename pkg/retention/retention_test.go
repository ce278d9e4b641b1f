package retention_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/viaduct-nys/viaduct/pkg/advisory"
	"github.com/viaduct-nys/viaduct/pkg/casedb"
	"github.com/viaduct-nys/viaduct/pkg/eclrs"
	"github.com/viaduct-nys/viaduct/pkg/pgtest"
	"github.com/viaduct-nys/viaduct/pkg/poll"
	"github.com/viaduct-nys/viaduct/pkg/retention"
	"github.com/viaduct-nys/viaduct/pkg/tally"
	"github.com/viaduct-nys/viaduct/pkg/testfactory"
)

// window is the retention window of these tests; old rows are written twice as long ago.
const window = 30 * 24 * time.Hour

// history is a database holding one of each kind of row a purge strips, deletes or must keep, old (written 60 days
// ago) unless said otherwise.
type history struct {
	db *pgtest.DB
	// kept lists, per table, the ids of the rows a purge must leave exactly as they are.
	kept map[string][]int64
	// strippedResults are the finished old test results; checksums their identities, by id.
	strippedResults []int64
	checksums       map[int64][]byte
	// dirtyEvents are the old events with a stash or data to strip.
	dirtyEvents []int64
	// strippedPeople are the people whose every case is closed, posted and quiet; strippedCases their cases.
	strippedPeople, strippedCases []int64
	// postedCase is the stripped case with a lab result and a transfer source.
	postedCase int64
}

// newHistory builds a history in a fresh database.
func newHistory(t *testing.T) *history {
	t.Helper()
	ctx := t.Context()
	db := pgtest.New(t)
	h := &history{db: db, kept: map[string][]int64{}, checksums: map[int64][]byte{}}
	keep := func(table string, id int64) { h.kept[table] = append(h.kept[table], id) }
	pool := db.Pool
	testfactory.County(t, ctx, pool, 0)
	var fileID int64
	require.NoError(t, pool.QueryRow(ctx, `INSERT INTO files (filename, key, status) VALUES ('export.txt', 'export.txt',
		'imported') RETURNING id`).Scan(&fileID))

	// Test results: three finished, then one Engine 2 has not finished; a finished but recent one comes last.
	testResult := func(i int) {
		id := testfactory.TestResult(t, ctx, pool, &testfactory.TestResultOpts{TestResult: eclrs.TestResult{
			FileID: fileID, PatientKey: "1000" + string(rune('0'+i)), PatientNameFirst: "JANE", PatientNameLast: "DOE",
			PatientDOB: time.Date(1980, 1, 2, 0, 0, 0, 0, time.UTC), PatientAddress1: "1 Main St",
			RequestAccessionNumber: "ACC" + string(rune('0'+i)), EclrsCreateDate: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		}})
		_, err := pool.Exec(ctx, `UPDATE test_results SET raw_data = 'DOE|JANE|…', line_number = $2,
			patient_key_id = patient_key::bigint WHERE id = $1`, id, i+2)
		require.NoError(t, err)
		if i == 3 {
			keep("test_results", id)
			return
		}
		var reasoned int64
		require.NoError(t, pool.QueryRow(ctx, `WITH e AS (INSERT INTO events (type, data) VALUES
			    ('test_result_ignored', jsonb_build_object('reason', 'DOE, JANE', 'test_result_id', $1::bigint)),
			    ('processed', NULL) RETURNING id, type),
			  j AS (INSERT INTO test_result_events (test_result_id, event_id, finished)
			        SELECT $1, id, type = 'processed' FROM e)
			SELECT id FROM e WHERE type = 'test_result_ignored'`, id).Scan(&reasoned))
		if i == 4 {
			keep("test_results", id)
			keep("events", reasoned)
			return
		}
		h.strippedResults = append(h.strippedResults, id)
		h.dirtyEvents = append(h.dirtyEvents, reasoned)
		var sum []byte
		require.NoError(t, pool.QueryRow(ctx, `SELECT checksum FROM test_results WHERE id = $1`, id).Scan(&sum))
		h.checksums[id] = sum
	}
	for i := range 4 {
		testResult(i)
	}

	// Malformed rows, change logs and forwarded cases: one old now, one recent at the end.
	var recent struct{ rowError, changeLog int64 }
	others := func(i int, at string) {
		var rowError, changeLog int64
		require.NoError(t, pool.QueryRow(ctx, `INSERT INTO file_row_errors (file_id, line_number, field, reason, raw_data)
			VALUES ($1, $2, 'PIDCOUNTYCODE', 'not a decimal county code: "12a"', 'DOE|JANE|12a') RETURNING id`,
			fileID, 100+i).Scan(&rowError))
		require.NoError(t, pool.QueryRow(ctx, `INSERT INTO change_logs (source_type, source_id, destination_type,
			destination_id, previous_state, applied_changes) VALUES ('test_result', 1, 'index_case', 1,
			'{"full_name": "JANE DOE"}', '{"phone": "5551234"}') RETURNING id`).Scan(&changeLog))
		_, err := pool.Exec(ctx, `INSERT INTO commcare_case_inbox (domain, case_id, payload) VALUES ('midsomer', $1,
			'{"properties": {"full_name": "JANE DOE"}}')`, at)
		require.NoError(t, err)
		if at == "recent" {
			recent.rowError, recent.changeLog = rowError, changeLog
			keep("file_row_errors", rowError)
			keep("change_logs", changeLog)
		}
	}
	others(0, "old")

	// People. A case is posted when a send_to_commcare_succeeded follows its last change.
	succeeded := func(ic int64) int64 {
		return testfactory.Event(t, ctx, pool, &testfactory.EventOpts{IndexCaseID: ic,
			Type: casedb.EventSendToCommCareSucceeded, Stash: "<data><full_name>JANE DOE</full_name></data>",
			Data: map[string]any{"action": "create", "domain": "midsomer", "response": "<OpenRosaResponse>JANE</OpenRosaResponse>"}})
	}
	newCase := func(person int64, closed bool, data map[string]any) int64 {
		if data == nil {
			data = map[string]any{"full_name": "JANE DOE", "dob": "1980-01-02"}
		}
		return testfactory.IndexCase(t, ctx, pool, &testfactory.IndexCaseOpts{PersonID: person, Closed: closed, Data: data}).ID
	}
	person := func(key string) int64 {
		keys := []string{key}
		if key == "" {
			keys = []string{}
		}
		return testfactory.Person(t, ctx, pool, &testfactory.PersonOpts{PatientKeys: keys, NameFirst: "JANE",
			NameLast: "DOE" + key, DOB: time.Date(1980, 1, 2, 0, 0, 0, 0, time.UTC)})
	}
	keepPerson := func(p int64, cases ...int64) {
		keep("people", p)
		for _, ic := range cases {
			keep("index_cases", ic)
		}
	}

	// A: a closed case, created, given a lab result, posted: stripped.
	a := person("A1")
	h.postedCase = newCase(a, true, map[string]any{"full_name": "JANE DOE", "transfer_source_case_id": "case-before"})
	testfactory.LabResult(t, ctx, pool, &testfactory.LabResultOpts{IndexCaseID: h.postedCase,
		Data: map[string]any{"specimen_collection_date": "2026-01-01"}})
	testfactory.Event(t, ctx, pool, &testfactory.EventOpts{IndexCaseID: h.postedCase, Data: map[string]any{"test_result_id": 1}})
	h.dirtyEvents = append(h.dirtyEvents, succeeded(h.postedCase))
	// E: a closed case Engine 5 brought from CommCare (no change event) for a person without a key: stripped.
	e := person("")
	eCase := newCase(e, true, nil)
	testfactory.Event(t, ctx, pool, &testfactory.EventOpts{IndexCaseID: eCase, Type: casedb.EventRetrievedFromCommCare,
		Data: map[string]any{"domain": "midsomer", "lab_results": 0}})
	h.strippedPeople, h.strippedCases = []int64{a, e}, []int64{h.postedCase, eCase}

	// B: one closed case and one open: kept whole.
	b := person("B1")
	bClosed, bOpen := newCase(b, true, nil), newCase(b, false, nil)
	for _, ic := range []int64{bClosed, bOpen} {
		testfactory.Event(t, ctx, pool, &testfactory.EventOpts{IndexCaseID: ic})
		h.dirtyEvents = append(h.dirtyEvents, succeeded(ic))
	}
	keepPerson(b, bClosed, bOpen)
	// C: closed, but changed after its last post: kept.
	c := person("C1")
	cCase := newCase(c, true, nil)
	h.dirtyEvents = append(h.dirtyEvents, succeeded(cCase))
	testfactory.Event(t, ctx, pool, &testfactory.EventOpts{IndexCaseID: cCase, Type: casedb.EventIndexCaseUpdated})
	keepPerson(c, cCase)
	// F: closed and posted, but the case was written recently (Engine 5 merged CommCare's closing): kept.
	f := person("F1")
	fCase := newCase(f, true, nil)
	h.dirtyEvents = append(h.dirtyEvents, succeeded(fCase))
	keepPerson(f, fCase)

	// What is recent is written last, as it would be.
	// D: closed and posted, but the post is recent: kept, and so is the post's stash.
	d := person("D1")
	dCase := newCase(d, true, nil)
	keepPerson(d, dCase)
	keep("events", succeeded(dCase))
	testResult(4)
	others(1, "recent")

	// Everything is old but what is recent.
	for _, u := range []struct {
		sql string
		arg any
	}{
		{`UPDATE test_results SET inserted_at = now() - interval '60 days' WHERE id <> $1`, h.kept["test_results"][1]},
		{`UPDATE events SET inserted_at = now() - interval '60 days' WHERE id <> ALL($1)`, h.kept["events"]},
		{`UPDATE file_row_errors SET inserted_at = now() - interval '60 days' WHERE id <> $1`, recent.rowError},
		{`UPDATE change_logs SET inserted_at = now() - interval '60 days' WHERE id <> $1`, recent.changeLog},
		{`UPDATE commcare_case_inbox SET received_at = now() - interval '60 days' WHERE case_id <> $1`, "recent"},
		{`UPDATE index_cases SET inserted_at = now() - interval '60 days',
		    updated_at = now() - interval '60 days' * (id <> $1)::int`, fCase},
		{`UPDATE people SET inserted_at = now() - interval '60 days', updated_at = now() - interval '60 days'
		   WHERE id <> $1`, 0},
	} {
		_, err := pool.Exec(ctx, u.sql, u.arg)
		require.NoError(t, err, u.sql)
	}
	return h
}

// rows reads the rows of table with ids as JSON, by id.
func rows(t *testing.T, db *pgtest.DB, table string, ids []int64) map[int64]string {
	t.Helper()
	r, err := db.Pool.Query(t.Context(), `SELECT id, to_jsonb(t)::text FROM `+pgx.Identifier{table}.Sanitize()+
		` t WHERE id = ANY($1)`, ids)
	require.NoError(t, err)
	out := map[int64]string{}
	var id int64
	var row string
	_, err = pgx.ForEachRow(r, []any{&id, &row}, func() error { out[id] = row; return nil })
	require.NoError(t, err)
	return out
}

// snapshot reads every row a purge must keep.
func (h *history) snapshot(t *testing.T) map[string]map[int64]string {
	t.Helper()
	out := map[string]map[int64]string{}
	for table, ids := range h.kept {
		out[table] = rows(t, h.db, table, ids)
		require.Len(t, out[table], len(ids), table)
	}
	return out
}

// purger returns a purger of h's database with the test window, small batches and no pauses.
func (h *history) purger(t *testing.T, config retention.Config, deps retention.Deps) *retention.Purger {
	t.Helper()
	config.Window = window
	if config.BatchSize == 0 {
		config.BatchSize = 2
	}
	config.Pause = time.Millisecond
	deps.Pool = h.db.Pool
	p, err := retention.New(config, deps)
	require.NoError(t, err)
	return p
}

// counts are a result's rows per table.
func counts(res *retention.Result) map[string]int64 {
	out := map[string]int64{}
	for _, t := range res.Tables {
		out[t.Name] = t.Rows
	}
	return out
}

// wantPurged are the rows newHistory's purge strips or deletes, per table.
func (h *history) wantPurged() map[string]int64 {
	return map[string]int64{"test_results": 3, "file_row_errors": 1, "events": int64(len(h.dirtyEvents)),
		"change_logs": 1, "commcare_case_inbox": 1, "people": 2, "person_keys": 1, "index_cases": 2, "lab_results": 1}
}

// checkPurged checks h after a purge: every old row stripped or deleted as the package says, every row to keep as
// it was (before), the identities and the tallies as they were.
func (h *history) checkPurged(t *testing.T, before map[string]map[int64]string, tallies tally.Counts) {
	t.Helper()
	ctx := t.Context()
	pool := h.db.Pool
	require.Equal(t, before, h.snapshot(t), "rows a purge keeps are untouched")

	// Test results: the identity and where it came from, nothing else.
	var leftovers int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM test_results t,
		  jsonb_each(to_jsonb(t) - '{id,file_id,line_number,county_id,checksum,checksum_version,tid,inserted_at,updated_at}'::text[]) x
		 WHERE t.id = ANY($1) AND x.value <> 'null'`, h.strippedResults).Scan(&leftovers))
	require.Zero(t, leftovers, "stripped test results hold nothing but their identity")
	for id, sum := range h.checksums {
		var got []byte
		var line int
		require.NoError(t, pool.QueryRow(ctx, `SELECT checksum, line_number FROM test_results WHERE id = $1`, id).Scan(&got, &line))
		require.Equal(t, sum, got, "the identity stays")
		require.Positive(t, line)
	}

	// Malformed rows keep their file, line and field; change logs and the forwarded case are gone.
	var n int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM file_row_errors WHERE raw_data = '' AND reason = ''
		AND field = 'PIDCOUNTYCODE' AND line_number = 100`).Scan(&n))
	require.Equal(t, 1, n)
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM change_logs`).Scan(&n))
	require.Equal(t, 1, n)
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM commcare_case_inbox WHERE case_id = 'recent'`).Scan(&n))
	require.Equal(t, 1, n)
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM commcare_case_inbox`).Scan(&n))
	require.Equal(t, 1, n)

	// Old events: no stash, and of the data only ids, domains and outcomes.
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM events
		 WHERE inserted_at < now() - interval '30 days' AND (stash IS NOT NULL OR data - $1::text[] <> '{}')`,
		retention.EventKeys).Scan(&n))
	require.Zero(t, n)
	var postData string
	require.NoError(t, pool.QueryRow(ctx, `SELECT e.data::text FROM events e JOIN index_case_events j ON j.event_id = e.id
		 WHERE j.index_case_id = $1 AND e.type = $2`, h.postedCase, casedb.EventSendToCommCareSucceeded).Scan(&postData))
	require.JSONEq(t, `{"action": "create", "domain": "midsomer"}`, postData)

	// The quiet people: no names, date of birth, keys or data; their cases their ids and transfer source; their lab
	// results their ids.
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM people WHERE id = ANY($1) AND patient_keys = '{}'
		AND data = '{}' AND name_first IS NULL AND name_last IS NULL AND dob IS NULL`, h.strippedPeople).Scan(&n))
	require.Equal(t, len(h.strippedPeople), n)
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM person_keys WHERE person_id = ANY($1)`,
		h.strippedPeople).Scan(&n))
	require.Zero(t, n)
	var data string
	var closed bool
	require.NoError(t, pool.QueryRow(ctx, `SELECT data::text, closed FROM index_cases WHERE id = $1`, h.postedCase).
		Scan(&data, &closed))
	require.JSONEq(t, `{"transfer_source_case_id": "case-before"}`, data)
	require.True(t, closed)
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM index_cases WHERE id = ANY($1) AND purged_at IS NOT NULL
		AND data - 'transfer_source_case_id' = '{}'`, h.strippedCases).Scan(&n))
	require.Equal(t, len(h.strippedCases), n)
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM lab_results WHERE index_case_id = $1 AND data = '{}'
		AND accession_number = ''`, h.postedCase).Scan(&n))
	require.Equal(t, 1, n)

	got, err := tally.Read(ctx, pool)
	require.NoError(t, err)
	require.Equal(t, tallies, got, "the status page's totals stay as they were")
}

// TestPurge purges a history: a dry run first says what the purge then does, the purge strips and deletes what is
// old and keeps the rest, and a purge run again finds nothing.
func TestPurge(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	h := newHistory(t)
	before := h.snapshot(t)
	tallies, err := tally.Read(ctx, h.db.Pool)
	require.NoError(t, err)

	dry, err := h.purger(t, retention.Config{DryRun: true}, retention.Deps{}).Purge(ctx)
	require.NoError(t, err)
	require.True(t, dry.DryRun)
	require.Equal(t, h.wantPurged(), counts(dry))
	require.Equal(t, before, h.snapshot(t), "a dry run writes nothing")
	var n int
	require.NoError(t, h.db.Pool.QueryRow(ctx, `SELECT count(*) FROM retention_cursors`).Scan(&n))
	require.Zero(t, n, "a dry run moves no cursor")

	core, logs := observer.New(zap.InfoLevel)
	res, err := h.purger(t, retention.Config{}, retention.Deps{Logger: zap.New(core)}).Purge(ctx)
	require.NoError(t, err)
	require.Equal(t, h.wantPurged(), counts(res))
	require.Equal(t, "30d", res.Window)
	for i, table := range res.Tables {
		require.Equal(t, dry.Tables[i].Bytes, table.Bytes, "the dry run's bytes are the purge's: %s", table.Name)
		if table.Rows > 0 {
			require.Positive(t, table.Bytes, table.Name)
		}
	}
	h.checkPurged(t, before, tallies)
	require.Zero(t, logs.Len(), "Purge leaves logging to its caller")

	var recorded string
	require.NoError(t, h.db.Pool.QueryRow(ctx, `SELECT counts->'test_results'->>'rows' FROM purges`).Scan(&recorded))
	require.Equal(t, "3", recorded, "the purge is recorded, with its counts")

	again, err := h.purger(t, retention.Config{}, retention.Deps{}).Purge(ctx)
	require.NoError(t, err)
	require.Zero(t, again.Total(), "%+v", again.Tables)
	dry, err = h.purger(t, retention.Config{DryRun: true}, retention.Deps{}).Purge(ctx)
	require.NoError(t, err)
	require.Zero(t, dry.Total(), "%+v", dry.Tables)
	h.checkPurged(t, before, tallies)
}

// TestPurgeInterrupted stops purges part way, by cancelling one between batches and by failing a batch just before
// its commit as a crash would, and checks that each later purge finishes the work with nothing lost: what was
// committed stays purged, what must stay is untouched, and the end is what one purge makes.
func TestPurgeInterrupted(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	h := newHistory(t)
	before := h.snapshot(t)
	tallies, err := tally.Read(ctx, h.db.Pool)
	require.NoError(t, err)

	// Cancelled (SIGTERM) in the second batch of events, once the first has committed.
	cancelCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	batches := map[string]int{}
	_, err = h.purger(t, retention.Config{}, retention.Deps{BeforeCommitFunc: func(_ context.Context, table string) error {
		batches[table]++
		if table == "events" && batches[table] == 2 {
			cancel()
		}
		return nil
	}}).Purge(cancelCtx)
	require.ErrorIs(t, err, context.Canceled)
	require.Equal(t, 2, batches["events"])
	require.Zero(t, batches["change_logs"], "nothing after the cancel")
	var stripped int
	require.NoError(t, h.db.Pool.QueryRow(ctx, `SELECT count(*) FROM test_results WHERE raw_data IS NULL
		AND patient_key IS NULL AND id = ANY($1)`, h.strippedResults).Scan(&stripped))
	require.Equal(t, len(h.strippedResults), stripped, "the tables walked before the cancel are done")
	require.Equal(t, before, h.snapshot(t))

	// A crash just before a batch of change logs commits.
	crash := errors.New("killed")
	_, err = h.purger(t, retention.Config{}, retention.Deps{BeforeCommitFunc: func(_ context.Context, table string) error {
		if table == "change_logs" {
			return crash
		}
		return nil
	}}).Purge(ctx)
	require.ErrorIs(t, err, crash)
	var logs int
	require.NoError(t, h.db.Pool.QueryRow(ctx, `SELECT count(*) FROM change_logs`).Scan(&logs))
	require.Equal(t, 2, logs, "the crashed batch rolled back")
	var dirty int
	require.NoError(t, h.db.Pool.QueryRow(ctx, `SELECT count(*) FROM events WHERE stash IS NOT NULL
		AND inserted_at < now() - interval '30 days'`).Scan(&dirty))
	require.Zero(t, dirty, "the events were finished before the crash")

	// A crash in the middle of the people.
	_, err = h.purger(t, retention.Config{BatchSize: 10}, retention.Deps{BeforeCommitFunc: func(_ context.Context, table string) error {
		if table == "people" {
			return crash
		}
		return nil
	}}).Purge(ctx)
	require.ErrorIs(t, err, crash)
	require.Equal(t, before, h.snapshot(t))

	res, err := h.purger(t, retention.Config{}, retention.Deps{}).Purge(ctx)
	require.NoError(t, err)
	want := h.wantPurged()
	for _, done := range []string{"test_results", "file_row_errors", "events", "change_logs", "commcare_case_inbox"} {
		want[done] = 0 // committed before the interruptions
	}
	require.Equal(t, want, counts(res))
	h.checkPurged(t, before, tallies)
}

// TestPurgeLocks: a purge never waits long for an engine. A person another transaction holds (an engine merging into
// their cases) is left for the next purge; rows held longer than the lock timeout make the purge give up, after a
// few tries, rather than wait; and one purge runs at a time.
func TestPurgeLocks(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	h := newHistory(t)

	// A row lock held throughout, on the old change log: the batch meets it, tries again, and gives up.
	tx, err := h.db.Pool.Begin(ctx)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, `SELECT FROM change_logs WHERE id = (SELECT min(id) FROM change_logs) FOR UPDATE`)
	require.NoError(t, err)
	_, err = h.purger(t, retention.Config{LockTimeout: 10 * time.Millisecond}, retention.Deps{}).Purge(ctx)
	require.ErrorContains(t, err, "purging change_logs")
	require.ErrorContains(t, err, "lock timeout")
	require.NoError(t, tx.Rollback(ctx))

	// Another transaction holds the person lock of one of the quiet people, as Engine 5 merging into a case does.
	tx, err = h.db.Pool.Begin(ctx)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, advisory.Person(h.strippedPeople[0]))
	require.NoError(t, err)
	res, err := h.purger(t, retention.Config{}, retention.Deps{}).Purge(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 1, counts(res)["people"], "the held person is left")
	require.EqualValues(t, 1, counts(res)["change_logs"])
	require.NoError(t, tx.Rollback(ctx))
	res, err = h.purger(t, retention.Config{}, retention.Deps{}).Purge(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 1, counts(res)["people"], "and taken by the next purge")

	// The purge lock is taken: a second purge does not start.
	lockTx, err := h.db.Pool.Begin(ctx)
	require.NoError(t, err)
	defer lockTx.Rollback(ctx) //nolint:errcheck
	_, err = lockTx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, advisory.Key(advisory.Purge))
	require.NoError(t, err)
	_, err = h.purger(t, retention.Config{}, retention.Deps{}).Purge(ctx)
	require.ErrorIs(t, err, retention.ErrLocked)
	_, err = h.purger(t, retention.Config{DryRun: true}, retention.Deps{}).Purge(ctx)
	require.NoError(t, err, "a dry run writes nothing, so it needs no lock")
}

// TestPurgeChangedCase: a stripped case that Engine 5 later merges a tracer's edit into holds data again; the next
// purge finds it, keeps it while the edit is recent, and strips it again once it is old.
func TestPurgeChangedCase(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	h := newHistory(t)
	_, err := h.purger(t, retention.Config{}, retention.Deps{}).Purge(ctx)
	require.NoError(t, err)

	// Engine 5's merge: CommCare's values, updated_at, and an updated_from_commcare event in one transaction.
	merge := func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `UPDATE index_cases SET data = data || '{"full_name": "JANE DOE"}', updated_at = now()
			WHERE id = $1`, h.postedCase); err != nil {
			return err
		}
		_, err := casedb.RecordEvent(ctx, tx, h.postedCase, casedb.EventUpdatedFromCommCare,
			map[string]any{"properties": []string{"full_name"}, "closed": true, "domain": "midsomer"}, "")
		return err
	}
	require.NoError(t, pgx.BeginFunc(ctx, h.db.Pool, merge))

	res, err := h.purger(t, retention.Config{}, retention.Deps{}).Purge(ctx)
	require.NoError(t, err)
	require.Zero(t, counts(res)["index_cases"], "the edit is recent")
	var purged bool
	require.NoError(t, h.db.Pool.QueryRow(ctx, `SELECT purged_at IS NOT NULL FROM index_cases WHERE id = $1`,
		h.postedCase).Scan(&purged))
	require.False(t, purged, "the changed case is considered again")

	_, err = h.db.Pool.Exec(ctx, `UPDATE index_cases SET updated_at = now() - interval '40 days' WHERE id = $1;`, h.postedCase)
	require.NoError(t, err)
	_, err = h.db.Pool.Exec(ctx, `UPDATE events SET inserted_at = now() - interval '40 days'
		WHERE id IN (SELECT event_id FROM index_case_events WHERE index_case_id = $1)`, h.postedCase)
	require.NoError(t, err)
	res, err = h.purger(t, retention.Config{}, retention.Deps{}).Purge(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 1, counts(res)["index_cases"])
	var data string
	require.NoError(t, h.db.Pool.QueryRow(ctx, `SELECT data::text FROM index_cases WHERE id = $1`, h.postedCase).Scan(&data))
	require.JSONEq(t, `{"transfer_source_case_id": "case-before"}`, data)
}

// TestRetentionSchedule: the schedule purges after its first delay, logs the counts at Info, and skips a purge
// while another runs.
func TestRetentionSchedule(t *testing.T) {
	t.Parallel()
	h := newHistory(t)

	t.Run("Purges", func(t *testing.T) {
		core, logs := observer.New(zap.InfoLevel)
		p := h.purger(t, retention.Config{FirstDelay: time.Millisecond, Interval: time.Hour},
			retention.Deps{Logger: zap.New(core)})
		p.TestSignals.Init(t)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- p.Run(ctx) }()
		require.Equal(t, poll.Outcome{Result: poll.Busy}, p.TestSignals.PassDone.WaitOrTimeout())
		cancel()
		require.NoError(t, <-done)
		entries := logs.FilterMessage("purged personal data older than the retention window").All()
		require.Len(t, entries, 1)
		fields := entries[0].ContextMap()
		require.EqualValues(t, 3, fields["test_results"])
		require.EqualValues(t, 2, fields["people"])
		require.Equal(t, "30d", fields["older_than"])
	})

	t.Run("SkipsWhileAnotherPurges", func(t *testing.T) {
		lockTx, err := h.db.Pool.Begin(t.Context())
		require.NoError(t, err)
		defer lockTx.Rollback(t.Context()) //nolint:errcheck
		_, err = lockTx.Exec(t.Context(), `SELECT pg_advisory_xact_lock($1)`, advisory.Key(advisory.Purge))
		require.NoError(t, err)
		p := h.purger(t, retention.Config{FirstDelay: time.Millisecond, Interval: time.Hour}, retention.Deps{})
		p.TestSignals.Init(t)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- p.Run(ctx) }()
		require.Equal(t, poll.Outcome{Result: poll.Skipped}, p.TestSignals.PassDone.WaitOrTimeout())
		cancel()
		require.NoError(t, <-done)
	})
}

// TestRetentionConfig: a window below the minimum, or no window, is refused, with every problem at once.
func TestRetentionConfig(t *testing.T) {
	t.Parallel()
	_, err := retention.New(retention.Config{Window: 13 * 24 * time.Hour, BatchSize: -1}, retention.Deps{})
	require.ErrorContains(t, err, "window 13d is below the minimum of 14d")
	require.ErrorContains(t, err, "batch size -1")
	require.ErrorContains(t, err, "a database pool is required")
	_, err = retention.New(retention.Config{}, retention.Deps{})
	require.ErrorContains(t, err, "window 0s is below the minimum")
	require.Equal(t, "36h0m0s", retention.FormatWindow(36*time.Hour))
	require.Equal(t, "90d", retention.FormatWindow(90*24*time.Hour))
}
