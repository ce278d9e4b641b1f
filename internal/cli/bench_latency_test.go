//go:build bench

package cli

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/viaduct-nys/viaduct/pkg/awstest"
	"github.com/viaduct-nys/viaduct/pkg/casedb"
	"github.com/viaduct-nys/viaduct/pkg/commcare/commcaretest"
	"github.com/viaduct-nys/viaduct/pkg/eclrs"
	"github.com/viaduct-nys/viaduct/pkg/eclrs/eclrsgen"
	"github.com/viaduct-nys/viaduct/pkg/pgtest"
)

// latencyStages are the points of a result's journey the benchmark times, each the moment its row became visible:
// the notification (announced), the test result (imported by Engine 1), its processed event (Engine 2), the
// send_to_commcare_enqueued event on every case it changed (Engine 3) and the send_to_commcare_succeeded after it
// (Engine 4, once CommCare accepted the form).
var latencyStages = []string{"notification", "imported", "transformed", "handed off", "posted"}

// latencyTick is how often the observer looks: every time is the start of the first look that saw the row, so it is
// late by up to a tick (half on average) plus the look itself.
const latencyTick = 10 * time.Millisecond

// TestBenchLatency is `make bench-latency`: one `viaduct run --e1 --e2 --e3 --e4` on its defaults, against the
// in-process S3 and SQS stand-ins and the fake CommCare answering at once. Each round puts an export of 40 new
// results (generated, over the participating counties) in the bucket, announces it and times each result through
// the stages, on PostgreSQL's clock: the announce time is read just before the notification is sent, and every other
// time is when an observer, looking every 10 ms, first saw the stage's row committed. Rounds start at a random
// moment after the previous one is posted, so they fall at every phase of the engines' polls. It prints p50 and p90
// per stage and end to end. A measurement, not a test: it fails only if something breaks.
// VIADUCT_BENCH_LATENCY_ROUNDS (default 25) and …_ROWS (40) are the knobs; …_FLAGS adds flags to the daemon's, to try
// a setting.
func TestBenchLatency(t *testing.T) {
	ctx := t.Context()
	rounds := envInt("VIADUCT_BENCH_LATENCY_ROUNDS", 25)
	rows := envInt("VIADUCT_BENCH_LATENCY_ROWS", 40)

	env, stopAWS, err := awstest.Start(ctx)
	require.NoError(t, err)
	t.Cleanup(stopAWS)
	names := awstest.UniqueNames("latency")
	res, err := env.CreateResources(ctx, names, nil)
	require.NoError(t, err)
	db := pgtest.New(t)
	fake := commcaretest.StartTest(t, commcaretest.Options{})

	// The daemon's defaults, but for what the stand-ins need. The test environment's shortened SQS wait is left out:
	// a long poll returns as soon as a message arrives, whatever its length.
	var daemonVars []string
	for _, v := range daemonEnv(env, db) {
		if !strings.HasPrefix(v, "VIADUCT_SQS_WAIT_TIME=") {
			daemonVars = append(daemonVars, v)
		}
	}
	daemonVars = append(append(daemonVars, commCareEnv(fake)...), "COMMCARE_USER_ID=viaduct-bench-user")
	args := append([]string{"run", "--e1", "--e2", "--e3", "--e4", "--http-addr", "", "--sqs-queue-url", res.QueueURL},
		strings.Fields(os.Getenv("VIADUCT_BENCH_LATENCY_FLAGS"))...)
	p := startViaduct(t, daemonVars, args...)

	var participating []int64
	for _, c := range commcaretest.NewYorkCounties() {
		if n, err := strconv.ParseInt(c.FIPS, 10, 64); err == nil && c.Participating && !c.Statewide {
			participating = append(participating, n)
		}
	}
	rng := rand.New(rand.NewPCG(17, 1))
	var samples []latencySample
	var measuredFrom time.Time
	skipped := 0
	// Round 0 warms up (connections, the first River fetch, the caches) and is not counted.
	for round := 0; round <= rounds; round++ {
		var export bytes.Buffer
		require.NoError(t, eclrsgen.Write(&export, eclrsgen.Options{Rows: rows, FirstRow: round * rows, Seed: 17,
			Counties: participating}))
		key := fmt.Sprintf("COVID19_ECLRS_Export_positive_2026-11-20 %04d.txt", round)
		require.NoError(t, env.Upload(ctx, names.Bucket, key, &export))

		if round > 0 {
			// A random phase against every poll in the daemon (Engine 3's half second, River's second).
			time.Sleep(time.Duration(rng.Int64N(int64(1500 * time.Millisecond))))
		}
		var announced time.Time
		var eventsBefore int64
		require.NoError(t, db.Pool.QueryRow(ctx, `SELECT now(), coalesce(max(id), 0) FROM events`).
			Scan(&announced, &eventsBefore))
		require.NoError(t, env.Announce(ctx, res, names.Bucket, key, awstest.AnnounceOpts{}))

		got, none := observeRound(t, ctx, db, key, eventsBefore, announced, p)
		if round == 1 {
			measuredFrom = announced
		}
		if round > 0 {
			samples = append(samples, got...)
			skipped += none
		}
	}
	require.NotEmpty(t, samples)
	// River's share of the last stage, from its own columns: how long each job waited to be fetched.
	rows2, err := db.Pool.Query(ctx, `SELECT attempted_at - created_at FROM river_job WHERE created_at >= $1 AND kind = $2`,
		measuredFrom, casedb.CaseLoaderArgs{}.Kind())
	require.NoError(t, err)
	fetch, err := pgx.CollectRows(rows2, pgx.RowTo[time.Duration])
	require.NoError(t, err)
	printLatency(samples, fetch, rounds, rows, skipped)
}

