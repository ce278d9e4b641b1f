package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/viaduct-nys/viaduct/pkg/commcare/commcaretest"
	"github.com/viaduct-nys/viaduct/pkg/pgtest"
	"github.com/viaduct-nys/viaduct/pkg/retention"
	"github.com/viaduct-nys/viaduct/pkg/tally"
)

// extractedFile is the part of `viaduct extract`'s line for a file these tests read.
type extractedFile struct {
	Status  string `json:"status"`
	New     int64  `json:"new"`
	Matched int64  `json:"matched"`
	Errors  int64  `json:"errors"`
}

// extractFile imports path into db with `viaduct extract` and returns what it printed.
func extractFile(t *testing.T, db *pgtest.DB, path string) extractedFile {
	t.Helper()
	cmd := exec.Command(viaductBin, "extract", "--log-level", "warn", path)
	cmd.Env = append(os.Environ(), "DATABASE_URL="+db.URL)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, "viaduct extract:\n%s", stderr.String())
	var res extractedFile
	require.NoError(t, json.Unmarshal(out, &res), "%s", out)
	return res
}

// purge runs `viaduct purge --json` on db with args and returns what it printed.
func purge(t *testing.T, db *pgtest.DB, args ...string) *retention.Result {
	t.Helper()
	res := runCLI(t, map[string]string{"DATABASE_URL": db.URL}, append([]string{"purge", "--json"}, args...)...)
	require.Equal(t, 0, res.code, "stderr:\n%s", res.stderr)
	var out retention.Result
	require.NoError(t, json.Unmarshal([]byte(res.stdout), &out), "%s", res.stdout)
	return &out
}

// purgeRows are a purge's rows by table.
func purgeRows(res *retention.Result) map[string]int64 {
	out := map[string]int64{}
	for _, t := range res.Tables {
		out[t.Name] = t.Rows
	}
	return out
}

