//go:build bench

package cli

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/viaduct-nys/viaduct/engines/e3"
	"github.com/viaduct-nys/viaduct/pkg/casedb"
	"github.com/viaduct-nys/viaduct/pkg/commcare/commcaretest"
	"github.com/viaduct-nys/viaduct/pkg/pgtest"
)

// TestBenchHistory is `make bench-history`: does every engine pass, and the status page, cost the same on a large
// history as on a small one? A measurement, not a test: it fails only if something breaks, never on a number.
//
// History. For each size in BENCH_HISTORY_SIZES (test results, comma-separated; default 500000,2000000; `make
// bench-history QUICK=1` measures 500000 only) a fresh database holds a history of that many test results, rounded
// to whole copies of the base: a BENCH_BASE_ROWS-row export (500,000) run through the real Engines 1 to 3 once,
// with Engine 4's and Engine 5's outcomes added, then copied set-based in SQL (history_gen_test.go says how the
// copies mirror what the engines write). After generating, the engines' own state is left as a running system
// would have it: Engine 2's claim floor (e2_claim_floor) at the highest finished test result, and Engine 3's
// horizon (e3_cursor) at the xmin of a snapshot taken in a fresh statement after the generation committed — a
// continuously running Engine 3 would have considered everything. Then VACUUM ANALYZE and CHECKPOINT. The
// databases are dropped at the end (each size's as soon as it is measured) unless BENCH_KEEP=1.
//
// At each size the same work, wall clock around the real thing:
//
//	E1 warm     `viaduct extract` of a 500,000-row export of which 99% is in the history (rows [5000, 505000) of the
//	            base's seed, then [10000, 510000), [15000, 515000)); median of 3. Also on a fresh database holding
//	            only the base export, the same three files: the ratio to it (target ≤ 1.3×)
//	E2          `viaduct run --e2 --until-idle` as a process, daemon start included, on 10,000 test results never
//	            seen before (imported first); results/s, median of 3, and its first claim when Engine 2 logs it
//	            (target ≤ 100 ms). Also in an otherwise empty database: the ratio to it (target within 20%)
//	E3 pass     Engine 3 in-process (package e3, a River client as its inserter, as the daemon wires it), Run with
//	            UntilIdle on a history where nothing changed; median of 3 (target ≤ 50 ms)
//	E3 1,000    Engine 3 running with its default intervals; one transaction commits an index_case_updated event on
//	            1,000 random index cases (events and index_case_events, as Engine 2 writes them); the time from the
//	            commit to the last of their send_to_commcare_enqueued events, polled every 10 ms; median of 3
//	            rounds on other cases, a second apart (target ≤ 1 s)
//	status      `viaduct status` as a process, median of 3; and GET /status on a running daemon (`viaduct run --e2`,
//	            idle), three reads 10.5 s apart since the page serves a report for 10 s, with the HTTP status
//	            (target ≤ 1 s, never 503)
//	storage     pg_database_size / test results (target ≤ 4 KB), and each table's share
//
// Per-unit figures should not grow with the history: largest/smallest ≤ 1.25. Before the E2 runs, the results the
// E1 runs added are processed; before the E3 runs, what the E2 runs changed is handed off (not measured).
//
// Knobs: BENCH_HISTORY_SIZES, BENCH_BASE_ROWS, BENCH_HISTORY_REPEAT (3), BENCH_HISTORY_WORKERS (copies written at
// once, 2), BENCH_E2_ROWS (10,000), BENCH_E3_CHANGED (1,000), BENCH_KEEP=1.
func TestBenchHistory(t *testing.T) {
	ctx := context.Background()
	sizes := historySizes(t)
	baseRows := envInt("BENCH_BASE_ROWS", 500_000)
	repeat := envInt("BENCH_HISTORY_REPEAT", 3)
	cfg := historyBenchConfig{
		baseRows: baseRows,
		repeat:   repeat,
		workers:  envInt("BENCH_HISTORY_WORKERS", 2),
		e2Rows:   envInt("BENCH_E2_ROWS", 10_000),
		changed:  envInt("BENCH_E3_CHANGED", 1_000),
	}
	dir := t.TempDir()
	ex := newExports(dir, 3)
	cfg.countyFile = filepath.Join(dir, "counties.json")
	require.NoError(t, commcaretest.WriteCountyListFile(cfg.countyFile, commcaretest.NewYorkCounties()))
	// The same files at every size and on the fresh databases, so every figure is the same work.
	for r := 1; r <= repeat; r++ {
		cfg.warm = append(cfg.warm, ex.write(t, fmt.Sprintf("warm-%d.txt", r), r*baseRows/100, baseRows))
		cfg.unseen = append(cfg.unseen, ex.write(t, fmt.Sprintf("new-%d.txt", r), 10*baseRows+r*cfg.e2Rows, cfg.e2Rows))
	}

	t.Logf("building the base: %d rows through Engines 1 to 3, then Engine 4's and 5's outcomes", baseRows)
	base := buildHistoryBase(t, ctx, ex, baseRows, cfg.countyFile)

	t.Log("fresh databases: Engine 1 warm on the base export alone, Engine 2 on an empty database")
	freshWarm := freshE1Warm(t, base.export, cfg)
	freshE2 := freshE2Rates(t, cfg)

	var results []*historyResult
	for _, size := range sizes {
		t.Logf("history of %d test results", size)
		results = append(results, measureHistory(t, ctx, base, size, cfg))
	}
	printHistory(t, ctx, base, results, freshWarm, freshE2, cfg)
}

