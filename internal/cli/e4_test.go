package cli

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/viaduct-nys/viaduct/pkg/awstest"
	"github.com/viaduct-nys/viaduct/pkg/commcare/commcaretest"
	"github.com/viaduct-nys/viaduct/pkg/countylist"
	"github.com/viaduct-nys/viaduct/pkg/pgtest"
)

// announceGeneratedExport starts AWS stand-ins (or uses AWS_ENDPOINT_URL) with a bucket and queue named after
// prefix, puts a generated export of rows rows (eclrsgen with seed) in the bucket and announces it on the queue as
// S3 would.
func announceGeneratedExport(t *testing.T, prefix string, rows int, seed int64) (*awstest.Env, awstest.Resources) {
	t.Helper()
	ctx := t.Context()
	env, stopAWS, err := awstest.Start(ctx)
	require.NoError(t, err)
	t.Cleanup(stopAWS)
	names := awstest.UniqueNames(prefix)
	res, err := env.CreateResources(ctx, names, nil)
	require.NoError(t, err)
	export, err := os.Open(writeGeneratedExport(t, rows, seed))
	require.NoError(t, err)
	defer export.Close()
	key := "COVID19_ECLRS_Export_positive_2026-11-20 0930.txt"
	require.NoError(t, env.Upload(ctx, names.Bucket, key, export))
	require.NoError(t, env.Announce(ctx, res, names.Bucket, key, awstest.AnnounceOpts{EventTime: time.Now()}))
	return env, res
}

// TestE4EndToEnd runs Engines 1 to 4 in one `viaduct run --until-idle` process: an ECLRS export put in S3 and
// announced on SQS ends up as patient cases, each with its lab results, in its county's domain of the fake
// CommCare, once. A second run posts nothing: nothing changed.
func TestE4EndToEnd(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	env, res := announceGeneratedExport(t, "e4", 600, 4)

	db := pgtest.New(t)
	fake := commcaretest.StartTest(t, commcaretest.Options{})
	run := func() {
		p := startViaduct(t, append(append(daemonEnv(env, db), commCareEnv(fake)...), "COMMCARE_USER_ID=viaduct-test-user"),
			"run", "--e1", "--e2", "--e3", "--e4", "--until-idle", "--http-addr", "",
			"--sqs-queue-url", res.QueueURL, "--e3-idle-poll-interval", "10ms", "--e3-busy-poll-interval", "1ms",
			"--e4-concurrency", "20")
		require.Equal(t, 0, p.waitExit(t, 3*time.Minute), "exit code; log:\n%s", p.logText())
	}
	run()

	// Every index case is in its county's domain with all its lab results.
	list, err := countylist.NewList(commcaretest.NewYorkCounties())
	require.NoError(t, err)
	rows, err := db.Pool.Query(ctx, `SELECT ic.case_id, ic.county_id, count(lr.id) FROM index_cases ic
		  LEFT JOIN lab_results lr ON lr.index_case_id = ic.id GROUP BY ic.id`)
	require.NoError(t, err)
	cases := 0
	for rows.Next() {
		var caseID string
		var county, labs int64
		require.NoError(t, rows.Scan(&caseID, &county, &labs))
		c, ok := list.ByFIPS(strconv.FormatInt(county, 10))
		require.True(t, ok)
		got, ok := fake.Case(c.Domain, caseID)
		require.True(t, ok, "case %s is in %s", caseID, c.Domain)
		require.Equal(t, c.LocationID, got.Property("owner_id"))
		require.Equal(t, "viaduct-test-user", got.UserID)
		children := 0
		for _, child := range got.ChildCases {
			if child.Type() == "lab_result" {
				children++
			}
		}
		require.EqualValues(t, labs, children, "case %s has all its lab results", caseID)
		cases++
	}
	require.NoError(t, rows.Err())
	require.Positive(t, cases)
	submissions := func() int {
		n := 0
		for _, d := range fake.Domains() {
			n += fake.Submissions(d)
		}
		return n
	}
	require.Equal(t, cases, submissions(), "one form per case")

	out, err := exec.Command(viaductBin, "status", "--json", "--database-url", db.URL).Output()
	require.NoError(t, err)
	var status struct {
		E3 struct {
			Waiting  int64 `json:"waiting"`
			Enqueued int64 `json:"enqueued"`
		} `json:"e3"`
		E4 struct {
			Jobs   map[string]int64 `json:"jobs"`
			Posted int64            `json:"posted_last_hour"`
		} `json:"e4"`
	}
	require.NoError(t, json.Unmarshal(out, &status))
	require.Zero(t, status.E3.Waiting)
	require.EqualValues(t, cases, status.E3.Enqueued)
	require.Equal(t, map[string]int64{"completed": int64(cases)}, status.E4.Jobs)
	require.EqualValues(t, cases, status.E4.Posted)

	// Nothing changed: a second run enqueues and posts nothing.
	run()
	require.Equal(t, cases, submissions())
	var jobs int
	require.NoError(t, db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM river_job`).Scan(&jobs))
	require.Equal(t, cases, jobs)
}
