//go:build bench

package cli

// The history `make bench-history` measures on, built quickly.
//
// How the generated history mirrors what the engines write. The base is not generated at all: a 500,000-row export
// (eclrsgen) goes through the real binary — `viaduct extract`, `viaduct run --e2 --until-idle`, `viaduct run --e3
// --until-idle` — so files, test_results, people, person_keys, index_cases, lab_results, change_logs, events and
// both join tables hold exactly what Engines 1 to 3 write, with their shapes, JSON and event sequences. What the
// later engines leave is added in their shapes: Engine 4's outcome for every index case (a
// send_to_commcare_succeeded event whose stash is the form Engine 4 would post, built with pkg/commcare's Form as
// engines/e4/payload.go builds it, its data {action, domain, timestamp, response} and a commcare_posts row with the
// form's fingerprint), and Engine 5's merges for a tenth of the cases (updated_from_commcare with CommCare-side
// properties merged into the case, as casedb.MergeIntoIndexCase writes it) and a new case with one lab result for
// one person in a hundred (retrieved_from_commcare, as engines/e5/merge.go creates it), plus each domain's mark.
// River's jobs from the Engine 3 run are deleted: Engine 4 completes them and River's cleaner removes completed jobs.
//
// The history is then grown by copying that base whole, set-based, one INSERT … SELECT per table and copy (one
// transaction per copy, two copies at a time): ids come from each table's sequence (a block reserved per copy, so a
// copied row's id is its original's plus the block's offset, and every reference — person, case, lab result, test
// result, event, file, and the ids inside event data — is shifted the same way); checksums are sha256(checksum ||
// copy number); patient keys get the copy number as a two-digit prefix (people.patient_keys and person_keys alike,
// as every writer of patient_keys writes both); accession numbers a "-<copy>" suffix; last names a generational
// suffix (II, III, …) so no copy collides with the base on people's unique date of birth and name; case ids are
// fresh (gen_random_uuid()), and the copied stash names the copy's case; raw_data (the line as ECLRS sent it, when
// kept) and change logs' JSON are copied as they are. Timestamps move back: the base's times are stretched from the
// minutes its build took over a week, copy k's ending k-1 weeks before the base's newest; rows the engines wrote
// together (a batch's events, in one transaction) keep sharing a time, as in a running system. The copy reads the
// columns each table has, so it follows the schema it finds. The tallies follow by themselves (statement triggers
// on people, index_cases, lab_results, file_row_errors and events), except test_results, whose tally row is added
// in the copy's transaction as Engine 1 adds its own.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"golang.org/x/sync/errgroup"

	"github.com/viaduct-nys/viaduct/migrations"
	"github.com/viaduct-nys/viaduct/pkg/casedb"
	"github.com/viaduct-nys/viaduct/pkg/commcare"
	"github.com/viaduct-nys/viaduct/pkg/commcare/commcaretest"
	"github.com/viaduct-nys/viaduct/pkg/countylist"
	"github.com/viaduct-nys/viaduct/pkg/eclrs/eclrsgen"
	"github.com/viaduct-nys/viaduct/pkg/pgtest"
)

// historyDB is one of the benchmark's own databases. pgtest's always drop at cleanup; these are kept with
// BENCH_KEEP=1, so a large history can be looked at afterwards.
type historyDB struct {
	Name string
	URL  string
}

// keepDatabases reports whether the benchmark's databases outlive it (BENCH_KEEP=1).
func keepDatabases() bool { return os.Getenv("BENCH_KEEP") == "1" }

// createHistoryDB creates a database: a clone of template when given (a file copy, so it takes seconds however
// large the template is), else an empty one migrated here. It is dropped at cleanup unless BENCH_KEEP=1.
func createHistoryDB(t *testing.T, ctx context.Context, name, template string) *historyDB {
	t.Helper()
	name = name + "_" + randomHex(4)
	sql := "CREATE DATABASE " + pgx.Identifier{name}.Sanitize()
	if template != "" {
		// FILE_COPY copies the files instead of writing every block to the write-ahead log (PostgreSQL's default
		// since 15): gigabytes take seconds, and the checkpoint it needs is one the benchmark takes anyway.
		sql += " TEMPLATE " + pgx.Identifier{template}.Sanitize() + " STRATEGY = FILE_COPY"
	}
	adminExec(t, ctx, sql)
	db := &historyDB{Name: name, URL: databaseURL(name)}
	t.Cleanup(func() {
		if keepDatabases() {
			t.Logf("kept database %s (BENCH_KEEP=1)", name)
			return
		}
		db.drop(t)
	})
	if template == "" {
		pool := db.pool(t, ctx)
		_, err := migrations.Up(ctx, pool)
		pool.Close()
		require.NoError(t, err)
	}
	return db
}

// drop drops the database now, unless BENCH_KEEP=1; the large ones go as soon as they are measured.
func (db *historyDB) drop(t *testing.T) {
	t.Helper()
	if keepDatabases() {
		return
	}
	adminExec(t, context.Background(), "DROP DATABASE IF EXISTS "+pgx.Identifier{db.Name}.Sanitize()+" WITH (FORCE)")
}

func (db *historyDB) pool(t *testing.T, ctx context.Context) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(ctx, db.URL)
	require.NoError(t, err)
	return pool
}

func adminExec(t *testing.T, ctx context.Context, sql string) {
	t.Helper()
	conn, err := pgx.Connect(ctx, pgtest.ServerURL())
	require.NoError(t, err)
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql)
	require.NoError(t, err, sql)
}