// historyBenchConfig is what every size is measured with.
type historyBenchConfig struct {
	baseRows, repeat, workers, e2Rows, changed int
	countyFile                                 string
	// warm are the E1 exports (99% in the history), unseen the E2 exports (all new), one per repetition.
	warm, unseen []string
}

func historySizes(t *testing.T) []int {
	t.Helper()
	spec := cmp.Or(strings.TrimSpace(os.Getenv("BENCH_HISTORY_SIZES")), "500000,2000000")
	var sizes []int
	for _, s := range strings.Split(spec, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(strings.ReplaceAll(s, "_", "")))
		require.NoError(t, err, "BENCH_HISTORY_SIZES %q", spec)
		require.Positive(t, n, "BENCH_HISTORY_SIZES %q", spec)
		sizes = append(sizes, n)
	}
	sort.Ints(sizes)
	return sizes
}

// historyResult is one size's figures.
type historyResult struct {
	size, copies                     int
	testResults, indexCases, events  int64
	grow, settle                     time.Duration
	notGrown, drift                  []string
	dbBytes                          int64
	tableBytes                       map[string]int64
	warm                             []time.Duration
	e2                               []e2Run
	e3Nothing                        []time.Duration
	e3HandOff                        []time.Duration
	e3HandOffDone                    bool
	status                           []time.Duration
	page                             []pageRead
	warmNew, warmMatched, warmTotals int64
}

// e2Run is one timed Engine 2 process.
type e2Run struct {
	wall  time.Duration
	final e2Final
}

func (r e2Run) rate() float64 { return float64(r.final.Results) / r.wall.Seconds() }

// pageRead is one GET /status.
type pageRead struct {
	took time.Duration
	code int
	err  error
}

