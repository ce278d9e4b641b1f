package cli

import (
	"bytes"
	"encoding/json"
	"flag"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/viaduct-nys/viaduct/pkg/casedb"
	"github.com/viaduct-nys/viaduct/pkg/commcare"
	"github.com/viaduct-nys/viaduct/pkg/commcare/commcaretest"
	"github.com/viaduct-nys/viaduct/pkg/eclrs"
	"github.com/viaduct-nys/viaduct/pkg/eclrs/eclrsgen"
	"github.com/viaduct-nys/viaduct/pkg/pgtest"
	"github.com/viaduct-nys/viaduct/pkg/testfactory"
)

var updateGolden = flag.Bool("update", false, "rewrite testdata/trace_*.golden from the current output")

// The counties of the transfer journey: Albany, where the result arrives, and Allegany, where CommCare moves it.
const (
	traceSourceDomain = "ny-albany-cdcms"
	traceDestDomain   = "ny-allegany-cdcms"
	traceDestFIPS     = "3"
	traceDestCaseID   = "transferred-case-1"
	traceTracer       = "tracer-1"
)

// transferJourney is a database in which the real engines took one result all the way: ECLRS → Engine 1 → Engine
// 2 → Engine 3 → Engine 4 (created in Albany's domain) → a transfer in CommCare to Allegany → a second result for
// the same patient in a later file that also re-sent the first → Engine 4 following the transfer → a contact
// tracer's edit in Allegany → Engine 5 merging it back.
type transferJourney struct {
	db *pgtest.DB
	// dir holds the exports; normalize replaces it, the random case ids and nothing else.
	dir string
	// first is the result traced: file 1's only row, sent again in file 2; second is file 2's new row for the
	// same patient.
	first, second map[string]string
}