func databaseURL(name string) string {
	u, err := url.Parse(pgtest.ServerURL())
	if err != nil {
		panic(err)
	}
	u.Path = "/" + name
	return u.String()
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// exports writes the benchmark's ECLRS exports: rows of one seed over New York's participating counties, so any two
// files whose row ranges overlap share those rows, as consecutive rolling exports do.
type exports struct {
	dir      string
	seed     int64
	counties []int64
}

func newExports(dir string, seed int64) *exports {
	e := &exports{dir: dir, seed: seed}
	for _, c := range commcaretest.NewYorkCounties() {
		if n, err := strconv.ParseInt(c.FIPS, 10, 64); err == nil && c.Participating && !c.Statewide {
			e.counties = append(e.counties, n)
		}
	}
	return e
}

// write writes rows [first, first+n) to a file named name and returns its path.
func (e *exports) write(t *testing.T, name string, first, n int) string {
	t.Helper()
	path := filepath.Join(e.dir, name)
	f, err := os.Create(path)
	require.NoError(t, err)
	require.NoError(t, eclrsgen.Write(f, eclrsgen.Options{Rows: n, FirstRow: first, Seed: e.seed, Counties: e.counties}))
	require.NoError(t, f.Close())
	return path
}

// runViaduct runs the binary against databaseURL and returns its wall-clock time and its log. It fails the test
// when the process fails.
func runViaduct(t *testing.T, databaseURL string, args ...string) (time.Duration, string) {
	t.Helper()
	cmd := exec.Command(viaductBin, args...)
	cmd.Env = append(os.Environ(), "DATABASE_URL="+databaseURL)
	var logs bytes.Buffer
	cmd.Stderr = &logs
	start := time.Now()
	err := cmd.Run()
	took := time.Since(start)
	require.NoError(t, err, "viaduct %s:\n%s", strings.Join(args, " "), logs.String())
	return took, logs.String()
}

// e2Args runs Engine 2 until idle on the benchmark's exports: the county list of New York, and the generated
// results' 2021 dates after the ignore date.
func e2Args(countyFile string) []string {
	return []string{"run", "--e2", "--until-idle", "--http-addr", "", "--log-format", "json",
		"--county-list-file", countyFile, "--e2-ignore-before", "2020-01-01"}
}

// historyBase is the base every history is grown from, in a database used only as a template.
type historyBase struct {
	db *historyDB
	// export is the file of the base's rows.
	export string
	rows   int
	took   time.Duration
}

// buildHistoryBase runs Engines 1 to 3 on rows [0, rows) and adds Engine 4's and Engine 5's outcomes.
func buildHistoryBase(t *testing.T, ctx context.Context, ex *exports, rows int, countyFile string) *historyBase {
	t.Helper()
	start := time.Now()
	db := createHistoryDB(t, ctx, "viaduct_bench_history_base", "")
	path := ex.write(t, "base.txt", 0, rows)
	var stages []string
	stage := func(name string, since time.Time) {
		stages = append(stages, fmt.Sprintf("%s %s", name, time.Since(since).Round(100*time.Millisecond)))
	}
	e1Start := time.Now()
	res, _ := extract(t, viaductBin, db.URL, path)
	require.EqualValues(t, rows, res.New)
	stage("Engine 1", e1Start)
	e2Took, logs := runViaduct(t, db.URL, e2Args(countyFile)...)
	final := parseE2Final(t, logs)
	require.Equal(t, rows, final.Results)
	require.Zero(t, final.Failed)
	stages = append(stages, fmt.Sprintf("Engine 2 %s", e2Took.Round(100*time.Millisecond)))
	// Statistics as autovacuum would have them by the time a running system's Engine 3 looks: on tables just
	// bulk-loaded, with none, Engine 3's pass plans a hash over every event for each case (minutes per thousand
	// cases) instead of its index lookups.
	pool := db.pool(t, ctx)
	defer pool.Close()
	_, err := pool.Exec(ctx, `ANALYZE`)
	require.NoError(t, err)
	// Engine 3 with the largest batches and no pause between them: the hand-off of every case is the base's
	// history, not something measured.
	e3Took, _ := runViaduct(t, db.URL, "run", "--e3", "--until-idle", "--http-addr", "", "--log-format", "json",
		"--e3-batch-size", "10000", "--e3-busy-poll-interval", "1ms")
	stages = append(stages, fmt.Sprintf("Engine 3 %s", e3Took.Round(100*time.Millisecond)))

	// River's cleaner deletes completed jobs a day after they complete, and the space they took is used again; a
	// whole history's jobs deleted at once would leave a table of dead space no running system has.
	for _, sql := range []string{`DELETE FROM river_job`, `VACUUM FULL river_job`} {
		_, err = pool.Exec(ctx, sql)
		require.NoError(t, err)
	}
	e4Start := time.Now()
	require.NoError(t, addEngine4Outcomes(ctx, pool))
	stage("Engine 4's outcomes", e4Start)
	e5Start := time.Now()
	require.NoError(t, addEngine5Merges(ctx, pool))
	stage("Engine 5's", e5Start)
	// The base is history too. Left at the time it was built, its events would count as the last hour's and day's
	// work on the status page at every size, which a running system's last hour never holds; so its times move back
	// two days, as its copies' move back further, and the tables are rewritten without the old row versions.
	ageStart := time.Now()
	for _, sql := range []string{
		`UPDATE events SET inserted_at = inserted_at - interval '2 days'`,
		`UPDATE test_results SET inserted_at = inserted_at - interval '2 days', updated_at = updated_at - interval '2 days'`,
		`UPDATE files SET inserted_at = inserted_at - interval '2 days', updated_at = updated_at - interval '2 days',
		        event_time = event_time - interval '2 days', processing_started_at = processing_started_at - interval '2 days',
		        processing_completed_at = processing_completed_at - interval '2 days'`,
		`UPDATE index_cases SET inserted_at = inserted_at - interval '2 days', updated_at = updated_at - interval '2 days'`,
		`UPDATE lab_results SET inserted_at = inserted_at - interval '2 days', updated_at = updated_at - interval '2 days'`,
		`UPDATE change_logs SET inserted_at = inserted_at - interval '2 days'`,
		`UPDATE commcare_posts SET posted_at = posted_at - interval '2 days'`,
		`VACUUM FULL events, test_results, files, index_cases, lab_results, change_logs, commcare_posts`,
	} {
		_, err = pool.Exec(ctx, sql)
		require.NoError(t, err, sql)
	}
	stage("aged two days", ageStart)
	t.Logf("base built in %s: %s", time.Since(start).Round(time.Second), strings.Join(stages, ", "))
	return &historyBase{db: db, export: path, rows: rows, took: time.Since(start)}
}

// e4Unassigned and e4CaseWorkerNotes are the properties Engine 4 leaves out of its forms (engines/e4/payload.go).
var (
	e4Unassigned = []string{"assigned_to_primary_checkin_case_id", "assigned_to_primary_name",
		"assigned_to_primary_username", "assigned_to_temp_checkin_case_id", "assigned_to_temp_name",
		"assigned_to_temp_username"}
	e4CaseWorkerNotes = []string{"created_manually", "lab_result_notes", "most_recent_lab_result_note"}
)

// e4SubmitSuccess is CommCare's answer to an accepted form, which Engine 4 records as the event's response.
const e4SubmitSuccess = `<OpenRosaResponse xmlns="http://openrosa.org/http/response">` +
	`<message nature="submit_success">   √   </message></OpenRosaResponse>`

// historyCase and historyLab are what Engine 4 reads of an index case and its lab results.
type historyCase struct {
	id         int64
	caseID     string
	countyID   int64
	data       map[string]any
	insertedAt time.Time
}

type historyLab struct {
	caseID     string
	accession  string
	data       map[string]any
	insertedAt time.Time
}

// addEngine4Outcomes records, on every index case, the post that created it in CommCare: the event, its stash
// (the form) and the commcare_posts row, as Engine 4's worker records them when the post succeeds. Cases are taken
// in chunks, two at a time; the forms are built here, the compression of their text is PostgreSQL's.
func addEngine4Outcomes(ctx context.Context, pool *pgxpool.Pool) error {
	counties := map[int64]countylist.County{}
	for _, c := range commcaretest.NewYorkCounties() {
		if n, err := strconv.ParseInt(c.FIPS, 10, 64); err == nil {
			counties[n] = c
		}
	}
	var maxID int64
	if err := pool.QueryRow(ctx, `SELECT coalesce(max(id), 0) FROM index_cases`).Scan(&maxID); err != nil {
		return err
	}
	now := time.Now().UTC().Truncate(time.Second)
	const chunk = 2000
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(2)
	for lo := int64(0); lo < maxID; lo += chunk {
		g.Go(func() error { return addPosts(gctx, pool, counties, lo, lo+chunk, now) })
	}
	return g.Wait()
}

// addPosts records the posts of the index cases with ids in (lo, hi], in one transaction.
func addPosts(ctx context.Context, pool *pgxpool.Pool, counties map[int64]countylist.County, lo, hi int64, now time.Time) error {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck
	rows, err := tx.Query(ctx, `SELECT id, case_id, county_id, data, inserted_at FROM index_cases
		 WHERE id > $1 AND id <= $2 ORDER BY id`, lo, hi)
	if err != nil {
		return err
	}
	cases, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (historyCase, error) {
		var c historyCase
		err := r.Scan(&c.id, &c.caseID, &c.countyID, &c.data, &c.insertedAt)
		return c, err
	})
	if err != nil || len(cases) == 0 {
		return err
	}
	rows, err = tx.Query(ctx, `SELECT index_case_id, case_id, accession_number, data, inserted_at FROM lab_results
		 WHERE index_case_id > $1 AND index_case_id <= $2 ORDER BY index_case_id, inserted_at, id`, lo, hi)
	if err != nil {
		return err
	}
	labs := map[int64][]historyLab{}
	for rows.Next() {
		var id int64
		var l historyLab
		if err := rows.Scan(&id, &l.caseID, &l.accession, &l.data, &l.insertedAt); err != nil {
			rows.Close()
			return err
		}
		labs[id] = append(labs[id], l)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	var eventIDs []int64
	if err := tx.QueryRow(ctx, `SELECT array_agg(nextval('events_id_seq') ORDER BY g) FROM generate_series(1, $1) AS g`,
		len(cases)).Scan(&eventIDs); err != nil {
		return err
	}
	var events, joins, posts [][]any
	for i, c := range cases {
		county, ok := counties[c.countyID]
		if !ok {
			return fmt.Errorf("index case %d: county %d is not in the county list", c.id, c.countyID)
		}
		form := historyForm(c, labs[c.id], county, now)
		xml, err := form.XML()
		if err != nil {
			return fmt.Errorf("index case %d: %w", c.id, err)
		}
		fp, err := form.Fingerprint()
		if err != nil {
			return fmt.Errorf("index case %d: %w", c.id, err)
		}
		data, err := json.Marshal(map[string]any{"action": "create", "domain": county.Domain,
			"timestamp": now.Format(time.RFC3339), "response": e4SubmitSuccess})
		if err != nil {
			return err
		}
		events = append(events, []any{eventIDs[i], casedb.EventSendToCommCareSucceeded, json.RawMessage(data), string(xml)})
		joins = append(joins, []any{c.id, eventIDs[i]})
		posts = append(posts, []any{c.id, county.Domain, fp[:]})
	}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"events"}, []string{"id", "type", "data", "stash"}, pgx.CopyFromRows(events)); err != nil {
		return err
	}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"index_case_events"}, []string{"index_case_id", "event_id"}, pgx.CopyFromRows(joins)); err != nil {
		return err
	}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"commcare_posts"}, []string{"index_case_id", "domain", "payload_sha256"}, pgx.CopyFromRows(posts)); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// historyForm is the form Engine 4 posts to create c with its lab results (engines/e4/payload.go, buildForm): the
