package cli

import (
	"bytes"
	"fmt"
	"net/url"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/viaduct-nys/viaduct/pkg/casedb"
	"github.com/viaduct-nys/viaduct/pkg/commcare/commcaretest"
	"github.com/viaduct-nys/viaduct/pkg/eclrs"
	"github.com/viaduct-nys/viaduct/pkg/pgtest"
	"github.com/viaduct-nys/viaduct/pkg/testfactory"
)

// TestRetryE2 takes test results through Engine 2 (the real binary) with their creation dates removed, so that they
// fail at once; restores the dates, as an operator fixes a cause; and has `viaduct retry e2` hand them back: the
// plan first, --yes beyond a handful, then Engine 2 processes them although they lie below its claim floor.
func TestRetryE2(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	db := pgtest.New(t)
	importExport(t, db, writeGeneratedExport(t, 30, 7))
	countyFile := writeCountyList(t)
	env := map[string]string{"DATABASE_URL": db.URL}
	runE2 := func() {
		t.Helper()
		cmd := exec.Command(viaductBin, "run", "--e2", "--until-idle", "--http-addr", "", "--county-list-file", countyFile,
			"--e2-ignore-before", "2020-01-01")
		cmd.Env = e2Env(db)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		require.NoError(t, cmd.Run(), stderr.String())
	}
	count := func(query string, args ...any) int {
		t.Helper()
		var n int
		require.NoError(t, db.Pool.QueryRow(ctx, query, args...).Scan(&n))
		return n
	}

	// Twelve results lose their creation date, which no retry can fix: Engine 2 fails them at the first attempt.
	rows, err := db.Pool.Query(ctx, `SELECT id FROM test_results ORDER BY id LIMIT 12`)
	require.NoError(t, err)
	broken, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	require.NoError(t, err)
	_, err = db.Pool.Exec(ctx, `CREATE TABLE saved_dates AS SELECT id, eclrs_create_date FROM test_results WHERE id = ANY($1)`, broken)
	require.NoError(t, err)
	_, err = db.Pool.Exec(ctx, `UPDATE test_results SET eclrs_create_date = NULL WHERE id = ANY($1)`, broken)
	require.NoError(t, err)
	runE2()
	const failedFinished = `SELECT count(*) FROM test_result_events j JOIN events e ON e.id = j.event_id
		WHERE e.type = 'processing_failed' AND j.finished`
	require.Equal(t, 12, count(failedFinished))
	var floor int64
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT test_result_id FROM e2_claim_floor`).Scan(&floor))
	require.GreaterOrEqual(t, floor, broken[len(broken)-1], "the failed results lie below the stored claim floor")

	// The cause is fixed.
	_, err = db.Pool.Exec(ctx, `UPDATE test_results tr SET eclrs_create_date = s.eclrs_create_date FROM saved_dates s
		WHERE s.id = tr.id`)
	require.NoError(t, err)
	unchanged := func() {
		t.Helper()
		require.Equal(t, 12, count(failedFinished))
		require.Zero(t, count(`SELECT count(*) FROM events WHERE type = $1`, eclrs.EventRetryRequested))
		require.Zero(t, count(`SELECT count(*) FROM test_result_attempts`))
	}

	res := runCLI(t, env, "retry", "e2", "--by", "alice", "--reason", "dates restored")
	require.Equal(t, 2, res.code, "stdout:\n%s\nstderr:\n%s", res.stdout, res.stderr)
	require.Contains(t, res.stdout, "Engine 2 is to take 12 failed test results again (asked by alice: dates restored):")
	require.Contains(t, res.stdout, "eclrs_create_date is empty")
	require.Contains(t, res.stderr, "viaduct retry: --yes needed: 12 failed test results are more than 10")
	require.NotContains(t, res.stderr, "invalid configuration")
	unchanged()

	res = runCLI(t, env, "retry", "--dry-run", "--yes", "e2")
	require.Equal(t, 0, res.code, res.stderr)
	require.Contains(t, res.stdout, "Dry run: nothing changed.")
	require.Contains(t, res.stdout, "no live daemon runs Engine 2")
	unchanged()

	res = runCLI(t, env, "retry", "e2", "--since", "2099-01-01")
	require.Equal(t, 0, res.code, res.stderr)
	require.Equal(t, "No failed test results since 2099-01-01T00:00:00Z: nothing to retry.\n", res.stdout)

	var processed int64
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT min(id) FROM test_results WHERE id <> ALL($1)`, broken).Scan(&processed))
	res = runCLI(t, env, "retry", "e2", "--test-result", fmt.Sprintf("%d,%d", broken[0], processed))
	require.Equal(t, 1, res.code, res.stderr)
	require.Contains(t, res.stderr, fmt.Sprintf("nothing to retry: test result %d;", processed))
	unchanged()

	// One named result goes without --yes.
	res = runCLI(t, env, "retry", "e2", "--test-result", strconv.FormatInt(broken[0], 10), "--by", "alice")
	require.Equal(t, 0, res.code, res.stderr)
	require.Contains(t, res.stdout, "Done: 1 test result ready for Engine 2 again (retry_requested recorded on each).")

	res = runCLI(t, env, "retry", "e2", "--since", "1h", "--by", "alice", "--reason", "dates restored", "--yes")
	require.Equal(t, 0, res.code, "stdout:\n%s\nstderr:\n%s", res.stdout, res.stderr)
	require.Contains(t, res.stdout, "Engine 2 is to take 11 failed test results since ")
	require.Contains(t, res.stdout, "Done: 11 test results ready for Engine 2 again")
	require.Zero(t, count(failedFinished))
	require.Equal(t, 12, count(`SELECT count(*) FROM test_result_attempts WHERE attempts = 0 AND next_attempt_at <= now()
		AND last_error LIKE 'eclrs_create_date is empty%'`))
	var data map[string]any
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT e.data FROM events e JOIN test_result_events j ON j.event_id = e.id
		WHERE e.type = $1 AND j.test_result_id = $2`, eclrs.EventRetryRequested, broken[1]).Scan(&data))
	require.Equal(t, "alice", data["by"])
	require.Equal(t, "dates restored", data["reason"])
	require.NotZero(t, data["failed_event_id"])

	var fileID, line int64
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT file_id, line_number FROM test_results WHERE id = $1`, broken[1]).
		Scan(&fileID, &line))
	res = runCLI(t, env, "trace", "--file", fmt.Sprint(fileID), "--line", fmt.Sprint(line))
	require.Equal(t, 0, res.code, res.stderr)
	require.Contains(t, res.stdout, "retry asked for by alice")
	require.Contains(t, res.stdout, "waits for Engine 2, due at ")

	// Engine 2 claims them from test_result_attempts, below its floor, processes them and forgets the retries.
	runE2()
	require.Equal(t, 12, count(`SELECT count(*) FROM test_result_events j JOIN events e ON e.id = j.event_id
		WHERE e.type = 'processed' AND j.finished AND j.test_result_id = ANY($1)`, broken))
	require.Zero(t, count(`SELECT count(*) FROM test_result_attempts`))
	require.Equal(t, 12, count(`SELECT count(*) FROM events WHERE type = 'processing_failed'`), "the failures stay as history")

	res = runCLI(t, env, "retry", "e2", "--yes")
	require.Equal(t, 0, res.code, res.stderr)
	require.Equal(t, "No failed test results: nothing to retry.\n", res.stdout)
}

