package cli

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/viaduct-nys/viaduct/pkg/casedb"
	"github.com/viaduct-nys/viaduct/pkg/pgtest"
	"github.com/viaduct-nys/viaduct/pkg/tally"
)

// requireTalliesExact checks that the tallies the status page shows equal a full recount of the tables.
func requireTalliesExact(t *testing.T, db *pgtest.DB) {
	t.Helper()
	ctx := context.Background()
	counts, err := tally.Read(ctx, db.Pool)
	require.NoError(t, err)
	recount := tally.Counts{}
	for _, table := range []string{tally.TestResults, tally.FileRowErrors, tally.People, tally.IndexCases, tally.LabResults} {
		var n int64
		require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*) FROM `+table).Scan(&n))
		recount[table] = n
		counts[table] += 0 // a table never written has no tally row: it counts 0
	}
	rows, err := db.Pool.Query(ctx, `SELECT type, count(*) FROM events GROUP BY type`)
	require.NoError(t, err)
	for rows.Next() {
		var typ string
		var n int64
		require.NoError(t, rows.Scan(&typ, &n))
		recount[tally.EventName(typ)] = n
	}
	require.NoError(t, rows.Err())
	require.Equal(t, recount, counts)
}

// handOffs returns how many send_to_commcare_enqueued events there are.
func handOffs(t *testing.T, db *pgtest.DB) int64 {
	t.Helper()
	var n int64
	require.NoError(t, db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM events WHERE type = $1`,
		casedb.EventSendToCommCareEnqueued).Scan(&n))
	return n
}

// TestE3CrashSafety kills `viaduct run --e3` with SIGKILL twice while it hands cases off, between a batch's commit
// and the horizon that covers it as it happens, restarts it, and requires every index case handed off exactly once:
// one job and one hand-off event each, nothing left changed by a full recount, and the status tallies exact.
func TestE3CrashSafety(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.New(t)
	importExport(t, db, writeGeneratedExport(t, 3000, 7))
	countyFile := writeCountyList(t)
	p := startViaduct(t, e2Env(db), "run", "--e2", "--until-idle", "--county-list-file", countyFile, "--http-addr", "")
	require.Equal(t, 0, p.waitExit(t, 60*time.Second), "log:\n%s", p.logText())
	var cases int64
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*) FROM index_cases`).Scan(&cases))
	require.Greater(t, cases, int64(100))

	args := []string{"run", "--e3", "--e3-batch-size", "5", "--county-list-file", countyFile, "--http-addr", ""}
	for _, fraction := range []float64{0.1, 0.5} {
		atLeast := max(1, int64(fraction*float64(cases)))
		p := startViaduct(t, e2Env(db), args...)
		ticker := time.NewTicker(5 * time.Millisecond)
		deadline := time.Now().Add(60 * time.Second)
		for handOffs(t, db) < atLeast {
			select {
			case <-p.exited:
				require.FailNow(t, "viaduct run --e3 exited by itself", "log:\n%s", p.logText())
			case <-ticker.C:
			}
			require.True(t, time.Now().Before(deadline), "waiting for %d hand-offs; log:\n%s", atLeast, p.logText())
		}
		ticker.Stop()
		require.NoError(t, p.cmd.Process.Signal(syscall.SIGKILL))
		p.waitExit(t, 10*time.Second)
		t.Logf("killed at %d of %d cases handed off", handOffs(t, db), cases)
	}

	p = startViaduct(t, e2Env(db), append(args, "--until-idle")...)
	require.Equal(t, 0, p.waitExit(t, 60*time.Second), "log:\n%s", p.logText())

	for what, query := range map[string]string{
		"cases handed off other than once": `SELECT j.index_case_id, count(*) FROM index_case_events j
			JOIN events e ON e.id = j.event_id WHERE e.type = 'send_to_commcare_enqueued' GROUP BY 1 HAVING count(*) <> 1
			UNION ALL SELECT id, 0 FROM index_cases ic WHERE NOT EXISTS (SELECT 1 FROM index_case_events j
			JOIN events e ON e.id = j.event_id WHERE j.index_case_id = ic.id AND e.type = 'send_to_commcare_enqueued')`,
		"cases with other than one job": `SELECT ic.id, count(j.id) FROM index_cases ic
			LEFT JOIN river_job j ON j.args->>'case_id' = ic.case_id GROUP BY ic.id HAVING count(j.id) <> 1`,
		"cases still changed by a full recount": `SELECT ic.id FROM index_cases ic WHERE ` + e3ChangedRule,
	} {
		require.Empty(t, queryRows(t, db, query), what)
	}
	requireTalliesExact(t, db)
}

// e3ChangedRule is the selection rule as the reference states it (§4.1), written out here apart from the engine so
// that the test checks the engine against the reference rather than against itself.
const e3ChangedRule = `(SELECT max(e.id) FROM index_case_events j JOIN events e ON e.id = j.event_id
	  WHERE j.index_case_id = ic.id AND e.type IN ('index_case_created', 'index_case_updated', 'lab_result_created',
	        'lab_result_updated'))
	> coalesce((SELECT max(e.id) FROM index_case_events j JOIN events e ON e.id = j.event_id
	  WHERE j.index_case_id = ic.id AND e.type IN ('send_to_commcare_enqueued', 'send_to_commcare_failed',
	        'send_to_commcare_succeeded')), 0)`