// patient case owned by the county's location with the dates of its newest lab result, each lab result an
// extension case of it.
func historyForm(c historyCase, labs []historyLab, county countylist.County, now time.Time) commcare.Form {
	data := maps.Clone(c.data)
	for _, k := range e4Unassigned {
		delete(data, k)
	}
	data["owner_id"] = county.LocationID
	specimen, received := "", c.insertedAt
	for i, l := range labs {
		if d, ok := l.data["specimen_collection_date"].(string); ok && d > specimen {
			specimen = d
		}
		if i == len(labs)-1 {
			received = l.insertedAt
		}
	}
	if specimen == "" {
		specimen = c.insertedAt.In(newYork).Format(time.DateOnly)
	}
	data["new_lab_result_specimen_collection_date"] = specimen
	data["new_lab_result_received_date"] = received.In(newYork).Format(time.DateOnly)
	data["new_lab_result_received"] = "yes"
	name, _ := data["full_name"].(string)
	const userID = "5d8f0c2a9b4e4f7d8c1a2b3c4d5e6f70" // a CommCare user id's shape
	blocks := []commcare.CaseBlock{{CaseID: c.caseID, DateModified: now, UserID: userID, CaseType: "patient",
		CaseName: &name, OwnerID: county.LocationID, Update: data}}
	for _, l := range labs {
		ld := maps.Clone(l.data)
		for _, k := range e4CaseWorkerNotes {
			delete(ld, k)
		}
		ld["accession_number"] = l.accession
		ld["owner_id"] = "-"
		blocks = append(blocks, commcare.CaseBlock{CaseID: l.caseID, CaseType: "lab_result", OwnerID: "-", Update: ld,
			Parent: &commcare.CaseIndex{CaseID: c.caseID, CaseType: "patient", Relationship: "extension"}})
	}
	return commcare.Form{Cases: blocks, Now: now, Username: "viaduct", UserID: userID, InstanceID: commcare.NewInstanceID()}
}