func measureHistory(t *testing.T, ctx context.Context, base *historyBase, size int, cfg historyBenchConfig) *historyResult {
	t.Helper()
	res := &historyResult{size: size, copies: max(int(math.Round(float64(size)/float64(base.rows)))-1, 0)}
	db := createHistoryDB(t, ctx, fmt.Sprintf("viaduct_bench_history_%d", size), base.db.Name)
	g := growHistory(t, ctx, db, res.copies, cfg.workers)
	res.grow, res.notGrown = g.took, g.notGrown
	res.settle = settleHistory(t, ctx, db)
	var perTable []string
	for _, table := range slices.Sorted(maps.Keys(g.tables)) {
		perTable = append(perTable, fmt.Sprintf("%s %s", table, g.tables[table].Round(100*time.Millisecond)))
	}
	t.Logf("generated in %s: %d copies in %s (per table, summed: %s), vacuum and checkpoint %s",
		(res.grow + res.settle).Round(time.Second), res.copies, res.grow.Round(time.Second), strings.Join(perTable, ", "),
		res.settle.Round(time.Second))

	pool := db.pool(t, ctx)
	defer pool.Close()
	require.NoError(t, pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM test_results), (SELECT count(*) FROM index_cases),
		(SELECT count(*) FROM events), pg_database_size(current_database())`).
		Scan(&res.testResults, &res.indexCases, &res.events, &res.dbBytes))
	res.tableBytes = tableSizes(t, ctx, pool)
	res.drift = tallyDrift(t, ctx, pool)

	// E1 warm: 99% of each file is in the history.
	for _, path := range cfg.warm {
		start := time.Now()
		r, _ := extract(t, viaductBin, db.URL, path)
		res.warm = append(res.warm, time.Since(start))
		res.warmNew, res.warmMatched, res.warmTotals = r.New, r.Matched, r.Rows
	}
	// What the warm imports added is processed before Engine 2 is timed, so each timed run has exactly its own.
	runViaduct(t, db.URL, e2Args(cfg.countyFile)...)

	// E2 on results never seen before.
	for _, path := range cfg.unseen {
		res.e2 = append(res.e2, timedE2(t, db.URL, path, cfg))
	}

	res.e3Nothing, res.e3HandOff, res.e3HandOffDone = measureE3(t, ctx, pool, cfg)

	// viaduct status as a process; repeated while it is cheap.
	for range cfg.repeat {
		took, _ := runViaduct(t, db.URL, "status")
		res.status = append(res.status, took)
		if took > 10*time.Second {
			break
		}
	}
	res.page = readStatusPage(t, db.URL, cfg)
	pool.Close()
	db.drop(t)
	return res
}

// timedE2 imports path (results never seen before) and times Engine 2 processing them, as a process.
func timedE2(t *testing.T, databaseURL, path string, cfg historyBenchConfig) e2Run {
	t.Helper()
	res, _ := extract(t, viaductBin, databaseURL, path)
	require.EqualValues(t, cfg.e2Rows, res.New)
	wall, logs := runViaduct(t, databaseURL, e2Args(cfg.countyFile)...)
	final := parseE2Final(t, logs)
	require.Equal(t, cfg.e2Rows, final.Results, "Engine 2 processed other results than the new ones")
	require.Zero(t, final.Failed)
	return e2Run{wall: wall, final: final}
}

// freshE1Warm imports the base export into a fresh database, then times the warm files on it.
func freshE1Warm(t *testing.T, basePath string, cfg historyBenchConfig) []time.Duration {
	t.Helper()
	db := pgtest.New(t)
	extract(t, viaductBin, db.URL, basePath)
	for _, sql := range []string{`VACUUM ANALYZE test_results`, `CHECKPOINT`} {
		_, err := db.Pool.Exec(context.Background(), sql)
		require.NoError(t, err)
	}
	var took []time.Duration
	for _, path := range cfg.warm {
		start := time.Now()
		extract(t, viaductBin, db.URL, path)
		took = append(took, time.Since(start))
	}
	return took
}

// freshE2Rates times Engine 2 on each E2 export in an otherwise empty database.
func freshE2Rates(t *testing.T, cfg historyBenchConfig) []e2Run {
	t.Helper()
	var runs []e2Run
	for _, path := range cfg.unseen {
		runs = append(runs, timedE2(t, pgtest.New(t).URL, path, cfg))
	}
	return runs
}

// measureE3 runs Engine 3 in-process, wired as the daemon wires it: an insert-only River client as its inserter.
// It first hands off what the E2 runs changed (not measured), then times passes that find nothing, then the
// hand-off of changed cases by a running engine.
func measureE3(t *testing.T, ctx context.Context, pool *pgxpool.Pool, cfg historyBenchConfig) (nothing, handOff []time.Duration, done bool) {
	t.Helper()
	jobs, err := river.NewClient(riverpgxv5.New(pool), &river.Config{Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	deps := e3.Deps{Pool: pool, Jobs: jobs, Logger: zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)).Named("e3")}
	engine := func(c e3.Config) *e3.Engine {
		e, err := e3.New(c, deps)
		require.NoError(t, err)
		return e
	}
	// Engine 4 would complete these jobs and River's cleaner delete them.
	cleanJobs := func() {
		_, err := pool.Exec(ctx, `DELETE FROM river_job`)
		require.NoError(t, err)
	}

	require.NoError(t, engine(e3.Config{UntilIdle: true, BatchSize: 10_000, BusyPollInterval: time.Millisecond,
		IdlePollInterval: 10 * time.Millisecond}).Run(ctx))
	cleanJobs()

	for range cfg.repeat {
		e := engine(e3.Config{UntilIdle: true})
		start := time.Now()
		require.NoError(t, e.Run(ctx))
		nothing = append(nothing, time.Since(start))
	}

	// The cases to change (a probe, then cfg.changed for each round, none twice), chosen before the engine starts,
	// with a test result of each for the event's data as Engine 2 writes it.
	rows, err := pool.Query(ctx, `SELECT ic.id, coalesce((SELECT (e.data->>'test_result_id')::bigint
		   FROM index_case_events j JOIN events e ON e.id = j.event_id
		  WHERE j.index_case_id = ic.id AND e.type = $2 LIMIT 1), 0)
		  FROM (SELECT id FROM index_cases ORDER BY random() LIMIT $1) ic`, cfg.repeat*cfg.changed+1, casedb.EventIndexCaseCreated)
	require.NoError(t, err)
	var cases, results []int64
	for rows.Next() {
		var c, r int64
		require.NoError(t, rows.Scan(&c, &r))
		cases, results = append(cases, c), append(results, r)
	}
	require.NoError(t, rows.Err())
	require.Len(t, cases, cfg.repeat*cfg.changed+1, "too few index cases for %d rounds of %d", cfg.repeat, cfg.changed)

	runCtx, stop := context.WithCancel(ctx)
	stopped := make(chan error, 1)
	running := engine(e3.Config{})
	go func() { stopped <- running.Run(runCtx) }()
	defer func() {
		stop()
		require.NoError(t, <-stopped)
		cleanJobs()
	}()

	// A probe change handed off first: the engine is past its start and in its steady cycle when the measured
	// change commits.
	probeEvents, _ := commitChanges(t, ctx, pool, cases[:1], results[:1])
	_, ok := waitHandedOff(t, ctx, pool, cases[:1], probeEvents, time.Now(), 5*time.Minute)
	require.True(t, ok, "Engine 3 did not hand off the probe change within 5 minutes")
	time.Sleep(time.Second)

	// Each round's commit lands wherever the engine is in its cycle; the rounds are a second apart.
	for r := range cfg.repeat {
		lo, hi := 1+r*cfg.changed, 1+(r+1)*cfg.changed
		events, committed := commitChanges(t, ctx, pool, cases[lo:hi], results[lo:hi])
		took, ok := waitHandedOff(t, ctx, pool, cases[lo:hi], events, committed, 5*time.Minute)
		handOff = append(handOff, took)
		if !ok {
			return nothing, handOff, false
		}
		time.Sleep(time.Second)
	}
	return nothing, handOff, true
}

// commitChanges commits, in one transaction, an index_case_updated event on each case (with the test result it
// came from in its data, as Engine 2 writes it) and returns the events' ids and when the commit returned.
func commitChanges(t *testing.T, ctx context.Context, pool *pgxpool.Pool, cases, results []int64) ([]int64, time.Time) {
	t.Helper()
	tx, err := pool.Begin(ctx)
	require.NoError(t, err)
	defer tx.Rollback(ctx) //nolint:errcheck
	rows, err := tx.Query(ctx, `WITH ids AS MATERIALIZED (
		    SELECT c, nullif(r, 0) AS r, nextval('events_id_seq') AS e FROM unnest($1::bigint[], $2::bigint[]) AS u(c, r)),
		  ev AS (INSERT INTO events (id, type, data)
		         SELECT e, $3, CASE WHEN r IS NOT NULL THEN jsonb_build_object('test_result_id', r) END FROM ids)
		INSERT INTO index_case_events (index_case_id, event_id) SELECT c, e FROM ids RETURNING index_case_id, event_id`,
		cases, results, casedb.EventIndexCaseUpdated)
	require.NoError(t, err)
	byCase := map[int64]int64{}
	for rows.Next() {
		var c, e int64
		require.NoError(t, rows.Scan(&c, &e))
		byCase[c] = e
	}
	require.NoError(t, rows.Err())
	require.NoError(t, tx.Commit(ctx))
	committed := time.Now()
	events := make([]int64, len(cases))
	for i, c := range cases {
		events[i] = byCase[c]
	}
	return events, committed
}

// waitHandedOff polls every 10 ms until every case has a send_to_commcare_enqueued event newer than its change
// event, and returns the time from since until then; false if that takes longer than timeout.
func waitHandedOff(t *testing.T, ctx context.Context, pool *pgxpool.Pool, cases, events []int64, since time.Time, timeout time.Duration) (time.Duration, bool) {
	t.Helper()
	deadline := since.Add(timeout)
	for {
		var n int
		require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM unnest($1::bigint[], $2::bigint[]) AS u(c, e)
			 WHERE EXISTS (SELECT 1 FROM index_case_events j JOIN events ev ON ev.id = j.event_id
			                WHERE j.index_case_id = u.c AND j.event_id > u.e AND ev.type = $3)`,
			cases, events, casedb.EventSendToCommCareEnqueued).Scan(&n))
		now := time.Now()
		if n == len(cases) {
			return now.Sub(since), true
		}
		if now.After(deadline) {
			return now.Sub(since), false
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// statusPageFresh is how long the /status page serves a report before reading a new one (cacheFor in pkg/status/report).
const statusPageFresh = 10 * time.Second

// readStatusPage starts a daemon with the ops listener on a free port and Engine 2 (idle: every result is
// processed), the least a daemon runs, and reads /status repeat times, each after the page's report has expired.
func readStatusPage(t *testing.T, databaseURL string, cfg historyBenchConfig) []pageRead {
	t.Helper()
	p := startViaduct(t, []string{"DATABASE_URL=" + databaseURL, "VIADUCT_LOG_LEVEL=info"},
		"run", "--e2", "--http-addr", "127.0.0.1:0", "--log-format", "json", "--county-list-file", cfg.countyFile,
		"--e2-ignore-before", "2020-01-01")
	serving := p.waitLog(t, "serving the status page, River UI, metrics, health and readiness", 2*time.Minute)
	addr, _ := serving["addr"].(string)
	require.NotEmpty(t, addr)
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: time.Minute}
	var reads []pageRead
	for r := range cfg.repeat {
		if r > 0 {
			time.Sleep(statusPageFresh + 500*time.Millisecond)
		}
		start := time.Now()
		resp, err := client.Get("http://" + addr + "/status")
		read := pageRead{err: err}
		if err == nil {
			read.code = resp.StatusCode
			_ = resp.Body.Close()
		}
		read.took = time.Since(start)
		reads = append(reads, read)
		if read.took > 5*time.Second {
			break // not cheap: once is enough
		}
	}
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	require.Equal(t, 0, p.waitExit(t, time.Minute), "log:\n%s", p.logText())
	return reads
}

