package cli

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/viaduct-nys/viaduct/pkg/pgtest"
)

// e2Outcome is what Engine 2 made of the test results, counted.
type e2Outcome struct {
	People, IndexCases, LabResults, Events, ChangeLogs, Attempts int64
	EventTypes                                                   map[string]int64
}

func readE2Outcome(t *testing.T, db *pgtest.DB) e2Outcome {
	t.Helper()
	ctx := context.Background()
	var o e2Outcome
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM people), (SELECT count(*) FROM index_cases),
		(SELECT count(*) FROM lab_results), (SELECT count(*) FROM events), (SELECT count(*) FROM change_logs),
		(SELECT count(*) FROM test_result_attempts)`).
		Scan(&o.People, &o.IndexCases, &o.LabResults, &o.Events, &o.ChangeLogs, &o.Attempts))
	rows, err := db.Pool.Query(ctx, `SELECT type, count(*) FROM events GROUP BY type`)
	require.NoError(t, err)
	o.EventTypes = map[string]int64{}
	for rows.Next() {
		var typ string
		var n int64
		require.NoError(t, rows.Scan(&typ, &n))
		o.EventTypes[typ] = n
	}
	require.NoError(t, rows.Err())
	return o
}

// finishedCount returns how many test results have their finished event.
func finishedCount(t *testing.T, db *pgtest.DB) int64 {
	t.Helper()
	var n int64
	require.NoError(t, db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM test_result_events WHERE finished`).Scan(&n))
	return n
}

// queryRows returns every row of query, each formatted as its values, for messages.
func queryRows(t *testing.T, db *pgtest.DB, query string) []string {
	t.Helper()
	rows, err := db.Pool.Query(context.Background(), query)
	require.NoError(t, err)
	defer rows.Close()
	var out []string
	for rows.Next() {
		values, err := rows.Values()
		require.NoError(t, err)
		out = append(out, fmt.Sprint(values...))
	}
	require.NoError(t, rows.Err())
	return out
}

// requireE2Consistent checks what must hold of Engine 2's tables after any commit, however a run ended: a test result
// is finished at most once, and has events only if it is finished (a batch's writes commit together or not at all);
// no patient key belongs to two people; no person has two index cases in a county except through a reinfection; no
// index case has two lab results for an accession number; every event is on exactly one test result or index case.
// With done, every test result must be finished and no attempt left over.
func requireE2Consistent(t *testing.T, db *pgtest.DB, done bool) {
	t.Helper()
	// Set-based (hash joins and aggregates), not correlated subqueries: events.id has no index on the join tables.
	checks := []struct{ what, query string }{
		{"test results finished more than once", `SELECT test_result_id, count(*) FROM test_result_events
			WHERE finished GROUP BY 1 HAVING count(*) > 1`},
		{"test results with events but no finished event", `SELECT test_result_id FROM test_result_events
			GROUP BY 1 HAVING NOT bool_or(finished)`},
		{"patient keys of two people", `SELECT k, count(*) FROM people, unnest(patient_keys) k GROUP BY k HAVING count(*) > 1`},
		{"people with two index cases in a county without a reinfection", `SELECT person_id, county_id FROM index_cases
			WHERE NOT (data ? 'archived_case_id') GROUP BY 1, 2 HAVING count(*) > 1`},
		{"index cases with two lab results for an accession number", `SELECT index_case_id, accession_number
			FROM lab_results GROUP BY 1, 2 HAVING count(*) > 1`},
		{"events not on exactly one test result or index case", `SELECT e.id, e.type, count(j.event_id) FROM events e
			LEFT JOIN (SELECT event_id FROM test_result_events UNION ALL SELECT event_id FROM index_case_events) j
			       ON j.event_id = e.id
			GROUP BY e.id, e.type HAVING count(j.event_id) <> 1`},
		{"finished events that are neither processed nor processing_failed", `SELECT e.id, e.type
			FROM test_result_events f JOIN events e ON e.id = f.event_id
			WHERE f.finished AND e.type NOT IN ('processed', 'processing_failed')`},
	}
	if done {
		checks = append(checks,
			struct{ what, query string }{"test results without exactly one finished event", `SELECT tr.id, count(f.event_id)
				FROM test_results tr LEFT JOIN test_result_events f ON f.test_result_id = tr.id AND f.finished
				GROUP BY tr.id HAVING count(f.event_id) <> 1`},
			struct{ what, query string }{"attempts left over", `SELECT test_result_id, last_error FROM test_result_attempts`},
		)
	}
	for _, c := range checks {
		bad := queryRows(t, db, c.query)
		require.Empty(t, bad, "%s (%d), e.g.:\n%s", c.what, len(bad), strings.Join(bad[:min(len(bad), 10)], "\n"))
	}
}