var newYork = func() *time.Location {
	loc, err := time.LoadLocation("America/New_York")
	if err != nil {
		panic(err)
	}
	return loc
}()

// tracerEdits are properties a contact tracer sets in CommCare, which Engine 5 merges into the case. None is
// patient data.
var tracerEdits = map[string]any{"current_status": "open", "interview_attempted": "yes",
	"interview_disposition": "reached_completed_investigation", "isolation_start_date": "2021-03-28",
	"isolation_end_date": "2021-04-07", "hospitalized": "no", "symptomatic": "yes", "stub": "no"}

// addEngine5Merges leaves what Engine 5's rounds leave: a tenth of the cases took a tracer's edits
// (updated_from_commcare), one person in a hundred has a case created in CommCare and pulled back with a lab result
// (retrieved_from_commcare), and every domain has a mark.
func addEngine5Merges(ctx context.Context, pool *pgxpool.Pool) error {
	edits, err := json.Marshal(tracerEdits)
	if err != nil {
		return err
	}
	tx, err := pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck
	for _, sql := range []string{
		`WITH picked AS (
		      UPDATE index_cases ic SET data = ic.data || $1::jsonb, commcare_date_modified = now() - interval '1 hour',
		             updated_at = now()
		       WHERE ic.id % 10 = 3 RETURNING ic.id, ic.data->>'county_commcare_domain' AS domain),
		  ids AS (SELECT id, domain, nextval('events_id_seq') AS e FROM picked ORDER BY id),
		  ev AS (INSERT INTO events (id, type, data)
		         SELECT e, 'updated_from_commcare', jsonb_build_object('properties', $2::jsonb, 'closed', false, 'domain', domain)
		           FROM ids)
		INSERT INTO index_case_events (index_case_id, event_id) SELECT id, e FROM ids`,
		`CREATE TEMP TABLE retrieved ON COMMIT DROP AS
		  SELECT nextval('index_cases_id_seq') AS id, s.*
		    FROM (SELECT DISTINCT ON (person_id) id AS source_id, person_id, county_id, data
		            FROM index_cases WHERE person_id % 100 = 7 ORDER BY person_id, id) s`,
		`INSERT INTO index_cases (id, person_id, county_id, case_id, data, commcare_date_modified)
		  SELECT id, person_id, county_id, gen_random_uuid()::text,
		         (data - '{new_lab_result_received,new_lab_result_received_date,new_lab_result_specimen_collection_date}'::text[])
		           || $1::jsonb,
		         now() - interval '2 hours'
		    FROM retrieved`,
		`INSERT INTO lab_results (index_case_id, case_id, accession_number, data)
		  SELECT r.id, gen_random_uuid()::text, l.accession_number || '-CC', l.data
		    FROM retrieved r
		    CROSS JOIN LATERAL (SELECT accession_number, data FROM lab_results WHERE index_case_id = r.source_id
		                         ORDER BY id LIMIT 1) l`,
		`WITH ids AS (SELECT id, data->>'county_commcare_domain' AS domain, nextval('events_id_seq') AS e
		                FROM retrieved ORDER BY id),
		  ev AS (INSERT INTO events (id, type, data)
		         SELECT e, 'retrieved_from_commcare', jsonb_build_object('domain', domain, 'lab_results', 1) FROM ids)
		INSERT INTO index_case_events (index_case_id, event_id) SELECT id, e FROM ids`,
		`INSERT INTO commcare_sync_marks (domain, high_water, round_started_at, round_completed_at)
		  SELECT DISTINCT data->>'county_commcare_domain', now() - interval '5 minutes', now() - interval '5 minutes',
		         now() - interval '4 minutes'
		    FROM index_cases WHERE data ? 'county_commcare_domain'
		  ON CONFLICT (domain) DO NOTHING`,
	} {
		var args []any
		if strings.Contains(sql, "$2") {
			args = []any{string(edits), slices.Sorted(maps.Keys(tracerEdits))}
		} else if strings.Contains(sql, "$1") {
			args = []any{string(edits)}
		}
		if _, err := tx.Exec(ctx, sql, args...); err != nil {
			return fmt.Errorf("%s: %w", firstLine(sql), err)
		}
	}
	return tx.Commit(ctx)
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return line
}

