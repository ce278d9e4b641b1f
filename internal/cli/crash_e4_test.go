package cli

import (
	"context"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/viaduct-nys/viaduct/pkg/commcare/commcaretest"
	"github.com/viaduct-nys/viaduct/pkg/countylist"
	"github.com/viaduct-nys/viaduct/pkg/pgtest"
)

// TestE4KilledMidJob kills `viaduct run --e4` with SIGKILL while its jobs wait on a slow CommCare, leaving them
// `running` with no worker, as a kill -9, an OOM kill or a lost node does. The restarted daemon's River rescues them
// once --e4-rescue-after has passed (not River's default hour) and posts every case; meanwhile `viaduct status`
// shows how long the longest job has been running.
func TestE4KilledMidJob(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.New(t)
	importExport(t, db, writeGeneratedExport(t, 60, 11))
	countyFile := writeCountyList(t)
	p := startViaduct(t, e2Env(db), "run", "--e2", "--e3", "--until-idle", "--county-list-file", countyFile,
		"--http-addr", "")
	require.Equal(t, 0, p.waitExit(t, time.Minute), "log:\n%s", p.logText())
	var cases int
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*) FROM index_cases`).Scan(&cases))
	require.Positive(t, cases)

	// Each request takes a second: the kill finds jobs mid-post. Attempts end within the 5 s job timeout, so a job
	// running for 8 s was left by a dead daemon.
	fake := commcaretest.StartTest(t, commcaretest.Options{Latency: time.Second})
	env := append(append(e2Env(db), commCareEnv(fake)...), "COMMCARE_USER_ID=viaduct-test-user")
	args := []string{"run", "--e4", "--http-addr", "", "--e4-job-timeout", "5s", "--e4-rescue-after", "8s"}
	p = startViaduct(t, env, args...)
	running := func() int {
		var n int
		require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*) FROM river_job WHERE state = 'running'`).Scan(&n))
		return n
	}
	ticker := time.NewTicker(5 * time.Millisecond)
	defer ticker.Stop()
	for running() == 0 {
		select {
		case <-p.exited:
			require.FailNow(t, "viaduct run --e4 exited by itself", "log:\n%s", p.logText())
		case <-ticker.C:
		}
	}
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGKILL))
	p.waitExit(t, 10*time.Second)
	stuck := running()
	require.Positive(t, stuck, "jobs left running by the killed daemon")

	res := runCLI(t, map[string]string{"DATABASE_URL": db.URL}, "status")
	require.Equal(t, 0, res.code, res.stderr)
	require.Contains(t, res.stdout, strconv.Itoa(stuck)+" running (the longest for ")

	p = startViaduct(t, env, append(args, "--until-idle")...)
	require.Equal(t, 0, p.waitExit(t, 3*time.Minute), "log:\n%s", p.logText())
	require.Zero(t, running())
	list, err := countylist.NewList(commcaretest.NewYorkCounties())
	require.NoError(t, err)
	rows, err := db.Pool.Query(ctx, `SELECT case_id, county_id FROM index_cases`)
	require.NoError(t, err)
	defer rows.Close()
	for rows.Next() {
		var caseID string
		var county int64
		require.NoError(t, rows.Scan(&caseID, &county))
		c, ok := list.ByFIPS(strconv.FormatInt(county, 10))
		require.True(t, ok)
		_, ok = fake.Case(c.Domain, caseID)
		require.True(t, ok, "case %s reached %s after the rescue", caseID, c.Domain)
	}
	require.NoError(t, rows.Err())
}