// tableSizes returns every table's size with its indexes and TOAST.
func tableSizes(t *testing.T, ctx context.Context, pool *pgxpool.Pool) map[string]int64 {
	t.Helper()
	rows, err := pool.Query(ctx, `SELECT relname, pg_total_relation_size(oid) FROM pg_class
		 WHERE relnamespace = current_schema()::regnamespace AND relkind = 'r'`)
	require.NoError(t, err)
	sizes := map[string]int64{}
	for rows.Next() {
		var name string
		var n int64
		require.NoError(t, rows.Scan(&name, &n))
		sizes[name] = n
	}
	require.NoError(t, rows.Err())
	return sizes
}

// printHistory prints one row per figure, one column per size, the ratio of the largest size to the smallest, the
// fresh-database figure where there is one, and the target.
func printHistory(t *testing.T, ctx context.Context, base *historyBase, results []*historyResult, freshWarm []time.Duration,
	freshE2 []e2Run, cfg historyBenchConfig) {
	t.Helper()
	var pgVersion string
	conn, err := pgx.Connect(ctx, pgtest.ServerURL())
	require.NoError(t, err)
	require.NoError(t, conn.QueryRow(ctx, `SHOW server_version`).Scan(&pgVersion))
	_ = conn.Close(ctx)

	n := len(results)
	tbl := &figureTable{}
	header := []string{"figure"}
	for _, r := range results {
		header = append(header, fmt.Sprintf("%s results", thousands(r.testResults)))
	}
	header = append(header, "largest/smallest", "fresh db", "target")

	each := func(f func(*historyResult) float64) []float64 {
		v := make([]float64, n)
		for i, r := range results {
			v[i] = f(r)
		}
		return v
	}
	rep := cfg.repeat
	tbl.count("history: test results", each(func(r *historyResult) float64 { return float64(r.testResults) }))
	tbl.count("history: index cases", each(func(r *historyResult) float64 { return float64(r.indexCases) }))
	tbl.count("history: events", each(func(r *historyResult) float64 { return float64(r.events) }))
	tbl.add("generation: copies + vacuum (s)", each(func(r *historyResult) float64 { return (r.grow + r.settle).Seconds() }),
		"%.1f", "", "base once: "+base.took.Round(time.Second).String())

	fw := medianDuration(freshWarm).Seconds()
	warm := each(func(r *historyResult) float64 { return medianDuration(r.warm).Seconds() })
	tbl.add(fmt.Sprintf("E1 warm import, 99%% known (s, median of %d)", rep), warm, "%.2f", fmt.Sprintf("%.2f", fw), "")
	tbl.add("E1 warm ÷ fresh", ratios(warm, fw), "%.2fx", "", "≤ 1.3x")

	fe := medianFloat(rates(freshE2))
	e2 := each(func(r *historyResult) float64 { return medianFloat(rates(r.e2)) })
	tbl.add(fmt.Sprintf("E2 %s new incl. start (results/s, median of %d)", thousands(int64(cfg.e2Rows)), rep), e2, "%.0f",
		fmt.Sprintf("%.0f", fe), "")
	tbl.add("E2 ÷ fresh", ratios(e2, fe), "%.2fx", "", "≥ 0.8x")
	if slices.ContainsFunc(results, func(r *historyResult) bool { return r.e2[0].final.HasFirstClaim }) {
		var freshFirst []float64
		for _, r := range freshE2 {
			freshFirst = append(freshFirst, r.final.FirstClaim.Seconds()*1000)
		}
		tbl.add(fmt.Sprintf("E2 first claim after start (ms, median of %d)", rep), each(func(r *historyResult) float64 {
			var ms []float64
			for _, run := range r.e2 {
				ms = append(ms, run.final.FirstClaim.Seconds()*1000)
			}
			return medianFloat(ms)
		}), "%.1f", fmt.Sprintf("%.1f", medianFloat(freshFirst)), "≤ 100 ms")
	} else {
		tbl.text("E2 first claim after start", repeatText("not logged", n), "", "≤ 100 ms")
	}
	tbl.add(fmt.Sprintf("E3 pass, nothing changed (ms, median of %d)", rep),
		each(func(r *historyResult) float64 { return medianDuration(r.e3Nothing).Seconds() * 1000 }), "%.1f", "", "≤ 50 ms")
	changed := make([]string, n)
	changedV := make([]float64, n)
	for i, r := range results {
		changedV[i] = medianDuration(r.e3HandOff).Seconds()
		changed[i] = fmt.Sprintf("%.2f", changedV[i])
		if !r.e3HandOffDone {
			changed[i] = "> " + fmt.Sprintf("%.2f", r.e3HandOff[len(r.e3HandOff)-1].Seconds())
		}
	}
	tbl.textRatio(fmt.Sprintf("E3 %s changed: commit → last hand-off (s, median of %d)", thousands(int64(cfg.changed)), rep),
		changed, changedV, "", "≤ 1 s")
	tbl.add("viaduct status (s, median)", each(func(r *historyResult) float64 { return medianDuration(r.status).Seconds() }),
		"%.2f", "", "≤ 1 s")
	pageTook := make([]float64, n)
	codes := make([]string, n)
	for i, r := range results {
		var took []time.Duration
		var cs []string
		for _, p := range r.page {
			took = append(took, p.took)
			if p.err != nil {
				cs = append(cs, "error")
			} else {
				cs = append(cs, strconv.Itoa(p.code))
			}
		}
		pageTook[i] = medianDuration(took).Seconds()
		codes[i] = strings.Join(cs, " ")
	}
	tbl.add("GET /status on a daemon (s, median)", pageTook, "%.2f", "", "≤ 1 s")
	tbl.text("GET /status HTTP status", codes, "", "never 503")
	tbl.add("bytes per test result", each(func(r *historyResult) float64 { return float64(r.dbBytes) / float64(r.testResults) }),
		"%.0f", "", "≤ 4,096")

	fmt.Printf("\nHistory benchmark — %s, %d cores, %s, PostgreSQL %s\n", cpuModel(), runtime.NumCPU(), runtime.Version(), pgVersion)
	fmt.Printf("base: %s-row export through Engines 1–3 with Engine 4's and 5's outcomes (%s); sizes are whole copies of it\n",
		thousands(int64(base.rows)), base.took.Round(time.Second))
	fmt.Printf("E1 files: %s rows, %s new and %s known at the last size\n\n", thousands(results[n-1].warmTotals),
		thousands(results[n-1].warmNew), thousands(results[n-1].warmMatched))
	tbl.print(header)
	if n > 1 {
		fmt.Printf("largest/smallest: the same work on %.1fx the history; target ≤ 1.25x for times, ≥ 0.8x for rates\n",
			float64(results[n-1].testResults)/float64(results[0].testResults))
	}

	// Storage per table, per test result.
	fmt.Printf("\nbytes per test result, by table (with its indexes and TOAST):\n")
	largest := results[n-1]
	names := slices.Collect(maps.Keys(largest.tableBytes))
	sort.Slice(names, func(i, j int) bool { return largest.tableBytes[names[i]] > largest.tableBytes[names[j]] })
	storage := &figureTable{}
	other := make([]float64, n)
	for _, name := range names {
		v := each(func(r *historyResult) float64 { return float64(r.tableBytes[name]) / float64(r.testResults) })
		if float64(largest.tableBytes[name]) < 0.005*float64(largest.dbBytes) {
			for i := range v {
				other[i] += v[i]
			}
			continue
		}
		storage.add("  "+name, v, "%.0f", "", "")
	}
	storage.add("  other tables", other, "%.0f", "", "")
	storage.add("  catalogue and free space", each(func(r *historyResult) float64 {
		var sum int64
		for _, b := range r.tableBytes {
			sum += b
		}
		return float64(r.dbBytes-sum) / float64(r.testResults)
	}), "%.0f", "", "")
	storage.print(append([]string{"table"}, header[1:n+2]...))

	for _, r := range results {
		if len(r.drift) > 0 {
			fmt.Printf("\n%s results: tallies differ from the tables: %s\n", thousands(r.testResults), strings.Join(r.drift, "; "))
		}
		if len(r.notGrown) > 0 {
			fmt.Printf("\n%s results: tables with rows the generator does not copy (held at the base's size): %s\n",
				thousands(r.testResults), strings.Join(r.notGrown, ", "))
		}
	}
}