// grownTables are the tables a copy of the base writes, in an order their foreign keys allow, with each table's
// columns rewritten for the copy. Expressions see the source row as s and use the copy's placeholders:
// {k} the copy number, {key} its patient-key prefix, {sfx} its name suffix, {off:table} the id offset of table,
// {max:table} the base's largest id of table, {at:s.column} the copy's time for the timestamp in s.column. Columns
// a table does not have are skipped, so the copy follows the schema it finds.
var grownTables = []struct {
	table string
	// from joins other tables to s; where limits s to the base.
	from, where string
	set         map[string]string
	omit        []string
}{{
	table: "files",
	where: "s.id <= {max:files}",
	set: map[string]string{
		"id": "s.id + {off:files}", "key": "s.key || '#history-copy-{k}'", "filename": "s.filename || ' (history copy {k})'",
		"event_time": "{at:s.event_time}", "processing_started_at": "{at:s.processing_started_at}",
		"processing_completed_at": "{at:s.processing_completed_at}",
		"inserted_at":             "{at:s.inserted_at}", "updated_at": "{at:s.updated_at}",
	},
}, {
	table: "test_results",
	where: "s.id <= {max:test_results}",
	set: map[string]string{
		"id": "s.id + {off:test_results}", "file_id": "s.file_id + {off:files}",
		"checksum":    "sha256(s.checksum || int4send({k}))",
		"patient_key": "'{key}' || s.patient_key",
		"patient_key_id": `CASE WHEN s.patient_key_id IS NOT NULL AND s.patient_key ~ '^[0-9]{1,16}$'
		                        THEN ('{key}' || s.patient_key)::bigint END`,
		"patient_name_last":        "s.patient_name_last || '{sfx}'",
		"request_accession_number": "s.request_accession_number || '-{k}'",
		"inserted_at":              "{at:s.inserted_at}", "updated_at": "{at:s.updated_at}",
	},
}, {
	table: "file_row_errors",
	where: "s.id <= {max:file_row_errors}",
	set: map[string]string{"id": "s.id + {off:file_row_errors}", "file_id": "s.file_id + {off:files}",
		"inserted_at": "{at:s.inserted_at}"},
}, {
	table: "people",
	where: "s.id <= {max:people}",
	set: map[string]string{
		"id": "s.id + {off:people}", "patient_keys": "ARRAY(SELECT '{key}' || k FROM unnest(s.patient_keys) AS k)",
		"name_last":   "s.name_last || '{sfx}'",
		"inserted_at": "{at:s.inserted_at}", "updated_at": "{at:s.updated_at}",
	},
}, {
	table: "person_keys",
	where: "s.person_id <= {max:people}",
	set:   map[string]string{"patient_key": "'{key}' || s.patient_key", "person_id": "s.person_id + {off:people}"},
}, {
	table: "index_cases",
	where: "s.id <= {max:index_cases}",
	set: map[string]string{
		"id": "s.id + {off:index_cases}", "person_id": "s.person_id + {off:people}", "case_id": "gen_random_uuid()::text",
		"data": `s.data || jsonb_strip_nulls(jsonb_build_object(
			'doh_mpi_id', CASE WHEN s.data ? 'doh_mpi_id' THEN 'P' || (s.person_id + {off:people}) END,
			'external_id', CASE WHEN s.data ? 'external_id' THEN 'P' || (s.person_id + {off:people}) END,
			'last_name', CASE WHEN jsonb_typeof(s.data->'last_name') = 'string' THEN (s.data->>'last_name') || '{sfx}' END,
			'full_name', CASE WHEN coalesce(s.data->>'full_name', '') <> '' THEN (s.data->>'full_name') || '{sfx}' END,
			'name', CASE WHEN coalesce(s.data->>'name', '') <> '' THEN (s.data->>'name') || '{sfx}' END,
			'name_and_id', CASE WHEN s.data ? 'name_and_id'
			                    THEN coalesce(s.data->>'full_name', '') || '{sfx} (P' || (s.person_id + {off:people}) || ')' END))`,
		"commcare_date_modified": "{at:s.commcare_date_modified}",
		"inserted_at":            "{at:s.inserted_at}", "updated_at": "{at:s.updated_at}",
	},
}, {
	table: "lab_results",
	from:  "JOIN index_cases ic ON ic.id = s.index_case_id",
	where: "s.id <= {max:lab_results}",
	set: map[string]string{
		"id": "s.id + {off:lab_results}", "index_case_id": "s.index_case_id + {off:index_cases}",
		"case_id": "gen_random_uuid()::text", "accession_number": "s.accession_number || '-{k}'",
		"data": `s.data || jsonb_strip_nulls(jsonb_build_object(
			'accession_number', CASE WHEN jsonb_typeof(s.data->'accession_number') = 'string'
			                         THEN (s.data->>'accession_number') || '-{k}' END,
			'doh_mpi_id', CASE WHEN s.data ? 'doh_mpi_id' THEN 'P' || (ic.person_id + {off:people}) END,
			'parent_external_id', CASE WHEN s.data ? 'parent_external_id' THEN 'P' || (ic.person_id + {off:people}) END,
			'external_id', CASE WHEN s.data ? 'external_id'
			                    THEN 'P' || (ic.person_id + {off:people}) || '#{key}' || split_part(s.data->>'external_id', '#', 2)
			                         || '#' || split_part(s.data->>'external_id', '#', 3) || '-{k}' END,
			'name', CASE WHEN s.data ? 'name' THEN 'P' || (ic.person_id + {off:people}) || ' lab_result' END))`,
		"inserted_at": "{at:s.inserted_at}", "updated_at": "{at:s.updated_at}",
	},
}, {
	// Events without a stash: Engines 2, 3 and 5 write the ids of their rows into the data.
	table: "events",
	where: "s.id <= {max:events} AND s.stash IS NULL",
	set: map[string]string{
		"id": "s.id + {off:events}",
		"data": `CASE WHEN jsonb_typeof(s.data) = 'object' THEN s.data || jsonb_strip_nulls(jsonb_build_object(
			'person_id', (s.data->>'person_id')::bigint + {off:people},
			'index_case_id', (s.data->>'index_case_id')::bigint + {off:index_cases},
			'lab_result_id', (s.data->>'lab_result_id')::bigint + {off:lab_results},
			'test_result_id', (s.data->>'test_result_id')::bigint + {off:test_results})) ELSE s.data END`,
		"inserted_at": "{at:s.inserted_at}",
	},
}, {
	// Engine 4's events: the stash is the form, which names the case it posted.
	table: "events",
	from: `JOIN index_case_events j ON j.event_id = s.id
	       JOIN index_cases ic ON ic.id = j.index_case_id
	       JOIN index_cases n ON n.id = ic.id + {off:index_cases}`,
	where: "s.id <= {max:events} AND s.stash IS NOT NULL",
	set: map[string]string{
		"id": "s.id + {off:events}", "stash": "replace(s.stash, ic.case_id, n.case_id)",
		"inserted_at": "{at:s.inserted_at}",
	},
}, {
	// The join tables are chosen by what they join: with or without ids of their own (migrations/00007 drops them),
	// the same rows are copied.
	table: "test_result_events",
	where: "s.test_result_id <= {max:test_results} AND s.event_id <= {max:events}",
	set: map[string]string{"id": "s.id + {off:test_result_events}", "test_result_id": "s.test_result_id + {off:test_results}",
		"event_id": "s.event_id + {off:events}", "inserted_at": "{at:s.inserted_at}"},
}, {
	// xid is left to its default, the copy's transaction: written after the base, as a history's later rows are.
	table: "index_case_events",
	where: "s.index_case_id <= {max:index_cases} AND s.event_id <= {max:events}",
	set: map[string]string{"id": "s.id + {off:index_case_events}", "index_case_id": "s.index_case_id + {off:index_cases}",
		"event_id": "s.event_id + {off:events}", "inserted_at": "{at:s.inserted_at}"},
	omit: []string{"xid"},
}, {
	table: "change_logs",
	where: "s.id <= {max:change_logs}",
	set: map[string]string{
		"id":        "s.id + {off:change_logs}",
		"source_id": "s.source_id + CASE s.source_type WHEN 'test_result' THEN {off:test_results} ELSE 0 END",
		"destination_id": `s.destination_id + CASE s.destination_type WHEN 'index_case' THEN {off:index_cases}
		                                                   WHEN 'lab_result' THEN {off:lab_results} ELSE 0 END`,
		"inserted_at": "{at:s.inserted_at}",
	},
}, {
	table: "commcare_posts",
	where: "s.index_case_id <= {max:index_cases}",
	set: map[string]string{"index_case_id": "s.index_case_id + {off:index_cases}",
		"payload_sha256": "sha256(s.payload_sha256 || int4send({k}))", "posted_at": "{at:s.posted_at}"},
}}