// TestE2CrashSafety kills `viaduct run --e2` with SIGKILL at three points of its work on an import, restarting it
// each time, and requires the database to end exactly as after one uninterrupted run: every test result finished
// once, nobody and nothing duplicated, the same people, index cases, lab results and events. After every kill what
// committed is consistent: a batch is all there or not at all.
func TestE2CrashSafety(t *testing.T) {
	t.Parallel()

	export := writeGeneratedExport(t, 20_000, 4)
	countyFile := writeCountyList(t)
	args := func(more ...string) []string {
		return append([]string{"run", "--e2", "--e2-batch-size", "200", "--e2-workers", "2",
			"--county-list-file", countyFile, "--http-addr", ""}, more...)
	}

	clean := pgtest.New(t)
	importExport(t, clean, export)
	p := startViaduct(t, e2Env(clean), args("--until-idle")...)
	require.Equal(t, 0, p.waitExit(t, 45*time.Second), "clean run; log:\n%s", p.logText())
	requireE2Consistent(t, clean, true)
	want := readE2Outcome(t, clean)
	require.Positive(t, want.People)
	require.Positive(t, want.IndexCases)
	require.Positive(t, want.LabResults)
	require.Zero(t, want.EventTypes["processing_failed"], "nothing fails in a clean run")

	crashed := pgtest.New(t)
	total := importExport(t, crashed, export)
	for _, fraction := range []float64{0, 1.0 / 3, 2.0 / 3} {
		atLeast := max(1, int64(fraction*float64(total)))
		p := startViaduct(t, e2Env(crashed), args("--log-level", "debug")...)

		// Wait for batches to commit, polling: the engine logs progress only when it goes idle.
		deadline := time.Now().Add(30 * time.Second)
		ticker := time.NewTicker(10 * time.Millisecond)
		var finished int64
		for finished = finishedCount(t, crashed); finished < atLeast; finished = finishedCount(t, crashed) {
			select {
			case <-p.exited:
				require.FailNow(t, "viaduct run --e2 exited by itself", "log:\n%s", p.logText())
			case <-ticker.C:
			}
			require.True(t, time.Now().Before(deadline), "%d of %d test results finished after 30s, waiting for %d; log:\n%s",
				finished, total, atLeast, p.logText())
		}
		ticker.Stop()
		require.Less(t, finished, total, "the run is still mid-way when killed (aim: %.0f%%)", fraction*100)

		require.NoError(t, p.cmd.Process.Signal(syscall.SIGKILL))
		p.waitExit(t, 10*time.Second)
		after := finishedCount(t, crashed)
		t.Logf("killed at %d of %d test results finished (aim: at least %d)", after, total, atLeast)
		require.Less(t, after, total, "killed before the end")
		requireE2Consistent(t, crashed, false)
		// The stored claim floor, which the restart claims from, never passes a result still to do.
		require.Empty(t, queryRows(t, crashed, `SELECT tr.id FROM test_results tr, e2_claim_floor fl
			WHERE tr.id <= fl.test_result_id AND NOT EXISTS (SELECT 1 FROM test_result_events f
			WHERE f.test_result_id = tr.id AND f.finished)
			AND NOT EXISTS (SELECT 1 FROM test_result_attempts a WHERE a.test_result_id = tr.id)`),
			"unfinished test results below the stored floor")
	}

	p = startViaduct(t, e2Env(crashed), args("--until-idle")...)
	require.Equal(t, 0, p.waitExit(t, 45*time.Second), "restarted run; log:\n%s", p.logText())
	requireE2Consistent(t, crashed, true)
	require.Equal(t, total, finishedCount(t, crashed))
	require.Equal(t, want, readE2Outcome(t, crashed), "the interrupted runs end as the uninterrupted one")
	requireTalliesExact(t, crashed)
}
