package cli

import (
	"bytes"
	"context"
	"os/exec"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/viaduct-nys/viaduct/pkg/casedb"
	"github.com/viaduct-nys/viaduct/pkg/pgtest"
)

// TestE3EndToEnd runs `viaduct run --e2 --e3 --until-idle` as a process on imported test results: Engine 2 makes
// the index cases, then Engine 3 queues one Engine 4 job per case and records each hand-off, once.
func TestE3EndToEnd(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	importExport(t, db, writeGeneratedExport(t, 1500, 3))
	countyFile := writeCountyList(t)

	run := func() {
		cmd := exec.Command(viaductBin, "run", "--e2", "--e3", "--until-idle", "--http-addr", "",
			"--county-list-file", countyFile, "--e3-idle-poll-interval", "10ms", "--e3-busy-poll-interval", "1ms")
		cmd.Env = e2Env(db)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		require.NoError(t, cmd.Run(), stderr.String())
	}
	run()

	ctx := context.Background()
	var cases, jobs, handOffs, casesWithoutJob int
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT
		    (SELECT count(*) FROM index_cases),
		    (SELECT count(*) FROM river_job WHERE kind = $1 AND queue = $2),
		    (SELECT count(*) FROM events WHERE type = $3),
		    (SELECT count(*) FROM index_cases ic WHERE NOT EXISTS
		        (SELECT 1 FROM river_job j WHERE j.kind = $1 AND j.args->>'case_id' = ic.case_id))`,
		casedb.CaseLoaderArgs{}.Kind(), casedb.CaseLoaderQueue, casedb.EventSendToCommCareEnqueued).
		Scan(&cases, &jobs, &handOffs, &casesWithoutJob))
	require.Positive(t, cases)
	require.Equal(t, cases, jobs)
	require.Equal(t, cases, handOffs)
	require.Zero(t, casesWithoutJob)

	// Nothing changed since: a second run queues nothing.
	run()
	var jobsAfter int
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*) FROM river_job`).Scan(&jobsAfter))
	require.Equal(t, jobs, jobsAfter)
}