// idTables are the tables whose ids may come from a sequence; a copy reserves a block of ids in each that has one.
var idTables = []string{"files", "test_results", "file_row_errors", "people", "index_cases", "lab_results", "events",
	"test_result_events", "index_case_events", "change_logs"}

// growth is what growing a history did.
type growth struct {
	copies int
	took   time.Duration
	// tables is the time spent writing each table, summed over the copies.
	tables map[string]time.Duration
	// notGrown lists tables with rows in the base that no copy writes: a table added since this generator was
	// written, which the history then holds at the base's size only.
	notGrown []string
}

// growHistory adds copies of the base (the rows already in db) to db, workers copies at a time.
func growHistory(t *testing.T, ctx context.Context, db *historyDB, copies, workers int) growth {
	t.Helper()
	start := time.Now()
	g := growth{copies: copies}
	pool := db.pool(t, ctx)
	defer pool.Close()

	var sequenced []string
	for _, table := range idTables {
		var withSequence bool
		require.NoError(t, pool.QueryRow(ctx, `SELECT CASE WHEN EXISTS (SELECT FROM information_schema.columns
			 WHERE table_schema = current_schema() AND table_name = $1 AND column_name = 'id')
			 THEN pg_get_serial_sequence($1, 'id') IS NOT NULL ELSE false END`, table).Scan(&withSequence))
		if withSequence {
			sequenced = append(sequenced, table)
		}
	}
	maxIDs := map[string]int64{}
	for _, table := range sequenced {
		var n int64
		require.NoError(t, pool.QueryRow(ctx, `SELECT coalesce(max(id), 0) FROM `+pgx.Identifier{table}.Sanitize()).Scan(&n))
		maxIDs[table] = n
	}
	var span baseSpan
	require.NoError(t, pool.QueryRow(ctx, `SELECT least((SELECT min(inserted_at) FROM test_results), (SELECT min(inserted_at) FROM events)),
		greatest((SELECT max(inserted_at) FROM test_results), (SELECT max(inserted_at) FROM events))`).Scan(&span.oldest, &span.newest))
	// Blocks are reserved up front, one copy after another, so the copies can then run side by side.
	offsets := make([]map[string]int64, copies+1)
	for k := 1; k <= copies; k++ {
		offsets[k] = map[string]int64{}
		for _, table := range sequenced {
			var off int64
			require.NoError(t, pool.QueryRow(ctx, `SELECT nextval(pg_get_serial_sequence($1, 'id'))`, table).Scan(&off))
			_, err := pool.Exec(ctx, `SELECT setval(pg_get_serial_sequence($1, 'id'), $2)`, table, off+maxIDs[table])
			require.NoError(t, err)
			offsets[k][table] = off
		}
	}
	columns := map[string][]string{}
	for _, gt := range grownTables {
		rows, err := pool.Query(ctx, `SELECT column_name FROM information_schema.columns
			 WHERE table_schema = current_schema() AND table_name = $1 AND is_generated = 'NEVER' ORDER BY ordinal_position`, gt.table)
		require.NoError(t, err)
		cols, err := pgx.CollectRows(rows, pgx.RowTo[string])
		require.NoError(t, err)
		require.NotEmpty(t, cols, "table %s", gt.table)
		columns[gt.table] = cols
	}
	var tallies bool
	require.NoError(t, pool.QueryRow(ctx, `SELECT to_regclass('tallies') IS NOT NULL`).Scan(&tallies))

	var mu sync.Mutex
	g.tables = map[string]time.Duration{}
	took := func(table string, d time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		g.tables[table] += d
	}
	eg, egctx := errgroup.WithContext(ctx)
	eg.SetLimit(workers)
	for k := 1; k <= copies; k++ {
		eg.Go(func() error { return copyBase(egctx, pool, k, maxIDs, offsets[k], span, columns, tallies, took) })
	}
	require.NoError(t, eg.Wait())

	grown := map[string]bool{}
	for _, gt := range grownTables {
		grown[gt.table] = true
	}
	rows, err := pool.Query(ctx, `SELECT c.relname FROM pg_class c
		 WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind = 'r' AND c.relname NOT LIKE 'river\_%' ORDER BY 1`)
	require.NoError(t, err)
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	for _, table := range tables {
		if grown[table] || notGrownOnPurpose[table] {
			continue
		}
		var rows bool
		require.NoError(t, pool.QueryRow(ctx, `SELECT EXISTS (SELECT FROM `+pgx.Identifier{table}.Sanitize()+`)`).Scan(&rows))
		if rows {
			g.notGrown = append(g.notGrown, table)
		}
	}
	g.took = time.Since(start)
	return g
}