// newTransferJourney runs the journey with `viaduct extract` and `viaduct run … --until-idle` processes against the
// fake CommCare, then moves every recorded time to a fixed clock, one minute per distinct instant in the original
// order, so that the output can be compared with golden files.
func newTransferJourney(t *testing.T) *transferJourney {
	t.Helper()
	ctx := t.Context()
	j := &transferJourney{db: pgtest.New(t), dir: t.TempDir()}
	fake := commcaretest.StartTest(t, commcaretest.Options{})

	// Rows 0 and 2 of this export are one patient (one patient key) tested twice; row 1 is someone else, left out
	// so that only one case is ever in flight and the ids are the same on every run.
	var export bytes.Buffer
	require.NoError(t, eclrsgen.Write(&export, eclrsgen.Options{Rows: 3, Seed: 16, Counties: []int64{1}}))
	lines := strings.Split(strings.TrimSuffix(export.String(), "\n"), "\n")
	require.Len(t, lines, 4)
	header := strings.Split(lines[0], "|")
	fields := func(line string) map[string]string {
		values := strings.Split(line, "|")
		require.Len(t, values, len(header), "a row without quoted separators")
		m := map[string]string{}
		for i, v := range values {
			m[header[i]] = v
		}
		return m
	}
	j.first, j.second = fields(lines[1]), fields(lines[3])
	require.Equal(t, j.first["PIDPATIENTKEY"], j.second["PIDPATIENTKEY"])
	require.NotEqual(t, j.first["OBRACCESSIONNUM"], j.second["OBRACCESSIONNUM"])
	writeExport := func(name string, rows ...string) string {
		path := filepath.Join(j.dir, name)
		require.NoError(t, os.WriteFile(path, []byte(strings.Join(append([]string{lines[0]}, rows...), "\n")+"\n"), 0o600))
		return path
	}
	file1 := writeExport("COVID19_ECLRS_Export_positive_2026-11-20 0930.txt", lines[1])
	file2 := writeExport("COVID19_ECLRS_Export_positive_2026-11-20 1000.txt", lines[1], lines[3])

	env := e2Env(j.db, append(commCareEnv(fake), "COMMCARE_USER_ID=viaduct-test-user")...)
	run := func(args ...string) {
		t.Helper()
		p := startViaduct(t, env, append([]string{"run", "--until-idle", "--http-addr", ""}, args...)...)
		require.Equal(t, 0, p.waitExit(t, 2*time.Minute), "exit code; log:\n%s", p.logText())
	}
	pipeline := []string{"--e2", "--e3", "--e4", "--e3-idle-poll-interval", "10ms", "--e3-busy-poll-interval", "1ms"}

	importExport(t, j.db, file1)
	run(pipeline...)
	var sourceCaseID string
	require.NoError(t, j.db.Pool.QueryRow(ctx, `SELECT case_id FROM index_cases WHERE id = 1`).Scan(&sourceCaseID))
	source, ok := fake.Case(traceSourceDomain, sourceCaseID)
	require.True(t, ok, "Engine 4 created the case in %s", traceSourceDomain)

	// A contact tracer transfers the case to Allegany: CommCare marks the source and opens a copy there.
	require.NoError(t, fake.UpdateCase(traceSourceDomain, sourceCaseID, map[string]string{
		"transfer_destination_county_id": traceDestFIPS, "transfer_status": "sent"}, traceTracer))
	props := maps.Clone(source.Properties)
	props["owner_id"] = syntheticLocation(t, traceDestFIPS)
	props["transfer_source_case_id"] = sourceCaseID
	fake.PutCase(traceDestDomain, commcare.Case{CaseID: traceDestCaseID, UserID: traceTracer, OpenedBy: traceTracer,
		Properties: props})

	// A later export sends the first result again with a second one for the same patient, which changes the case.
	importExport(t, j.db, file2)
	run(pipeline...)

	// The tracer in Allegany records the interview; Engine 5 brings it back.
	require.NoError(t, fake.UpdateCase(traceDestDomain, traceDestCaseID, map[string]string{"interview_status": "completed"},
		traceTracer))
	run("--e5", "--e5-domains", "1")

	var rerouted, merged int
	require.NoError(t, j.db.Pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE e.type = $1),
		    count(*) FILTER (WHERE e.type = $2 AND e.data->'properties' ? 'interview_status')
		  FROM index_case_events ic JOIN events e ON e.id = ic.event_id`,
		casedb.EventSendToCommCareRerouted, casedb.EventUpdatedFromCommCare).Scan(&rerouted, &merged))
	require.Equal(t, 1, rerouted, "Engine 4 followed the transfer")
	require.Equal(t, 1, merged, "Engine 5 merged the tracer's edit back")

	// Every time the trace reads, on a fixed clock, in the original order.
	err := pgx.BeginFunc(ctx, j.db.Pool, func(tx pgx.Tx) error {
		for _, q := range []string{
			`CREATE TEMP TABLE instants ON COMMIT DROP AS
			   SELECT ts, timestamptz '2026-11-20 09:30:00+00' + dense_rank() OVER (ORDER BY ts) * interval '1 minute' AS fixed
			     FROM (SELECT inserted_at FROM events UNION SELECT inserted_at FROM test_results
			           UNION SELECT updated_at FROM test_result_attempts
			           UNION SELECT scheduled_at FROM river_job UNION SELECT finalized_at FROM river_job) t (ts)
			    WHERE ts IS NOT NULL`,
			`UPDATE events SET inserted_at = fixed FROM instants WHERE ts = inserted_at`,
			`UPDATE test_results SET inserted_at = fixed FROM instants WHERE ts = inserted_at`,
			`UPDATE river_job SET scheduled_at = fixed FROM instants WHERE ts = scheduled_at`,
			`UPDATE river_job SET finalized_at = fixed FROM instants WHERE ts = finalized_at`,
		} {
			if _, err := tx.Exec(ctx, q); err != nil {
				return err
			}
		}
		return nil
	})
	require.NoError(t, err)
	return j
}

// syntheticLocation is the CommCare location of the county with FIPS code fips in the fake's county list.
func syntheticLocation(t *testing.T, fips string) string {
	t.Helper()
	for _, c := range commcaretest.NewYorkCounties() {
		if c.FIPS == fips {
			return c.LocationID
		}
	}
	require.FailNow(t, "no county "+fips)
	return ""
}

var uuidPattern = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// normalize replaces what differs between runs in a trace's output: the exports' directory and the random CommCare
// case ids of index cases and lab results, each by a name made from its row id.
func (j *transferJourney) normalize(t *testing.T, out string) string {
	t.Helper()
	rows, err := j.db.Pool.Query(t.Context(), `SELECT case_id, 'case-of-index-case-' || id FROM index_cases
		UNION ALL SELECT case_id, 'case-of-lab-result-' || id FROM lab_results`)
	require.NoError(t, err)
	pairs := []string{j.dir, "/exports"}
	for rows.Next() {
		var id, name string
		require.NoError(t, rows.Scan(&id, &name))
		if uuidPattern.MatchString(id) {
			pairs = append(pairs, id, name)
		}
	}
	require.NoError(t, rows.Err())
	return strings.NewReplacer(pairs...).Replace(out)
}

// trace runs `viaduct trace args…` in-process on the journey's database and returns its output, normalized.
func (j *transferJourney) trace(t *testing.T, args ...string) string {
	t.Helper()
	res := runCLI(t, map[string]string{"DATABASE_URL": j.db.URL}, append([]string{"trace"}, args...)...)
	require.Equal(t, 0, res.code, "stdout:\n%s\nstderr:\n%s", res.stdout, res.stderr)
	return j.normalize(t, res.stdout)
}

// requireGolden compares got with testdata/name, or with -update rewrites it.
func requireGolden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *updateGolden {
		require.NoError(t, os.MkdirAll("testdata", 0o755))
		require.NoError(t, os.WriteFile(path, []byte(got), 0o644))
		return
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "run go test ./cmd/viaduct -run Trace -update to write it")
	require.Equal(t, string(want), got, "the output differs from %s; if the change is intended, run with -update", path)
}

// traceJSON is the part of `viaduct trace --json` the tests read.
type traceJSON struct {
	Matches []struct {
		TestResultID int64 `json:"test_result_id"`
		Steps        []struct {
			Stage string `json:"stage"`
			Type  string `json:"type"`
		} `json:"steps"`
	} `json:"matches"`
}

func TestTrace(t *testing.T) {
	t.Parallel()
	j := newTransferJourney(t)

	// The golden journey: a result that was transferred and merged back, as a timeline and as JSON.
	t.Run("TransferredAndMergedBack", func(t *testing.T) {
		t.Parallel()
		text := j.trace(t, "--file", "1", "--line", "2")
		requireGolden(t, "trace_transferred.golden", text)
		requireGolden(t, "trace_transferred_json.golden", j.trace(t, "--file", "1", "--line", "2", "--json"))
		var dest string
		require.NoError(t, j.db.Pool.QueryRow(t.Context(), `SELECT 'index case ' || id FROM index_cases WHERE case_id = $1`,
			traceDestCaseID).Scan(&dest))
		for _, want := range []string{"arrived in file 1", "handed index case 1 to Engine 4",
			"posted index case 1 (CommCare case case-of-index-case-1) to " + traceSourceDomain + " (create)",
			"its update goes to " + dest + " (CommCare case " + traceDestCaseID,
			"posted " + dest + " (CommCare case " + traceDestCaseID + ") to " + traceDestDomain + " (update)",
			"into " + dest + ": interview_status"} {
			require.Contains(t, text, want)
		}
	})

	// Each selector finds the journeys it names.
	t.Run("Selectors", func(t *testing.T) {
		t.Parallel()
		for _, tt := range []struct {
			name    string
			args    []string
			results []int64
		}{
			{"Accession", []string{"--accession", j.first["OBRACCESSIONNUM"]}, []int64{1}},
			{"SecondAccession", []string{"--accession", j.second["OBRACCESSIONNUM"]}, []int64{2}},
			{"PatientKey", []string{"--patient-key", j.first["PIDPATIENTKEY"]}, []int64{1, 2}},
			{"TransferDestination", []string{"--case-id", traceDestCaseID}, []int64{1, 2}},
			{"SecondFileLine", []string{"--file", "2", "--line", "3"}, []int64{2}},
		} {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				var got traceJSON
				require.NoError(t, json.Unmarshal([]byte(j.trace(t, append(tt.args, "--json")...)), &got))
				var ids []int64
				for _, m := range got.Matches {
					ids = append(ids, m.TestResultID)
					require.Equal(t, "arrived", m.Steps[0].Type)
				}
				require.Equal(t, tt.results, ids)
			})
		}
	})

	// Without --show-pii no name, date of birth, address, phone, patient key or accession number is printed, except
	// the one the operator typed; with it, they are.
	t.Run("PatientData", func(t *testing.T) {
		t.Parallel()
		pii := func(row map[string]string) []string {
			return []string{row["PIDFIRSTNAME"], row["PIDLASTNAME"], row["PIDADDRESSLINE1"], row["PIDHOMEPHONE"],
				row["PIDZIPCODE"], row["PIDPATIENTKEY"], row["OBRACCESSIONNUM"], "2010-05-21", "21MAY2010"}
		}
		hidden := append(pii(j.first), pii(j.second)...)
		for _, args := range [][]string{{"--file", "1", "--line", "2"}, {"--file", "1", "--line", "2", "--json"},
			{"--case-id", traceDestCaseID}, {"--case-id", traceDestCaseID, "--json"}} {
			out := j.trace(t, args...)
			for _, v := range hidden {
				require.NotContains(t, out, v, "trace %v", args)
			}
		}
		// The selector the operator typed is echoed; the other result's accession number is not.
		out := j.trace(t, "--patient-key", j.first["PIDPATIENTKEY"])
		require.Contains(t, out, j.first["PIDPATIENTKEY"])
		out = strings.ReplaceAll(out, j.first["PIDPATIENTKEY"], "KEY") // whose digits may hold an accession number's
		for _, v := range []string{j.first["OBRACCESSIONNUM"], j.second["OBRACCESSIONNUM"], j.first["PIDLASTNAME"]} {
			require.NotContains(t, out, v)
		}

		for _, args := range [][]string{{"--file", "1", "--line", "2", "--show-pii"},
			{"--file", "1", "--line", "2", "--show-pii", "--json"}} {
			out := j.trace(t, args...)
			for _, v := range []string{j.first["PIDFIRSTNAME"], j.first["PIDLASTNAME"], j.first["PIDADDRESSLINE1"],
				j.first["PIDHOMEPHONE"], j.first["PIDPATIENTKEY"], j.first["OBRACCESSIONNUM"], "2010-05-21"} {
				require.Contains(t, out, v, "trace %v", args)
			}
		}
	})
}

// TestTraceUsage checks the selector rules: exactly one, named by the error, before any database is reached.
func TestTraceUsage(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"None", nil, "name the result: --file FILE_ID --line N, --accession NUMBER, --patient-key KEY or --case-id ID"},
		{"FileWithoutLine", []string{"--file", "3"}, "--file needs --line"},
		{"LineWithoutFile", []string{"--line", "3"}, "--line needs --file"},
		{"Two", []string{"--accession", "A1", "--case-id", "c"}, "give one of --file/--line, --accession, --patient-key, --case-id, not --accession and --case-id"},
		{"FileAndAccession", []string{"--file", "1", "--line", "2", "--accession", "A1"}, "not --file/--line and --accession"},
		{"Empty", []string{"--patient-key", ""}, "--patient-key must not be empty"},
		{"BadLine", []string{"--file", "1", "--line", "0"}, "--line must be a line number"},
		{"NotANumber", []string{"--file", "x", "--line", "2"}, `invalid value "x" for flag -file`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			res := runCLI(t, map[string]string{"DATABASE_URL": "postgres://nobody@127.0.0.1:1/none"}, append([]string{"trace"}, tt.args...)...)
			require.Equal(t, 2, res.code, "stdout:\n%s\nstderr:\n%s", res.stdout, res.stderr)
			require.Contains(t, res.stderr, tt.want)
		})
	}

	t.Run("Help", func(t *testing.T) {
		t.Parallel()
		res := runCLI(t, nil, "trace", "--help")
		require.Equal(t, 0, res.code)
		for _, want := range []string{"Usage: viaduct trace", "--file", "--line", "--accession", "--patient-key",
			"--case-id", "--json", "--show-pii", "DATABASE_URL"} {
			require.Contains(t, res.stdout, want)
		}
	})
}

// TestTraceDatabase checks what trace says about a database it cannot trace in: one never migrated, and one where
// nothing matches.
func TestTraceDatabase(t *testing.T) {
	t.Parallel()

	t.Run("Unmigrated", func(t *testing.T) {
		t.Parallel()
		db := pgtest.NewEmpty(t)
		res := runCLI(t, map[string]string{"DATABASE_URL": db.URL}, "trace", "--file", "1", "--line", "2")
		require.Equal(t, 1, res.code, "stderr:\n%s", res.stderr)
		require.Contains(t, res.stderr, "run `viaduct migrate` first")
	})

	t.Run("NoMatch", func(t *testing.T) {
		t.Parallel()
		db := pgtest.New(t)
		res := runCLI(t, map[string]string{"DATABASE_URL": db.URL}, "trace", "--case-id", "no-such-case")
		require.Equal(t, 1, res.code, "stderr:\n%s", res.stderr)
		require.Contains(t, res.stdout, "viaduct trace --case-id no-such-case: 0 matches")
		require.Contains(t, res.stderr, "nothing matches --case-id no-such-case")

		res = runCLI(t, map[string]string{"DATABASE_URL": db.URL}, "trace", "--accession", "A1", "--json")
		require.Equal(t, 1, res.code, "stderr:\n%s", res.stderr)
		var got map[string]any
		require.NoError(t, json.Unmarshal([]byte(res.stdout), &got))
		require.Equal(t, map[string]any{"selector": map[string]any{"accession": "A1"}, "show_pii": false,
			"matches": []any{}}, got)
	})
}

// TestTraceFailures traces what went wrong, as the engines record it: a test result Engine 2 gave up on, one it
// retries, and a case whose post CommCare refused with its job waiting to retry. `viaduct status` points to trace
// when Engine 2 or 4 failed.
func TestTraceFailures(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	db := pgtest.New(t)
	env := map[string]string{"DATABASE_URL": db.URL}
	_, err := db.Pool.Exec(ctx, `INSERT INTO files (filename, key, status) VALUES ('export.txt', 'export.txt', 'imported')`)
	require.NoError(t, err)
	result := func(line int) int64 {
		id := testfactory.TestResult(t, ctx, db.Pool, &testfactory.TestResultOpts{TestResult: eclrs.TestResult{
			PatientNameFirst: "JANE", PatientNameLast: "DOE", PatientKey: "K-9"}})
		_, err := db.Pool.Exec(ctx, `UPDATE test_results SET line_number = $2 WHERE id = $1`, id, line)
		require.NoError(t, err)
		return id
	}
	failed, retrying := result(5), result(6)
	_, err = db.Pool.Exec(ctx, `WITH e AS (INSERT INTO events (type, data) VALUES ($2, $3) RETURNING id)
		INSERT INTO test_result_events (test_result_id, event_id, finished) SELECT $1, id, true FROM e`,
		failed, eclrs.EventProcessingFailed, map[string]any{"reason": "request_accession_number is empty", "attempts": 1})
	require.NoError(t, err)
	_, err = db.Pool.Exec(ctx, `INSERT INTO test_result_attempts (test_result_id, attempts, last_error, next_attempt_at)
		VALUES ($1, 2, 'locking people: deadlock detected', now() + interval '1 minute')`, retrying)
	require.NoError(t, err)

	testfactory.County(t, ctx, db.Pool, 0)
	ic := testfactory.IndexCase(t, ctx, db.Pool, &testfactory.IndexCaseOpts{CaseID: "refused-case"})
	testfactory.Event(t, ctx, db.Pool, &testfactory.EventOpts{IndexCaseID: ic.ID, Type: casedb.EventSendToCommCareEnqueued})
	testfactory.Event(t, ctx, db.Pool, &testfactory.EventOpts{IndexCaseID: ic.ID, Type: casedb.EventSendToCommCareFailed,
		Data: map[string]any{"action": "create", "domain": "uk-midsomer-cdcms", "status": 500,
			"response": "<html>Server error for JANE DOE</html>"}})
	_, err = db.Pool.Exec(ctx, `INSERT INTO river_job (args, kind, max_attempts, queue, state, attempt, scheduled_at, errors)
		VALUES ($1, 'commcare_case_loader', 20, 'commcare', 'retryable', 1, now() + interval '15 seconds',
		        ARRAY[jsonb_build_object('at', now(), 'attempt', 1,
		              'error', 'commcare: POST https://hq.example/a/uk-midsomer-cdcms/receiver/: 500 Internal Server Error')])`,
		map[string]any{"case_id": "refused-case", "county_id": 1111})
	require.NoError(t, err)

	res := runCLI(t, env, "trace", "--file", "1", "--line", "5")
	require.Equal(t, 0, res.code, "stderr:\n%s", res.stderr)
	require.Contains(t, res.stdout, "Test result 1 (file 1, line 5): failed")
	require.Contains(t, res.stdout, "E2     failed at its first attempt: request_accession_number is empty")

	res = runCLI(t, env, "trace", "--file", "1", "--line", "6")
	require.Equal(t, 0, res.code, "stderr:\n%s", res.stderr)
	require.Contains(t, res.stdout, "Test result 2 (file 1, line 6): retrying")
	require.Contains(t, res.stdout, "attempt 2 failed: locking people: deadlock detected; the next is due at ")

	res = runCLI(t, env, "trace", "--case-id", "refused-case")
	require.Equal(t, 0, res.code, "stderr:\n%s", res.stderr)
	require.Contains(t, res.stdout, "Index case 1 (county 1111): no test result")
	require.Contains(t, res.stdout, "E4     post of index case 1 (CommCare case refused-case) to uk-midsomer-cdcms (create) "+
		"failed: HTTP 500 (its body is shown with --show-pii); Engine 4 retries it")
	require.Contains(t, res.stdout, "E4     job 1 for index case 1 is retryable: 1 of 20 attempts made, the next due at ")
	require.Contains(t, res.stdout, "the last error: commcare: POST https://hq.example/a/uk-midsomer-cdcms/receiver/: 500 Internal Server Error")
	for _, out := range []string{res.stdout, runCLI(t, env, "trace", "--file", "1", "--line", "5", "--json").stdout} {
		require.NotContains(t, out, "JANE")
		require.NotContains(t, out, "K-9")
	}
	res = runCLI(t, env, "trace", "--case-id", "refused-case", "--show-pii")
	require.Contains(t, res.stdout, "CommCare's answer: <html>Server error for JANE DOE</html>")

	res = runCLI(t, env, "status")
	require.Equal(t, 0, res.code, "stderr:\n%s", res.stderr)
	require.Contains(t, res.stdout, "viaduct trace --file FILE_ID --line N for a test result, viaduct trace --case-id CASE_ID for a case")
}