// TestRetryArguments: what `viaduct retry` refuses before it reaches the database.
func TestRetryArguments(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"NoTarget", []string{"retry"}, []string{"retry what? `viaduct retry e2`"}},
		{"OtherEngine", []string{"retry", "e4"}, []string{`cannot retry "e4"`, "viaduct resend"}},
		{"EveryProblemAtOnce", []string{"retry", "e2", "extra", "--since", "yesterday", "--test-result", "x", "--by", " "},
			[]string{`unexpected argument "extra"`, `--since "yesterday"`, `--test-result "x"`, "--by must name who asked"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			res := runCLI(t, map[string]string{"DATABASE_URL": "postgres://127.0.0.1:1/none"}, tc.args...)
			require.Equal(t, 2, res.code, res.stderr)
			for _, want := range tc.want {
				require.Contains(t, res.stderr, want)
			}
		})
	}
}

// TestResend: `viaduct resend` hands cases to Engine 4 as Engine 3 does (a job and send_to_commcare_enqueued), says
// so with resend_requested, and does what fits the job the case already has.
func TestResend(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	db := pgtest.New(t)
	env := map[string]string{"DATABASE_URL": db.URL}
	testfactory.County(t, ctx, db.Pool, testfactory.MidsomerCountyID)
	testfactory.County(t, ctx, db.Pool, 9999)
	newCase := func(county int64) testfactory.IndexCaseRow {
		ic := testfactory.IndexCase(t, ctx, db.Pool, &testfactory.IndexCaseOpts{CountyID: county})
		testfactory.Event(t, ctx, db.Pool, &testfactory.EventOpts{IndexCaseID: ic.ID})
		return ic
	}
	count := func(query string, args ...any) int {
		t.Helper()
		var n int
		require.NoError(t, db.Pool.QueryRow(ctx, query, args...).Scan(&n))
		return n
	}
	events := func(ic testfactory.IndexCaseRow, typ string) int {
		t.Helper()
		return count(`SELECT count(*) FROM index_case_events j JOIN events e ON e.id = j.event_id
			WHERE j.index_case_id = $1 AND e.type = $2`, ic.ID, typ)
	}
	lastData := func(ic testfactory.IndexCaseRow) map[string]any {
		t.Helper()
		var data map[string]any
		require.NoError(t, db.Pool.QueryRow(ctx, `SELECT e.data FROM index_case_events j JOIN events e ON e.id = j.event_id
			WHERE j.index_case_id = $1 AND e.type = $2 ORDER BY e.id DESC LIMIT 1`, ic.ID, casedb.EventResendRequested).Scan(&data))
		return data
	}
	job := func(ic testfactory.IndexCaseRow) (id int64, state string, scheduled time.Time) {
		t.Helper()
		require.NoError(t, db.Pool.QueryRow(ctx, `SELECT id, state, scheduled_at FROM river_job WHERE kind = $1
			AND args->>'case_id' = $2`, casedb.CaseLoaderArgs{}.Kind(), ic.CaseID).Scan(&id, &state, &scheduled))
		return id, state, scheduled
	}

	one := newCase(testfactory.MidsomerCountyID)
	res := runCLI(t, env, "resend", "--case-id", one.CaseID, "--by", "bob", "--reason", "CommCare lost it")
	require.Equal(t, 0, res.code, "stdout:\n%s\nstderr:\n%s", res.stdout, res.stderr)
	require.Contains(t, res.stdout, "Engine 4 is to send 1 index case again (asked by bob: CommCare lost it):")
	require.Contains(t, res.stdout, one.CaseID+"  1111    a new job")
	require.Contains(t, res.stdout, "Done: 1 index case handed to Engine 4 (1 new jobs")
	jobID, state, _ := job(one)
	require.Equal(t, string(rivertype.JobStateAvailable), state)
	require.Equal(t, 1, events(one, casedb.EventSendToCommCareEnqueued))
	data := lastData(one)
	require.Equal(t, "bob", data["by"])
	require.Equal(t, "CommCare lost it", data["reason"])
	require.Equal(t, resendQueued, data["job"])
	require.EqualValues(t, jobID, data["job_id"])

	// The job waits: nothing is added but the events.
	res = runCLI(t, env, "resend", "--case-id", one.CaseID)
	require.Equal(t, 0, res.code, res.stderr)
	require.Contains(t, res.stdout, fmt.Sprintf("job %d is available", jobID))
	require.Equal(t, 1, count(`SELECT count(*) FROM river_job`))
	require.Equal(t, resendWaiting, lastData(one)["job"])
	require.Equal(t, 2, events(one, casedb.EventSendToCommCareEnqueued))

	// The job waits to retry: it runs now.
	_, err := db.Pool.Exec(ctx, `UPDATE river_job SET state = 'retryable', attempt = 3, scheduled_at = now() + interval '5 hours'`)
	require.NoError(t, err)
	res = runCLI(t, env, "resend", "--case-id", one.CaseID)
	require.Equal(t, 0, res.code, res.stderr)
	require.Contains(t, res.stdout, fmt.Sprintf("job %d waits to retry (attempt 4, due ", jobID))
	_, state, scheduled := job(one)
	require.Equal(t, string(rivertype.JobStateAvailable), state)
	require.False(t, scheduled.After(time.Now()), "due now: %s", scheduled)
	require.Equal(t, resendDueNow, lastData(one)["job"])
	require.Equal(t, 3, events(one, casedb.EventSendToCommCareEnqueued))

	// The job runs: it posts the case; no hand-off is recorded, so that Engine 3 still sees a change it may miss.
	_, err = db.Pool.Exec(ctx, `UPDATE river_job SET state = 'running', attempted_at = now()`)
	require.NoError(t, err)
	res = runCLI(t, env, "resend", "--case-id", one.CaseID)
	require.Equal(t, 0, res.code, res.stderr)
	require.Contains(t, res.stdout, "is running: it posts the case now")
	require.Equal(t, resendRunning, lastData(one)["job"])
	require.Equal(t, 3, events(one, casedb.EventSendToCommCareEnqueued))
	require.Equal(t, 1, count(`SELECT count(*) FROM river_job`))

	res = runCLI(t, env, "resend", "--case-id", one.CaseID+",no-such-case")
	require.Equal(t, 1, res.code, res.stderr)
	require.Contains(t, res.stderr, "no index case has the CommCare case id no-such-case")

	// A domain's cases with an event since --since: Midsomer's new ones, not its old one nor Yggdrasil's.
	var recent []testfactory.IndexCaseRow
	for range 11 {
		recent = append(recent, newCase(testfactory.MidsomerCountyID))
	}
	old := newCase(testfactory.MidsomerCountyID)
	_, err = db.Pool.Exec(ctx, `UPDATE events SET inserted_at = now() - interval '3 days'
		WHERE id IN (SELECT event_id FROM index_case_events WHERE index_case_id = ANY($1))`, []int64{old.ID, one.ID})
	require.NoError(t, err)
	other := newCase(9999)
	countyFile := filepath.Join(t.TempDir(), "counties.json")
	require.NoError(t, commcaretest.WriteCountyListFile(countyFile, commcaretest.TestCounties()))
	domainArgs := []string{"resend", "--domain", commcaretest.MidsomerDomain, "--since", "1h", "--county-list-file", countyFile}
	res = runCLI(t, env, domainArgs...)
	require.Equal(t, 2, res.code, "stdout:\n%s\nstderr:\n%s", res.stdout, res.stderr)
	require.Contains(t, res.stdout, "Engine 4 is to send 11 index cases of "+commcaretest.MidsomerDomain+" (county 1111) with an event since ")
	require.Contains(t, res.stderr, "--yes needed: 11 index cases are more than 10")
	require.Equal(t, 1, count(`SELECT count(*) FROM river_job`))

	res = runCLI(t, env, append(domainArgs, "--yes")...)
	require.Equal(t, 0, res.code, res.stderr)
	require.Contains(t, res.stdout, "Done: 11 index cases handed to Engine 4 (11 new jobs, 0 run now, 0 already waiting, 0 being posted)")
	for _, ic := range recent {
		require.Equal(t, 1, events(ic, casedb.EventSendToCommCareEnqueued))
		require.Equal(t, 1, events(ic, casedb.EventResendRequested))
	}
	for _, ic := range []testfactory.IndexCaseRow{old, other} {
		require.Zero(t, events(ic, casedb.EventResendRequested))
	}
	require.Equal(t, 12, count(`SELECT count(*) FROM river_job WHERE kind = $1 AND queue = $2`,
		casedb.CaseLoaderArgs{}.Kind(), casedb.CaseLoaderQueue))

	res = runCLI(t, env, "trace", "--case-id", one.CaseID)
	require.Equal(t, 0, res.code, res.stderr)
	require.Contains(t, res.stdout, "resend of index case "+strconv.FormatInt(one.ID, 10)+" asked for by bob (CommCare lost it)")
}