// notGrownOnPurpose are tables whose size does not follow the history's: configuration, bookkeeping of one row,
// River's own tables, and the tallies, which the triggers write.
var notGrownOnPurpose = map[string]bool{"counties": true, "commcare_sync_marks": true, "e2_claim_floor": true,
	"e3_cursor": true, "e3_deferred": true, "tallies": true, "goose_db_version": true, "test_result_attempts": true}

// copyBase writes copy k of the base in one transaction.
func copyBase(ctx context.Context, pool *pgxpool.Pool, k int, maxIDs, offsets map[string]int64, span baseSpan,
	columns map[string][]string, tallies bool, took func(table string, d time.Duration)) error {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	// Memory for the hash joins over the base, and no wait for each commit's flush: this is bulk loading.
	for _, sql := range []string{`SET work_mem = '256MB'`, `SET synchronous_commit = off`} {
		if _, err := conn.Exec(ctx, sql); err != nil {
			return err
		}
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck

	expand := copyPlaceholders(k, maxIDs, offsets, span)
	for _, gt := range grownTables {
		if n, ok := maxIDs[gt.table]; ok && n == 0 {
			continue // nothing of it in the base
		}
		var cols, exprs []string
		for _, c := range columns[gt.table] {
			if slices.Contains(gt.omit, c) {
				continue
			}
			expr, ok := gt.set[c]
			if !ok {
				expr = "s." + pgx.Identifier{c}.Sanitize()
			}
			cols = append(cols, pgx.Identifier{c}.Sanitize())
			exprs = append(exprs, expr)
		}
		sql := expand(fmt.Sprintf(`INSERT INTO %s (%s) SELECT %s FROM %s s %s WHERE %s`,
			pgx.Identifier{gt.table}.Sanitize(), strings.Join(cols, ", "), strings.Join(exprs, ",\n  "),
			pgx.Identifier{gt.table}.Sanitize(), gt.from, gt.where))
		start := time.Now()
		tag, err := tx.Exec(ctx, sql)
		took(gt.table, time.Since(start))
		if err != nil {
			return fmt.Errorf("copy %d of %s: %w\n%s", k, gt.table, err, sql)
		}
		// Engine 1 adds its own tally row for test_results in its import transaction; so does the copy.
		if gt.table == "test_results" && tallies {
			if _, err := tx.Exec(ctx, `INSERT INTO tallies (name, n) VALUES ('test_results', $1)`, tag.RowsAffected()); err != nil {
				return err
			}
		}
	}
	return tx.Commit(ctx)
}

// copyPlaceholders returns a function that fills in grownTables' placeholders for copy k.
//
// Copy k's times are the base's, stretched from the minutes the base took to build (span) over a week and moved
// back by k-1 weeks: the copy's newest rows are k-1 weeks older than the base's newest, its oldest a week older
// still. Rows the base wrote at one time (a batch's events, in one transaction) keep sharing a time, as the
// index on events by type and time expects of a running system; order in time is kept too.
func copyPlaceholders(k int, maxIDs, offsets map[string]int64, span baseSpan) func(string) string {
	pairs := []string{"{k}", strconv.Itoa(k), "{key}", fmt.Sprintf("%02d", k), "{sfx}", " " + roman(k+1)}
	for table, maxID := range maxIDs {
		pairs = append(pairs, "{off:"+table+"}", strconv.FormatInt(offsets[table], 10),
			"{max:"+table+"}", strconv.FormatInt(maxID, 10))
	}
	replacer := strings.NewReplacer(pairs...)
	seconds := max(span.newest.Sub(span.oldest).Seconds(), 1)
	newest := span.newest.UTC().Format(time.RFC3339Nano)
	return func(sql string) string {
		sql = atPlaceholder.ReplaceAllStringFunc(sql, func(m string) string {
			column := atPlaceholder.FindStringSubmatch(m)[1]
			return fmt.Sprintf(`(%[1]s - interval '%[2]d days'
				- least(greatest(timestamptz '%[3]s' - %[1]s, interval '0'), interval '%[4]f seconds') * %[5]f)`,
				column, 7*(k-1), newest, seconds, 7*24*3600/seconds)
		})
		return replacer.Replace(sql)
	}
}

// atPlaceholder is {at:s.column}.
var atPlaceholder = regexp.MustCompile(`\{at:(s\.[a-z_]+)\}`)

// baseSpan is when the base's rows were written.
type baseSpan struct{ oldest, newest time.Time }

// roman spells n (1 to 3999) in Roman numerals: the generational suffix of copy n-1's last names.
func roman(n int) string {
	var b strings.Builder
	for _, r := range []struct {
		v int
		s string
	}{{1000, "M"}, {900, "CM"}, {500, "D"}, {400, "CD"}, {100, "C"}, {90, "XC"}, {50, "L"}, {40, "XL"}, {10, "X"},
		{9, "IX"}, {5, "V"}, {4, "IV"}, {1, "I"}} {
		for ; n >= r.v; n -= r.v {
			b.WriteString(r.s)
		}
	}
	return b.String()
}

// settleHistory leaves the engines' own state as a running system would have it, then vacuums and checkpoints:
// Engine 2's claim floor at the highest finished test result (everything is finished), and Engine 3's horizon at
// the xmin of a snapshot taken after the generation committed (a continuously running Engine 3 would have
// considered everything). Both are set only if the schema has them.
func settleHistory(t *testing.T, ctx context.Context, db *historyDB) time.Duration {
	t.Helper()
	start := time.Now()
	conn, err := pgx.Connect(ctx, db.URL)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	var floor, cursor bool
	require.NoError(t, conn.QueryRow(ctx, `SELECT to_regclass('e2_claim_floor') IS NOT NULL, to_regclass('e3_cursor') IS NOT NULL`).
		Scan(&floor, &cursor))
	if floor {
		_, err := conn.Exec(ctx, `UPDATE e2_claim_floor SET test_result_id =
			(SELECT coalesce(max(test_result_id), 0) FROM test_result_events WHERE finished), updated_at = now()`)
		require.NoError(t, err)
	}
	if cursor {
		_, err := conn.Exec(ctx, `UPDATE e3_cursor SET horizon = pg_snapshot_xmin(pg_current_snapshot()), updated_at = now()`)
		require.NoError(t, err)
	}
	_, err = conn.Exec(ctx, `SET maintenance_work_mem = '1GB'`)
	require.NoError(t, err)
	_, err = conn.Exec(ctx, `VACUUM ANALYZE`)
	require.NoError(t, err)
	_, err = conn.Exec(ctx, `CHECKPOINT`)
	require.NoError(t, err)
	return time.Since(start)
}

// tallyDrift compares the tallies with the tables they count and describes each difference: the status page
// reads the tallies, so a writer that forgets its delta shows here.
func tallyDrift(t *testing.T, ctx context.Context, pool *pgxpool.Pool) []string {
	t.Helper()
	var present bool
	require.NoError(t, pool.QueryRow(ctx, `SELECT to_regclass('tallies') IS NOT NULL`).Scan(&present))
	if !present {
		return []string{"no tallies table"}
	}
	rows, err := pool.Query(ctx, `WITH counted AS (
		    SELECT 'people' AS name, count(*) AS n FROM people
		    UNION ALL SELECT 'index_cases', count(*) FROM index_cases
		    UNION ALL SELECT 'lab_results', count(*) FROM lab_results
		    UNION ALL SELECT 'file_row_errors', count(*) FROM file_row_errors
		    UNION ALL SELECT 'test_results', count(*) FROM test_results
		    UNION ALL SELECT 'events:' || type, count(*) FROM events GROUP BY type),
		  tallied AS (SELECT name, sum(n)::bigint AS n FROM tallies GROUP BY name)
		SELECT coalesce(c.name, t.name), coalesce(c.n, 0), coalesce(t.n, 0)
		  FROM counted c FULL JOIN tallied t ON t.name = c.name
		 WHERE coalesce(c.n, 0) <> coalesce(t.n, 0) ORDER BY 1`)
	require.NoError(t, err)
	var drift []string
	for rows.Next() {
		var name string
		var counted, tallied int64
		require.NoError(t, rows.Scan(&name, &counted, &tallied))
		drift = append(drift, fmt.Sprintf("%s: %d rows, tally %d", name, counted, tallied))
	}
	require.NoError(t, rows.Err())
	return drift
}

// e2Final is Engine 2's closing log line of an until-idle run.
type e2Final struct {
	Results, Failed int
	Claim           time.Duration
	// FirstClaim is the first claim after start, when the engine reports it.
	FirstClaim    time.Duration
	HasFirstClaim bool
}

func parseE2Final(t *testing.T, logs string) e2Final {
	t.Helper()
	for _, line := range strings.Split(logs, "\n") {
		if !strings.Contains(line, `"no test results ready; stopping"`) {
			continue
		}
		var entry map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &entry))
		f := e2Final{Results: int(number(entry["results"])), Failed: int(number(entry["failed"]))}
		f.Claim, _ = logDuration(entry["claim_time"])
		f.FirstClaim, f.HasFirstClaim = logDuration(entry["first_claim_time"])
		return f
	}
	require.FailNow(t, "Engine 2's closing log line is missing", logs)
	return e2Final{}
}

func number(v any) float64 {
	f, _ := v.(float64)
	return f
}

// logDuration reads a duration the daemon logged: a string ("1.5s") with its encoder, seconds otherwise.
func logDuration(v any) (time.Duration, bool) {
	switch v := v.(type) {
	case string:
		d, err := time.ParseDuration(v)
		return d, err == nil
	case float64:
		return time.Duration(v * float64(time.Second)), true
	}
	return 0, false
}