// TestPurgeEndToEnd runs an export through Engines 1 to 4 (the fake CommCare), lets CommCare close two cases in
// three and two months pass, then purges with `viaduct purge --older-than 30d`: the dry run says what the purge then
// does, no personal data is left in what was purged, the identities, open cases and counts are as they were, the
// same export imported again brings no new row, and a second purge finds nothing.
func TestPurgeEndToEnd(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	const rows = 300
	export := writeGeneratedExport(t, rows, 16)
	f, err := os.OpenFile(export, os.O_APPEND|os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = f.WriteString("DOE|JANE|A ROW CUT SHORT\n")
	require.NoError(t, err)
	require.NoError(t, f.Close())

	db := pgtest.New(t)
	fake := commcaretest.StartTest(t, commcaretest.Options{})
	first := extractFile(t, db, export)
	require.Equal(t, extractedFile{Status: "imported", New: rows, Errors: 1}, first)
	p := startViaduct(t, append(e2Env(db, commCareEnv(fake)...), "COMMCARE_USER_ID=viaduct-test-user"),
		"run", "--e2", "--e3", "--e4", "--until-idle", "--http-addr", "", "--e3-idle-poll-interval", "10ms",
		"--e3-busy-poll-interval", "1ms")
	require.Equal(t, 0, p.waitExit(t, 2*time.Minute), "exit code; log:\n%s", p.logText())

	pool := db.Pool
	execSQL := func(sql string, args ...any) {
		t.Helper()
		_, err := pool.Exec(ctx, sql, args...)
		require.NoError(t, err, sql)
	}
	count := func(sql string, args ...any) int64 {
		t.Helper()
		var n int64
		require.NoError(t, pool.QueryRow(ctx, sql, args...).Scan(&n), sql)
		return n
	}
	text := func(sql string) string {
		t.Helper()
		var s string
		require.NoError(t, pool.QueryRow(ctx, sql).Scan(&s), sql)
		return s
	}
	// CommCare closes two cases in three, and Engine 5 merges the closing; then two months pass.
	execSQL(`UPDATE index_cases SET closed = true, updated_at = now() WHERE id % 3 <> 0`)
	for _, sql := range []string{
		`UPDATE test_results SET inserted_at = inserted_at - interval '60 days'`,
		`UPDATE events SET inserted_at = inserted_at - interval '60 days'`,
		`UPDATE file_row_errors SET inserted_at = inserted_at - interval '60 days'`,
		`UPDATE change_logs SET inserted_at = inserted_at - interval '60 days'`,
		`UPDATE people SET inserted_at = inserted_at - interval '60 days', updated_at = updated_at - interval '60 days'`,
		`UPDATE index_cases SET inserted_at = inserted_at - interval '60 days', updated_at = updated_at - interval '60 days'`,
	} {
		execSQL(sql)
	}

	// What must stay: every identity, every count, the people with an open case with all their cases.
	checksums := `SELECT count(*) || ':' || md5(string_agg(checksum::text, ',' ORDER BY id)) FROM test_results`
	identities := text(checksums)
	statistics := text(`SELECT string_agg(statistics::text, ',' ORDER BY id) FROM files`)
	tallies, err := tally.Read(ctx, pool)
	require.NoError(t, err)
	const openPeople = `SELECT person_id FROM index_cases WHERE NOT closed`
	const dirtyEvents = `SELECT count(*) FROM events WHERE stash IS NOT NULL OR data - $1::text[] <> '{}'`
	keptPeople := `SELECT md5(string_agg(to_jsonb(p)::text || to_jsonb(ic)::text || coalesce(labs, ''), ','
		    ORDER BY ic.id))
		  FROM people p JOIN index_cases ic ON ic.person_id = p.id
		  LEFT JOIN LATERAL (SELECT string_agg(to_jsonb(lr)::text, ',' ORDER BY lr.id) AS labs FROM lab_results lr
		                      WHERE lr.index_case_id = ic.id) l ON true
		 WHERE p.id IN (` + openPeople + `)`
	kept := text(keptPeople)
	quietPeople := count(`SELECT count(*) FROM people WHERE id NOT IN (` + openPeople + `)`)
	require.Positive(t, quietPeople)
	require.Positive(t, count(`SELECT count(*) FROM people WHERE id IN (`+openPeople+`)`))
	want := map[string]int64{
		"test_results":        rows, // every one finished by Engine 2
		"file_row_errors":     1,
		"events":              count(dirtyEvents, retention.EventKeys),
		"change_logs":         count(`SELECT count(*) FROM change_logs`),
		"commcare_case_inbox": 0,
		"people":              quietPeople,
		"person_keys":         count(`SELECT count(*) FROM person_keys WHERE person_id NOT IN (` + openPeople + `)`),
		"index_cases":         count(`SELECT count(*) FROM index_cases WHERE person_id NOT IN (` + openPeople + `)`),
		"lab_results": count(`SELECT count(*) FROM lab_results lr JOIN index_cases ic ON ic.id = lr.index_case_id
			WHERE ic.person_id NOT IN (` + openPeople + `)`),
	}
	require.Positive(t, want["events"])
	require.Positive(t, want["change_logs"])

	dry := purge(t, db, "--older-than", "30d", "--dry-run")
	require.True(t, dry.DryRun)
	require.Equal(t, want, purgeRows(dry))
	table := runCLI(t, map[string]string{"DATABASE_URL": db.URL}, "purge", "--older-than", "720h", "--dry-run")
	require.Equal(t, 0, table.code, table.stderr)
	require.Contains(t, table.stdout, "Dry run, nothing changed. A purge would remove the personal data written before")
	require.Contains(t, table.stdout, "(older than 30d)")
	require.Regexp(t, `test_results\s+would strip\s+300\s+\d`, table.stdout)
	require.Regexp(t, `change_logs\s+would delete\s+\d+`, table.stdout)

	res := purge(t, db, "--older-than", "30d")
	require.False(t, res.DryRun)
	require.Equal(t, want, purgeRows(res))
	for i, table := range res.Tables {
		require.Equal(t, dry.Tables[i], table, "the dry run said what the purge did")
	}

	// Nothing personal is left in what went.
	require.Zero(t, count(`SELECT count(*) FROM test_results WHERE num_nonnulls(raw_data, patient_name_last,
		patient_name_first, patient_dob, patient_address_1, patient_phone_home, patient_key, patient_key_id,
		request_accession_number, request_provider_name_last, employer_name, result) > 0`))
	require.Zero(t, count(`SELECT count(*) FROM file_row_errors WHERE raw_data <> '' OR reason <> ''`))
	require.Zero(t, count(dirtyEvents, retention.EventKeys))
	require.Zero(t, count(`SELECT count(*) FROM change_logs`))
	require.Zero(t, count(`SELECT count(*) FROM people WHERE id NOT IN (`+openPeople+`)
		AND (patient_keys <> '{}' OR name_last IS NOT NULL OR name_first IS NOT NULL OR dob IS NOT NULL)`))
	require.Zero(t, count(`SELECT count(*) FROM index_cases WHERE person_id NOT IN (`+openPeople+`)
		AND (data - 'transfer_source_case_id' <> '{}' OR purged_at IS NULL)`))
	require.Zero(t, count(`SELECT count(*) FROM lab_results WHERE accession_number <> '' AND index_case_id IN
		(SELECT id FROM index_cases WHERE purged_at IS NOT NULL)`))
	// What must stay did.
	require.Equal(t, identities, text(checksums), "every identity checksum stays")
	require.Equal(t, statistics, text(`SELECT string_agg(statistics::text, ',' ORDER BY id) FROM files`))
	after, err := tally.Read(ctx, pool)
	require.NoError(t, err)
	require.Equal(t, tallies, after, "the counts on the status page stay")
	require.Equal(t, kept, text(keptPeople), "people with an open case keep everything")

	// The same export again, as the next export re-sends it: nothing is new.
	again := filepath.Join(t.TempDir(), "export-again.txt")
	raw, err := os.ReadFile(export)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(again, raw, 0o600))
	require.Equal(t, extractedFile{Status: "imported", Matched: rows, Errors: 1}, extractFile(t, db, again))
	require.Equal(t, identities, text(checksums), "no row was imported again")

	// Run again, the purge finds nothing: the malformed row the second import recorded is new.
	require.Zero(t, purge(t, db, "--older-than", "30d").Total())
}