// latencySample is one result's times, indexed as latencyStages.
type latencySample [5]time.Time

// latencyObserve reads, for every test result of the file with key $1, whether Engine 2 finished it, whether it
// processed it, and how many of the index case changes it made (events after $2) have been handed off and posted
// since.
const latencyObserve = `WITH tr AS (
	SELECT t.id FROM test_results t JOIN files f ON f.id = t.file_id WHERE f.key = $1
), tw AS (
	SELECT (e.data->>'test_result_id')::bigint AS tr_id, j.index_case_id, e.id AS ev
	  FROM events e JOIN index_case_events j ON j.event_id = e.id
	 WHERE e.id > $2 AND e.type = ANY($3) AND (e.data->>'test_result_id')::bigint IN (SELECT id FROM tr)
)
SELECT now(), tr.id,
       EXISTS (SELECT 1 FROM test_result_events te WHERE te.test_result_id = tr.id AND te.finished),
       EXISTS (SELECT 1 FROM test_result_events te JOIN events e ON e.id = te.event_id
                WHERE te.test_result_id = tr.id AND e.type = $4),
       count(tw.ev),
       count(tw.ev) FILTER (WHERE EXISTS (SELECT 1 FROM index_case_events j JOIN events e ON e.id = j.event_id
                WHERE j.index_case_id = tw.index_case_id AND j.event_id > tw.ev AND e.type = $5)),
       count(tw.ev) FILTER (WHERE EXISTS (SELECT 1 FROM index_case_events j JOIN events e ON e.id = j.event_id
                WHERE j.index_case_id = tw.index_case_id AND j.event_id > tw.ev AND e.type = $6))
  FROM tr LEFT JOIN tw ON tw.tr_id = tr.id
 GROUP BY tr.id`

// observeRound looks every latencyTick until every test result of the file with key is posted (or finished with
// nothing to send), and returns the times of those that changed a case, and how many changed none.
func observeRound(t *testing.T, ctx context.Context, db *pgtest.DB, key string, eventsBefore int64, announced time.Time,
	p *viaductProcess) ([]latencySample, int) {
	t.Helper()
	seen := map[int64]*latencySample{}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		rows, err := db.Pool.Query(ctx, latencyObserve, key, eventsBefore, casedb.ChangeEventTypes,
			eclrs.EventProcessed, casedb.EventSendToCommCareEnqueued, casedb.EventSendToCommCareSucceeded)
		require.NoError(t, err)
		var now time.Time
		var id, changes, handed, posted int64
		var finished, processed bool
		pending := 0
		nothing := 0
		_, err = pgx.ForEachRow(rows, []any{&now, &id, &finished, &processed, &changes, &handed, &posted}, func() error {
			s := seen[id]
			if s == nil {
				s = &latencySample{announced, now}
				seen[id] = s
			}
			reached := []bool{processed && changes > 0, changes > 0 && handed == changes, changes > 0 && posted == changes}
			for i, r := range reached {
				if r && s[i+2].IsZero() {
					s[i+2] = now
				}
			}
			switch {
			case finished && changes == 0:
				nothing++
			case !finished || posted < changes:
				pending++
			}
			return nil
		})
		require.NoError(t, err)
		if len(seen) > 0 && pending == 0 {
			var out []latencySample
			for _, s := range seen {
				if !s[4].IsZero() {
					out = append(out, *s)
				}
			}
			return out, nothing
		}
		require.True(t, time.Now().Before(deadline), "%s: %d of %d results not posted within 2 minutes; log:\n%s",
			key, pending, len(seen), p.logText())
		time.Sleep(latencyTick)
	}
}

// printLatency prints p50, p90 and the maximum of each stage and of the whole journey, and of River's fetch wait
// (fetch, per job).
func printLatency(samples []latencySample, fetch []time.Duration, rounds, rows, skipped int) {
	fmt.Printf("\nLatency benchmark — %s, %d CPUs, %s\n", cpuModel(), runtime.NumCPU(), runtime.Version())
	fmt.Printf("viaduct run --e1 --e2 --e3 --e4 on its defaults; in-process S3/SQS; fake CommCare answering at once\n")
	fmt.Printf("%d rounds of %d new results: %d results timed, %d changed no case; PostgreSQL's clock, looked at every %s\n\n",
		rounds, rows, len(samples), skipped, latencyTick)
	line := func(label string, d []time.Duration, extra string) {
		slices.Sort(d)
		q := func(p float64) time.Duration { return d[min(len(d)-1, int(p*float64(len(d))))] }
		ms := func(x time.Duration) string { return fmt.Sprintf("%.0f ms", float64(x)/float64(time.Millisecond)) }
		fmt.Printf("%-40s %9s %9s %9s%s\n", label, ms(q(0.5)), ms(q(0.9)), ms(d[len(d)-1]), extra)
	}
	stage := func(from, to int) []time.Duration {
		d := make([]time.Duration, len(samples))
		for i, s := range samples {
			d[i] = s[to].Sub(s[from])
		}
		return d
	}
	fmt.Printf("%-40s %9s %9s %9s\n", "stage", "p50", "p90", "max")
	for i := 1; i < len(latencyStages); i++ {
		line(latencyStages[i-1]+" → "+latencyStages[i], stage(i-1, i), "")
	}
	if len(fetch) > 0 {
		line("  of which River's fetch, per job", fetch, "")
	}
	line("notification → posted (end to end)", stage(0, 4), "   target p50 ≤ 1 s, p90 ≤ 2 s")
}