// figureTable is the printed table: one row per figure.
type figureTable struct{ rows [][]string }

// add adds a numeric row; the ratio is the last value over the first.
func (tb *figureTable) add(label string, v []float64, format, fresh, target string) {
	cells := make([]string, len(v))
	for i, x := range v {
		cells[i] = fmt.Sprintf(format, x)
	}
	tb.textRatio(label, cells, v, fresh, target)
}

func (tb *figureTable) count(label string, v []float64) {
	cells := make([]string, len(v))
	for i, x := range v {
		cells[i] = thousands(int64(x))
	}
	tb.textRatio(label, cells, v, "", "")
}

func (tb *figureTable) text(label string, cells []string, fresh, target string) {
	tb.rows = append(tb.rows, append(append([]string{label}, cells...), "-", cmp.Or(fresh, "-"), target))
}

func (tb *figureTable) textRatio(label string, cells []string, v []float64, fresh, target string) {
	ratio := "-"
	if len(v) > 1 && v[0] > 0 && !math.IsNaN(v[len(v)-1]) {
		ratio = fmt.Sprintf("%.2fx", v[len(v)-1]/v[0])
	}
	tb.rows = append(tb.rows, append(append([]string{label}, cells...), ratio, cmp.Or(fresh, "-"), target))
}

func (tb *figureTable) print(header []string) {
	widths := make([]int, len(header))
	for _, row := range append([][]string{header}, tb.rows...) {
		for i, c := range row {
			if i < len(widths) {
				widths[i] = max(widths[i], len([]rune(c)))
			}
		}
	}
	for _, row := range append([][]string{header}, tb.rows...) {
		var b strings.Builder
		for i, c := range row {
			if i >= len(widths) {
				break
			}
			pad := strings.Repeat(" ", widths[i]-len([]rune(c)))
			if i == 0 || i == len(widths)-1 {
				b.WriteString(c + pad) // labels and targets read left to right
			} else {
				b.WriteString(pad + c)
			}
			b.WriteString("  ")
		}
		fmt.Println(strings.TrimRight(b.String(), " "))
	}
}

func ratios(v []float64, to float64) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = x / to
	}
	return out
}

func rates(runs []e2Run) []float64 {
	var v []float64
	for _, r := range runs {
		v = append(v, r.rate())
	}
	return v
}

func medianDuration(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

func medianFloat(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

func repeatText(s string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = s
	}
	return out
}

// thousands writes n with commas.
func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	if neg {
		return "-" + s
	}
	return s
}
