package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/viaduct-nys/viaduct/engines/e2"
	"github.com/viaduct-nys/viaduct/pkg/commcare/commcaretest"
	"github.com/viaduct-nys/viaduct/pkg/eclrs/eclrsgen"
	"github.com/viaduct-nys/viaduct/pkg/pgtest"
)

// writeGeneratedExport writes a generated ECLRS export of rows rows (eclrsgen with seed) into t's temporary
// directory and returns its path.
func writeGeneratedExport(t *testing.T, rows int, seed int64) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "export.txt")
	f, err := os.Create(path)
	require.NoError(t, err)
	w := bufio.NewWriter(f)
	require.NoError(t, eclrsgen.Write(w, eclrsgen.Options{Rows: rows, Seed: seed}))
	require.NoError(t, w.Flush())
	require.NoError(t, f.Close())
	return path
}

// writeCountyList writes New York's county list (CommCare's fixture API response) into t's temporary directory and
// returns its path, for --county-list-file.
func writeCountyList(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "counties.json")
	require.NoError(t, commcaretest.WriteCountyListFile(path, commcaretest.NewYorkCounties()))
	return path
}

// importExport imports the export at path into db with `viaduct extract`, as Engine 1 does, and returns how many
// test results the database then holds.
func importExport(t *testing.T, db *pgtest.DB, path string) int64 {
	t.Helper()
	cmd := exec.Command(viaductBin, "extract", "--log-level", "warn", path)
	cmd.Env = append(os.Environ(), "DATABASE_URL="+db.URL)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, "viaduct extract:\n%s", stderr.String())
	require.Contains(t, string(out), `"status":"imported"`)
	var n int64
	require.NoError(t, db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM test_results`).Scan(&n))
	require.Positive(t, n)
	return n
}

// e2Env returns the environment a `viaduct run --e2` subprocess on db needs, plus extra.
func e2Env(db *pgtest.DB, extra ...string) []string {
	return append([]string{
		"DATABASE_URL=" + db.URL,
		"VIADUCT_LOG_FORMAT=json",
		"VIADUCT_LOG_LEVEL=info",
	}, extra...)
}

// commCareEnv returns the environment that points the daemon at fake for the county list.
func commCareEnv(fake *commcaretest.Server) []string {
	return []string{
		"COMMCARE_BASE_URL=" + fake.URL(),
		"COMMCARE_API_KEY_CREDENTIALS=" + fake.Credentials(),
		"COMMCARE_ROOT_DOMAIN=" + fake.RootDomain(),
	}
}

// e2Status is the part of `viaduct status --json` these tests read.
type e2Status struct {
	E1 struct {
		TestResults int64 `json:"test_results"`
	} `json:"e1"`
	E2 *struct {
		Processed     int64      `json:"processed"`
		Ignored       int64      `json:"ignored"`
		Failed        int64      `json:"failed"`
		Waiting       int64      `json:"waiting"`
		Retrying      int64      `json:"retrying"`
		OldestWaiting *time.Time `json:"oldest_waiting"`
		People        int64      `json:"people"`
		IndexCases    int64      `json:"index_cases"`
		LabResults    int64      `json:"lab_results"`
		LastFailure   string     `json:"last_failure"`
	} `json:"e2"`
}

// TestE2Configuration checks `viaduct run --e2`'s configuration errors: it needs a county source, and its problems
// are reported together with every other one, exit 2, before anything is reached. None of these touches a database.
func TestE2Configuration(t *testing.T) {
	t.Parallel()

	const needsCounties = "--e2 needs the county list: --county-list-file (VIADUCT_COUNTY_LIST_FILE), " +
		"or --commcare-url and --commcare-api-key (COMMCARE_BASE_URL, COMMCARE_API_KEY_CREDENTIALS)"
	tests := []configCase{
		{
			name: "NeedsCountySource",
			args: []string{"run", "--e2"},
			want: []string{needsCounties}, wantNotIn: []string{"no engine enabled", "not part of this build"},
		},
		{
			name: "EnvironmentEnablesE2",
			env:  map[string]string{"VIADUCT_E2_ENABLED": "true"},
			args: []string{"run"},
			want: []string{needsCounties}, wantNotIn: []string{"no engine enabled"},
		},
		{
			name: "URLWithoutKeyIsNotEnough",
			args: []string{"run", "--e2", "--commcare-url", "https://www.commcarehq.org"},
			want: []string{needsCounties},
		},
		{
			name: "KeyWithoutURLIsNotEnough",
			env:  map[string]string{"COMMCARE_API_KEY_CREDENTIALS": "someone@example.org:k3y-0f-a-s0rt"},
			args: []string{"run", "--e2"},
			want: []string{needsCounties}, wantNotIn: []string{"k3y-0f-a-s0rt"},
		},
		{
			name: "ReportsEveryProblemAtOnce",
			env:  map[string]string{"VIADUCT_E2_BATCH_SIZE": "lots"},
			args: []string{"run", "--e2", "--e2-ignore-before", "last tuesday", "--commcare-api-key", "nocolon",
				"--county-refresh", "10s", "--log-level", "loud"},
			want: []string{
				needsCounties,
				`--e2-ignore-before "last tuesday": use YYYY-MM-DD or an RFC 3339 time`,
				"--commcare-api-key (COMMCARE_API_KEY_CREDENTIALS) must look like <username>:<api key>",
				`VIADUCT_E2_BATCH_SIZE="lots": not a whole number`,
				"--county-refresh 10s must be at least 1m",
				`--log-level "loud"`,
			},
			// A malformed key is still a secret.
			wantNotIn: []string{"nocolon"},
		},
		{
			name:      "BadCommCareURL",
			env:       map[string]string{"COMMCARE_BASE_URL": "ftp://commcare.example.org", "COMMCARE_API_KEY_CREDENTIALS": "someone:key"},
			args:      []string{"run", "--e2"},
			want:      []string{`--commcare-url "ftp://commcare.example.org" must be an absolute http(s) URL`},
			wantNotIn: []string{"--e2 needs the county list"},
		},
		{
			// The county source is satisfied by the file alone; the run still fails for E1's missing queue, before
			// reaching the database.
			name: "CountyListFileSuffices",
			args: []string{"run", "--e1", "--e2", "--county-list-file", "/nonexistent/counties.json"},
			want: []string{"--e1 needs --sqs-queue-url"}, wantNotIn: []string{"--e2 needs", "county-list-file"},
		},
		{
			name: "CommCareSuffices",
			env: map[string]string{
				"COMMCARE_BASE_URL": "https://www.commcarehq.org", "COMMCARE_API_KEY_CREDENTIALS": "someone@example.org:k3y",
			},
			args: []string{"run", "--e1", "--e2"},
			want: []string{"--e1 needs --sqs-queue-url"}, wantNotIn: []string{"--e2 needs", "k3y"},
		},
		{
			name: "RefusesOutOfRangeTuning",
			args: []string{"run", "--e2", "--county-list-file", "counties.json", "--e2-batch-size", "0",
				"--e2-workers", "0", "--e2-poll-interval", "1ms", "--e2-max-attempts", "0"},
			want: []string{"e2: batch size 0 is outside 1 to 50,000", "e2: 0 workers is outside 1 to 64",
				"e2: poll interval 1ms is below 10ms", "e2: max attempts 0 must be at least 1"},
			wantNotIn: []string{"--e2 needs the county list"},
		},
		{
			name: "E2DisabledNeedsNoCounties",
			env:  map[string]string{"VIADUCT_E2_ENABLED": "true"},
			args: []string{"run", "--e2=false", "--e1"},
			want: []string{"--e1 needs --sqs-queue-url"}, wantNotIn: []string{"--e2 needs"},
		},
	}
	checkConfigCases(t, tests)
}

// TestE2Help checks that `viaduct run --help` lists Engine 2's and the county list's flags next to their environment
// variables, and shows defaults, never values from the environment: the API key must not reach a terminal that way.
func TestE2Help(t *testing.T) {
	t.Parallel()

	const secret = "h3lp-must-not-show-this"
	res := runCLI(t, map[string]string{
		"COMMCARE_API_KEY_CREDENTIALS": "someone@example.org:" + secret,
		"VIADUCT_E2_BATCH_SIZE":        "777",
	}, "run", "--help")
	require.Equal(t, 0, res.code, "stderr:\n%s", res.stderr)
	require.Empty(t, res.stderr)
	require.NotContains(t, res.stdout, secret)
	require.NotContains(t, res.stdout, "777")

	flagLine := regexp.MustCompile(`^\s+--(\S+)\s+(\S+)\s+(.*)$`)
	listed := map[string][2]string{} // flag → environment variable, rest of the line
	sc := bufio.NewScanner(strings.NewReader(res.stdout))
	for sc.Scan() {
		if m := flagLine.FindStringSubmatch(sc.Text()); m != nil {
			listed[m[1]] = [2]string{m[2], m[3]}
		}
	}
	// Tuning defaults ("") may change; these are the ones with a meaning: off, no secret, the original's values.
	for _, f := range []struct{ flag, env, def string }{
		{"e2", "VIADUCT_E2_ENABLED", "false"},
		{"commcare-url", "COMMCARE_BASE_URL", `""`},
		{"commcare-api-key", "COMMCARE_API_KEY_CREDENTIALS", `""`},
		{"commcare-root-domain", "COMMCARE_ROOT_DOMAIN", "ny-statewide-cdcms"},
		{"county-list-file", "VIADUCT_COUNTY_LIST_FILE", `""`},
		{"county-refresh", "VIADUCT_COUNTY_REFRESH", ""},
		{"e2-batch-size", "VIADUCT_E2_BATCH_SIZE", ""},
		{"e2-workers", "VIADUCT_E2_WORKERS", ""},
		{"e2-poll-interval", "VIADUCT_E2_POLL_INTERVAL", ""},
		{"e2-max-attempts", "VIADUCT_E2_MAX_ATTEMPTS", ""},
		{"e2-ignore-before", "VIADUCT_E2_IGNORE_BEFORE", e2.DefaultIgnoreBefore.Format(time.DateOnly)},
	} {
		got, ok := listed[f.flag]
		require.True(t, ok, "--%s is not listed:\n%s", f.flag, res.stdout)
		require.Equal(t, f.env, got[0], "--%s's environment variable:\n%s", f.flag, res.stdout)
		require.Contains(t, got[1], "(default "+f.def, "--%s's default:\n%s", f.flag, res.stdout)
	}
	require.Equal(t, "2020-07-13", e2.DefaultIgnoreBefore.Format(time.DateOnly), "the original's threshold")
}

// TestE2CommCareKey runs the binary with the county list served by a fake CommCare and checks that the API key
// reaches CommCare, as the ApiKey Authorization header, and nothing else: not the start line, not any log line, not
// an error when CommCare refuses it.
func TestE2CommCareKey(t *testing.T) {
	t.Parallel()

	t.Run("NotLogged", func(t *testing.T) {
		t.Parallel()
		fake := commcaretest.StartTest(t, commcaretest.Options{})
		_, key, ok := strings.Cut(fake.Credentials(), ":")
		require.True(t, ok)
		require.NotEmpty(t, key)

		db := pgtest.New(t)
		p := startViaduct(t, e2Env(db, commCareEnv(fake)...), "run", "--e2", "--until-idle", "--http-addr", "")
		require.Equal(t, 0, p.waitExit(t, 30*time.Second), "exit code; log:\n%s", p.logText())

		start, ok := p.logged("starting")
		require.True(t, ok, "log:\n%s", p.logText())
		line, err := json.Marshal(start)
		require.NoError(t, err)
		require.Contains(t, string(line), "e2", "the start line names the engines")
		require.NotContains(t, string(line), key)
		require.NotContains(t, p.logText(), key)
		_, ok = p.logged("county list loaded")
		require.True(t, ok, "log:\n%s", p.logText())

		fixture := "/a/" + fake.RootDomain() + "/api/v0.5/fixture/"
		var fetched bool
		for _, r := range fake.Requests() {
			if r.Method == "GET" && r.Path == fixture {
				fetched = true
				require.Equal(t, "county_list", r.Query().Get("fixture_type"))
				require.Equal(t, "ApiKey "+fake.Credentials(), r.Header.Get("Authorization"))
			}
		}
		require.True(t, fetched, "no GET %s among %d requests", fixture, len(fake.Requests()))
	})

	t.Run("NotInErrors", func(t *testing.T) {
		t.Parallel()
		fake := commcaretest.StartTest(t, commcaretest.Options{})
		const wrongKey = "wr0ng-k3y-th4t-must-n0t-le4k"
		env := e2Env(pgtest.New(t), commCareEnv(fake)...)
		env = append(env, "COMMCARE_API_KEY_CREDENTIALS=viaduct@example.org:"+wrongKey)

		p := startViaduct(t, env, "run", "--e2", "--until-idle", "--http-addr", "")
		require.Equal(t, 1, p.waitExit(t, 30*time.Second), "exit code; log:\n%s", p.logText())
		log := p.logText()
		require.Contains(t, log, "loading the county list")
		require.Contains(t, log, "401")
		require.NotContains(t, log, wrongKey)

		requests := fake.Requests()
		require.NotEmpty(t, requests)
		require.Equal(t, "ApiKey viaduct@example.org:"+wrongKey, requests[0].Header.Get("Authorization"),
			"the key went to CommCare, only there")
	})
}

// TestE2EndToEnd imports a generated export with `viaduct extract`, runs `viaduct run --e2 --until-idle` as the real
// binary, once with the county list from a file and once from (fake) CommCare, and reads the outcome back with
// `viaduct status`: every test result processed, people, index cases and lab results made, and the same outcome
// whichever way the county list came.
func TestE2EndToEnd(t *testing.T) {
	t.Parallel()

	const rows = 2000
	export := writeGeneratedExport(t, rows, 1)
	countyFile := writeCountyList(t)

	type outcome struct {
		status e2Status
		table  map[string]int64 // e2 rows of the status table by what they count
	}
	tests := []struct {
		name string
		// setup returns the extra environment and arguments of `viaduct run`, and a check run after it.
		setup func(t *testing.T) (env, args []string, after func(t *testing.T))
	}{
		{
			name: "CountyListFile",
			setup: func(t *testing.T) ([]string, []string, func(*testing.T)) {
				return nil, []string{"--county-list-file", countyFile}, func(*testing.T) {}
			},
		},
		{
			name: "CountyListFromCommCare",
			setup: func(t *testing.T) ([]string, []string, func(*testing.T)) {
				fake := commcaretest.StartTest(t, commcaretest.Options{})
				return commCareEnv(fake), nil, func(t *testing.T) {
					fixture := "/a/" + fake.RootDomain() + "/api/v0.5/fixture/"
					var fetched int
					for _, r := range fake.Requests() {
						require.Equal(t, "ApiKey "+fake.Credentials(), r.Header.Get("Authorization"))
						if r.Method == "GET" && r.Path == fixture && r.Query().Get("fixture_type") == "county_list" {
							fetched++
						}
					}
					require.Positive(t, fetched, "requests: %+v", fake.Requests())
				}
			},
		},
	}
	outcomes := make([]outcome, len(tests))
	// The runs are parallel subtests of one group, which returns once both are done.
	ok := t.Run("Runs", func(t *testing.T) {
		for i, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				db := pgtest.New(t)
				imported := importExport(t, db, export)
				require.Equal(t, int64(rows), imported, "every generated row is a new test result")

				env, args, after := tt.setup(t)
				p := startViaduct(t, e2Env(db, env...), append([]string{"run", "--e2", "--until-idle", "--http-addr", ""}, args...)...)
				require.Equal(t, 0, p.waitExit(t, 40*time.Second), "exit code; log:\n%s", p.logText())
				stopping, ok := p.logged("no test results ready; stopping")
				require.True(t, ok, "Engine 2's closing line; log:\n%s", p.logText())
				require.Equal(t, float64(rows), stopping["results"], "log:\n%s", p.logText())
				require.Equal(t, float64(0), stopping["failed"], "log:\n%s", p.logText())
				_, ok = p.logged("all engines idle; exiting")
				require.True(t, ok, "log:\n%s", p.logText())
				after(t)

				o := &outcomes[i]

				res := runCLI(t, map[string]string{"DATABASE_URL": db.URL}, "status", "--json")
				require.Equal(t, 0, res.code, "stderr:\n%s", res.stderr)
				require.NoError(t, json.Unmarshal([]byte(res.stdout), &o.status), "stdout:\n%s", res.stdout)
				s := o.status.E2
				require.NotNil(t, s, "an e2 object: %s", res.stdout)
				require.Equal(t, imported, o.status.E1.TestResults)
				require.Zero(t, s.Waiting, res.stdout)
				require.Zero(t, s.Retrying, res.stdout)
				require.Nil(t, s.OldestWaiting, res.stdout)
				require.Zero(t, s.Failed, res.stdout)
				require.Empty(t, s.LastFailure, res.stdout)
				require.Equal(t, imported, s.Processed, res.stdout)
				// New York City's boroughs do not participate: their results are ignored, the others are not.
				require.Positive(t, s.Ignored, res.stdout)
				require.Less(t, s.Ignored, s.Processed, res.stdout)
				require.Positive(t, s.People, res.stdout)
				require.Positive(t, s.IndexCases, res.stdout)
				require.Positive(t, s.LabResults, res.stdout)
				require.LessOrEqual(t, s.People, s.Processed-s.Ignored, res.stdout)
				require.LessOrEqual(t, s.LabResults, s.Processed-s.Ignored, res.stdout)

				res = runCLI(t, map[string]string{"DATABASE_URL": db.URL}, "status")
				require.Equal(t, 0, res.code, "stderr:\n%s", res.stderr)
				o.table = map[string]int64{}
				row := regexp.MustCompile(`^e2\s+(\S.*?)\s+(\d+)\s*$`)
				for line := range strings.Lines(res.stdout) {
					if m := row.FindStringSubmatch(strings.TrimRight(line, "\n")); m != nil {
						n, err := strconv.ParseInt(m[2], 10, 64)
						require.NoError(t, err)
						o.table[m[1]] = n
					}
				}
				require.Equal(t, map[string]int64{
					"test results processed": s.Processed,
					"of which ignored":       s.Ignored,
					"test results failed":    0,
					"test results waiting":   0,
					"of which retrying":      0,
					"people":                 s.People,
					"index cases":            s.IndexCases,
					"lab results":            s.LabResults,
				}, o.table, "status table:\n%s", res.stdout)
				require.NotContains(t, res.stdout, "oldest waiting test result", "nothing waits")
				require.NotContains(t, res.stdout, "last test result failure", "nothing failed")
			})
		}
	})
	require.True(t, ok, "a run failed")
	require.Equal(t, outcomes[0], outcomes[1], "the county list from CommCare gives what the file gives")
}