// TestPurgeConfiguration: `viaduct purge` needs a window of at least 14 days, and `run --retention` is checked the
// same way; both read VIADUCT_RETENTION, and --help lists them.
func TestPurgeConfiguration(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"Required", nil, []string{"purge"}, "--older-than (VIADUCT_RETENTION) is required"},
		{"TooShort", nil, []string{"purge", "--older-than", "7d"}, "retention: window 7d is below the minimum of 14d"},
		{"NotAWindow", nil, []string{"purge", "--older-than", "soon"}, "not a window"},
		{"NotAWindowInTheEnvironment", map[string]string{"VIADUCT_RETENTION": "lots"}, []string{"purge"},
			`VIADUCT_RETENTION="lots": not a window`},
		{"DaemonTooShort", map[string]string{"VIADUCT_RETENTION": "336h"},
			[]string{"run", "--e2", "--county-list-file", "counties.json", "--retention", "3d"},
			"retention: window 3d is below the minimum of 14d"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			res := runCLI(t, tt.env, tt.args...)
			require.Equal(t, 2, res.code, "stderr:\n%s", res.stderr)
			require.Contains(t, res.stderr, "viaduct "+tt.args[0]+": invalid configuration")
			require.Contains(t, res.stderr, tt.want)
		})
	}

	res := runCLI(t, nil, "purge", "--help")
	require.Equal(t, 0, res.code, res.stderr)
	require.Regexp(t, `--older-than\s+VIADUCT_RETENTION`, res.stdout)
	require.Contains(t, res.stdout, "--dry-run")
	res = runCLI(t, nil, "run", "--help")
	require.Equal(t, 0, res.code, res.stderr)
	require.Regexp(t, `--retention\s+VIADUCT_RETENTION\s+.*\(default ""\)`, res.stdout)
}

// TestRetentionDaemon: a daemon given --retention runs its schedule beside the engines and stops with them.
func TestRetentionDaemon(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	p := startViaduct(t, e2Env(db, "VIADUCT_RETENTION=90d"), "run", "--e2", "--until-idle", "--http-addr", "",
		"--county-list-file", writeCountyList(t))
	require.Equal(t, 0, p.waitExit(t, 30*time.Second), "exit code; log:\n%s", p.logText())
	_, ok := p.logged("all engines idle; exiting")
	require.True(t, ok, "log:\n%s", p.logText())
}