// TestResendArguments: what `viaduct resend` refuses before it reaches the database, every problem at once.
func TestResendArguments(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"NothingNamed", []string{"resend"}, []string{"name the cases: --case-id ID[,ID…], or --domain DOMAIN --since T"}},
		{"DomainNeedsSinceAndCounties", []string{"resend", "--domain", "d"},
			[]string{"--domain needs --since", "--domain needs the county list"}},
		{"Both", []string{"resend", "--domain", "d", "--case-id", "c", "--since", "soon", "--county-list-file", "f"},
			[]string{"give one or the other", `--since "soon"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			res := runCLI(t, map[string]string{"DATABASE_URL": "postgres://127.0.0.1:1/none"}, tc.args...)
			require.Equal(t, 2, res.code, res.stderr)
			for _, want := range tc.want {
				require.Contains(t, res.stderr, want)
			}
		})
	}
}

// TestReimport: `viaduct reimport` sets a failed S3 file importing again, as stale as can be, so that the next
// resume pass of a daemon running Engine 1 takes it, and records what it undid; it refuses every other file,
// saying why, and changes nothing then.
func TestReimport(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	db := pgtest.New(t)
	env := map[string]string{"DATABASE_URL": db.URL}
	file := func(filename, bucket, status, reason string, attempts int, eventTime time.Time) int64 {
		t.Helper()
		var id int64
		require.NoError(t, db.Pool.QueryRow(ctx, `INSERT INTO files (filename, bucket, key, etag, status, failure_reason,
			    attempts, event_time, processing_completed_at)
			VALUES ($1, $2, $1, 'etag', $3, NULLIF($4, ''), $5, $6, now()) RETURNING id`,
			filename, bucket, status, reason, attempts, eventTime).Scan(&id))
		return id
	}
	const reason = "gave up after 5 attempts; the last failed with: S3 answered 503"
	failed := file("s3://exports/a.txt", "exports", eclrs.FileFailed, reason, 5, time.Now().Add(-2*time.Hour))
	local := file("/data/b.txt", "", eclrs.FileFailed, "unrecognised header", 1, time.Time{})
	imported := file("s3://exports/c.txt", "exports", eclrs.FileImported, "", 1, time.Now().Add(-time.Hour))

	res := runCLI(t, env, "reimport", fmt.Sprint(failed), fmt.Sprint(local), fmt.Sprint(imported), "999999")
	require.Equal(t, 1, res.code, res.stderr)
	for _, want := range []string{
		"nothing changed:",
		fmt.Sprintf("file %d (/data/b.txt) is a local file, which no daemon can read: import it with `viaduct extract /data/b.txt`", local),
		fmt.Sprintf("file %d (s3://exports/c.txt) is imported, not failed", imported),
		"file 999999: no such file",
	} {
		require.Contains(t, res.stderr, want)
	}
	f, err := eclrs.GetFile(ctx, db.Pool, failed)
	require.NoError(t, err)
	require.Equal(t, eclrs.FileFailed, f.Status)

	res = runCLI(t, env, "reimport", fmt.Sprint(failed), "--by", "carol", "--reason", "S3 is back")
	require.Equal(t, 0, res.code, "stdout:\n%s\nstderr:\n%s", res.stdout, res.stderr)
	require.Contains(t, res.stdout, "Engine 1 is to import 1 failed file again from S3 (asked by carol: S3 is back):")
	require.Contains(t, res.stdout, reason)
	require.Contains(t, res.stdout, fmt.Sprintf("Note: file %d will be marked skipped, not imported: file %d (s3://exports/c.txt)",
		failed, imported))
	require.Contains(t, res.stdout, "no live daemon runs Engine 1")
	require.Contains(t, res.stdout, "Done: 1 file set importing again (reimport_requested recorded on each)")

	f, err = eclrs.GetFile(ctx, db.Pool, failed)
	require.NoError(t, err)
	require.Equal(t, eclrs.FileImporting, f.Status)
	require.Zero(t, f.Attempts)
	require.Empty(t, f.FailureReason)
	var data map[string]any
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT e.data FROM file_events j JOIN events e ON e.id = j.event_id
		WHERE j.file_id = $1 AND e.type = $2`, failed, eclrs.EventReimportRequested).Scan(&data))
	require.Equal(t, map[string]any{"by": "carol", "reason": "S3 is back", "failure_reason": reason, "attempts": float64(5)}, data)

	// The next resume pass of any daemon running Engine 1 takes it, however long its resume delay.
	claimed, obj, err := eclrs.ClaimStaleFile(ctx, db.Pool, 5*time.Minute)
	require.NoError(t, err)
	require.NotNil(t, claimed)
	require.Equal(t, failed, claimed.ID)
	require.Equal(t, "exports", obj.Bucket)

	res = runCLI(t, env, "reimport", fmt.Sprint(failed))
	require.Equal(t, 1, res.code, res.stderr)
	require.Contains(t, res.stderr, "is still importing (0 attempts so far): Engine 1 resumes it by itself")

	res = runCLI(t, env, "reimport", "x")
	require.Equal(t, 2, res.code, res.stderr)
	require.Contains(t, res.stderr, `"x" is not a file id`)
}

// TestRepairNeedsMoreThanAHandfulConfirmed: --yes is asked for above ten items, whichever repair.
func TestRepairNeedsMoreThanAHandfulConfirmed(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	db := pgtest.New(t)
	var ids []string
	for i := range 11 {
		var id int64
		require.NoError(t, db.Pool.QueryRow(ctx, `INSERT INTO files (filename, bucket, key, status, failure_reason)
			VALUES ($1, 'b', $1, 'failed', 'bad header') RETURNING id`, fmt.Sprintf("s3://b/%d.txt", i)).Scan(&id))
		ids = append(ids, fmt.Sprint(id))
	}
	env := map[string]string{"DATABASE_URL": db.URL}
	res := runCLI(t, env, append([]string{"reimport"}, ids...)...)
	require.Equal(t, 2, res.code, res.stderr)
	require.Contains(t, res.stderr, "viaduct reimport: --yes needed: 11 files are more than 10")
	require.Contains(t, res.stdout, "Engine 1 is to import 11 failed files again")
	res = runCLI(t, env, append([]string{"reimport", "--yes"}, ids...)...)
	require.Equal(t, 0, res.code, res.stderr)
	var importing int
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*) FROM files WHERE status = 'importing'`).Scan(&importing))
	require.Equal(t, 11, importing)
}

// TestRepairDatabaseErrors: the commands that read or repair Viaduct's tables say what is wrong with the database
// and what to do, rather than `relation "files" does not exist`: a schema not migrated, a database that does not
// exist, a server that cannot be reached. None prints the password.
func TestRepairDatabaseErrors(t *testing.T) {
	t.Parallel()
	commands := map[string][]string{
		"status":   {"status"},
		"extract":  {"extract", filepath.Join(t.TempDir(), "export.txt")},
		"trace":    {"trace", "--case-id", "c"},
		"retry":    {"retry", "e2"},
		"resend":   {"resend", "--case-id", "c"},
		"reimport": {"reimport", "1"},
	}
	const secret = "s3cr3t-pw"
	server, err := url.Parse(pgtest.ServerURL())
	require.NoError(t, err)

	t.Run("Unmigrated", func(t *testing.T) {
		t.Parallel()
		db := pgtest.NewEmpty(t)
		for name, args := range commands {
			res := runCLI(t, map[string]string{"DATABASE_URL": db.URL}, args...)
			require.Equal(t, 1, res.code, "%s: %s", name, res.stderr)
			require.Contains(t, res.stderr, "viaduct "+name+": the database schema is not current (", name)
			require.Contains(t, res.stderr, "run `viaduct migrate` first", name)
			require.NotContains(t, res.stderr, "SQLSTATE", name)
		}
	})

	t.Run("MissingDatabase", func(t *testing.T) {
		t.Parallel()
		u := *server
		u.User = url.UserPassword(server.User.Username(), secret)
		u.Path = "/viaduct_no_such_database"
		for name, args := range commands {
			res := runCLI(t, map[string]string{"DATABASE_URL": u.String()}, args...)
			require.Equal(t, 1, res.code, "%s: %s", name, res.stderr)
			// A command with a logger (extract) reports its error as a JSON log line, which escapes the quotes.
			stderr := strings.ReplaceAll(res.stderr, `\"`, `"`)
			require.Contains(t, stderr, fmt.Sprintf(`viaduct %s: database "viaduct_no_such_database" does not exist on %s: `+
				"create it (createdb -h %s -p %s -U %s viaduct_no_such_database) and run `viaduct migrate`", name, server.Host,
				server.Hostname(), server.Port(), server.User.Username()), name)
			require.NotContains(t, res.stderr, secret, name)
		}
	})

	t.Run("Unreachable", func(t *testing.T) {
		t.Parallel()
		for name, args := range commands {
			res := runCLI(t, map[string]string{"DATABASE_URL": "postgres://viaduct:" + secret + "@127.0.0.1:1/viaduct"}, args...)
			require.Equal(t, 1, res.code, "%s: %s", name, res.stderr)
			require.Contains(t, res.stderr, "viaduct "+name+": cannot reach PostgreSQL at 127.0.0.1:1 (", name)
			require.Contains(t, res.stderr, "is it running, and listening there? --database-url (DATABASE_URL) is "+
				"postgres://viaduct:xxxxx@127.0.0.1:1/viaduct", name)
			require.NotContains(t, res.stderr, secret, name)
		}
	})
}

// TestRepairHelp: each repair documents its flags, none of which is read from the environment except the
// database's and the county list's.
func TestRepairHelp(t *testing.T) {
	t.Parallel()
	for _, cmd := range []string{"retry", "resend", "reimport"} {
		res := runCLI(t, nil, cmd, "--help")
		require.Equal(t, 0, res.code, res.stderr)
		for _, flag := range []string{"--by", "--reason", "--yes", "--dry-run", "--database-url"} {
			require.Contains(t, res.stdout, flag, cmd)
		}
	}
	res := runCLI(t, nil, "--help")
	require.Equal(t, 0, res.code)
	for _, cmd := range []string{"retry", "resend", "reimport"} {
		require.Contains(t, res.stdout, "  "+cmd+" ")
	}
}
