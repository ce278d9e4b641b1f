//go:build bench

package e4

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/viaduct-nys/viaduct/pkg/casedb"
	"github.com/viaduct-nys/viaduct/pkg/commcare"
	"github.com/viaduct-nys/viaduct/pkg/commcare/commcaretest"
	"github.com/viaduct-nys/viaduct/pkg/countylist"
	"github.com/viaduct-nys/viaduct/pkg/pgpool"
	"github.com/viaduct-nys/viaduct/pkg/pgtest"
)

// TestBenchE4 is `make bench-e4`: 20,000 index cases with one to three lab results each, queued at once, posted
// to the fake CommCare answering every request after 20 ms. It prints posts per second and the job latencies.
// VIADUCT_BENCH_E4_CONCURRENCY sets the one knob, Engine 4's concurrency (default DefaultConcurrency, the daemon's); VIADUCT_BENCH_E4_CASES
// the number of cases.
func TestBenchE4(t *testing.T) {
	ctx := context.Background()
	cases := envInt(t, "VIADUCT_BENCH_E4_CASES", 20_000)
	concurrency := envInt(t, "VIADUCT_BENCH_E4_CONCURRENCY", DefaultConcurrency)
	const latency = 20 * time.Millisecond

	db := pgtest.New(t)
	fake := commcaretest.StartTest(t, commcaretest.Options{Latency: latency})
	counties, err := countylist.NewList(commcaretest.NewYorkCounties())
	require.NoError(t, err)
	_, err = countylist.Seed(ctx, db.Pool, counties)
	require.NoError(t, err)
	var fips []int64
	for _, c := range counties.Participating() {
		n, err := strconv.ParseInt(c.FIPS, 10, 64)
		require.NoError(t, err)
		fips = append(fips, n)
	}

	// One person, index case and 1–3 lab results per case, spread over the participating counties.
	seedStart := time.Now()
	_, err = db.Pool.Exec(ctx, `
		WITH p AS (
		  INSERT INTO people (patient_keys, data, name_first, name_last, dob)
		  SELECT ARRAY['bench-' || g], '{}', 'FIRST' || g, 'LAST' || g, date '1950-01-01' + g % 20000
		    FROM generate_series(1, $1) g RETURNING id),
		ic AS (
		  INSERT INTO index_cases (person_id, county_id, data)
		  SELECT p.id, ($2::bigint[])[1 + p.id % cardinality($2::bigint[])], jsonb_build_object(
		           'full_name', 'First' || p.id || ' Last' || p.id, 'first_name', 'First' || p.id,
		           'last_name', 'Last' || p.id, 'dob', '1980-05-17', 'phone_home', '5555550100',
		           'address_street', p.id || ' Main St', 'address_city', 'Albany', 'address_state', 'NY',
		           'address_zip', '12207', 'gender', 'female', 'race', 'other', 'ethnicity', 'unknown',
		           'analysis_date', '2026-11-20', 'case_import_date', '2026-11-20', 'eclrs_create_date', '2026-11-19')
		    FROM p RETURNING id)
		INSERT INTO lab_results (index_case_id, accession_number, data)
		SELECT ic.id, 'ACC-' || ic.id || '-' || n, jsonb_build_object(
		         'specimen_collection_date', '2026-11-1' || n, 'test_type', 'SARS-CoV-2 RNA', 'result', 'POSITIVE',
		         'laboratory', 'Bench Lab', 'ordering_facility_name', 'Bench Clinic', 'analysis_date', '2026-11-20')
		  FROM ic, generate_series(1, 1 + ic.id % 3) n`, cases, fips)
	require.NoError(t, err)

	config := Config{Username: "bench", UserID: "bench-user-id", Concurrency: concurrency, PollInterval: 50 * time.Millisecond,
		UntilIdle: true}
	client, err := commcare.NewClient(fake.ClientConfig())
	require.NoError(t, err)
	// A pool like the daemon's, which counts the round trips Engine 4 and River make.
	poolConfig, err := pgpool.ParseConfig(db.URL)
	require.NoError(t, err)
	var trips roundTrips
	poolConfig.ConnConfig.Tracer = &trips
	pool, err := pgxpool.NewWithConfig(ctx, poolConfig)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	e := newEngine(t, config, Deps{Pool: pool, CommCare: client, Counties: staticCounties{counties}, Logger: zap.NewNop()})

	rows, err := db.Pool.Query(ctx, `SELECT case_id, county_id FROM index_cases ORDER BY id`)
	require.NoError(t, err)
	var params []river.InsertManyParams
	for rows.Next() {
		var args casedb.CaseLoaderArgs
		require.NoError(t, rows.Scan(&args.CaseID, &args.CountyID))
		params = append(params, river.InsertManyParams{Args: args})
	}
	require.NoError(t, rows.Err())
	_, err = e.client.InsertManyFast(ctx, params)
	require.NoError(t, err)
	t.Logf("seeded %d cases and their jobs in %s", cases, time.Since(seedStart).Round(time.Millisecond))

	start, cpuStart, pgStart := time.Now(), processCPU(t), backendCPU(t, db.Pool)
	require.NoError(t, e.run(ctx, 10*time.Second))
	elapsed := time.Since(start)
	cpu, pgCPU := processCPU(t)-cpuStart, sumNew(backendCPU(t, db.Pool), pgStart)
	stat := pool.Stat()

	var completed, labs int
	var runP50, runP99, waitP50, waitP99 float64
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*),
		    percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM finalized_at - attempted_at)),
		    percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM finalized_at - attempted_at)),
		    percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM finalized_at - created_at)),
		    percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM finalized_at - created_at))
		  FROM river_job WHERE state = 'completed'`).Scan(&completed, &runP50, &runP99, &waitP50, &waitP99))
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*) FROM lab_results`).Scan(&labs))
	require.Equal(t, cases, completed, "every job completed")
	submissions := 0
	for _, d := range fake.Domains() {
		submissions += fake.Submissions(d)
	}
	require.Equal(t, cases, submissions)

	rate := float64(cases) / elapsed.Seconds()
	fmt.Printf("\nbench-e4: %d cases (%d lab results) posted to the fake CommCare, %s per request, concurrency %d\n",
		cases, labs, latency, concurrency)
	fmt.Printf("  wall time          %8.2f s\n", elapsed.Seconds())
	// Each job makes two requests: at best, every worker always waiting on one.
	floor := float64(concurrency) / (2 * latency.Seconds())
	fmt.Printf("  posts per second   %8.1f   (target >= 600; floor %.0f at concurrency %d, two requests per job: %.0f%% of it)\n",
		rate, floor, concurrency, 100*rate/floor)
	fmt.Printf("  job run time       p50 %6.1f ms   p99 %6.1f ms   (attempt start to finish: GET + POST + recording)\n",
		runP50*1000, runP99*1000)
	fmt.Printf("  job latency        p50 %6.1f s    p99 %6.1f s    (queued to finished; all %d queued at once)\n",
		waitP50, waitP99, cases)
	fmt.Printf("  CPU per job        %6.2f ms in this process (Engine 4, River and the fake CommCare: %.1f s user+sys)\n",
		cpu.Seconds()*1000/float64(cases), cpu.Seconds())
	fmt.Printf("                     %6.2f ms in PostgreSQL (this database's backends: %.1f s user+sys)\n",
		pgCPU.Seconds()*1000/float64(cases), pgCPU.Seconds())
	fmt.Printf("  database per job   %6.2f round trips (statements and batches, River's included)   %.2f ms waiting for one of the pool's %d connections\n",
		float64(trips.n.Load())/float64(cases), stat.AcquireDuration().Seconds()*1000/float64(cases), stat.MaxConns())
}

// staticCounties is a county list that never changes.
type staticCounties struct{ list *countylist.List }

func (s staticCounties) Current() *countylist.List { return s.list }

// roundTrips counts the statements and batches sent on a pool's connections.
type roundTrips struct{ n atomic.Int64 }

func (r *roundTrips) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	r.n.Add(1)
	return ctx
}

func (*roundTrips) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

func (r *roundTrips) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	r.n.Add(1)
	return ctx
}

func (*roundTrips) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}

func (*roundTrips) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData) {}

// processCPU is the user and system CPU time this process has used.
func processCPU(t *testing.T) time.Duration {
	var ru syscall.Rusage
	require.NoError(t, syscall.Getrusage(syscall.RUSAGE_SELF, &ru))
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// backendCPU is the user and system CPU time of each PostgreSQL backend serving this database, by process id, read
// from /proc (PostgreSQL runs on this machine).
func backendCPU(t *testing.T, pool *pgxpool.Pool) map[int]time.Duration {
	rows, err := pool.Query(context.Background(),
		`SELECT pid FROM pg_stat_activity WHERE datname = current_database()`)
	require.NoError(t, err)
	pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	require.NoError(t, err)
	cpu := map[int]time.Duration{}
	for _, pid := range pids {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue // gone since
		}
		_, rest, _ := strings.Cut(string(stat), ") ") // after the command, which may hold spaces
		fields := strings.Fields(rest)                // state is field 3; utime and stime are 14 and 15
		utime, err := strconv.ParseInt(fields[11], 10, 64)
		require.NoError(t, err)
		stime, err := strconv.ParseInt(fields[12], 10, 64)
		require.NoError(t, err)
		cpu[int(pid)] = time.Duration(utime+stime) * time.Second / 100 // USER_HZ is 100 on Linux
	}
	return cpu
}

// sumNew is the CPU time the backends in after used since before (all of it for a backend started since).
func sumNew(after, before map[int]time.Duration) time.Duration {
	var d time.Duration
	for pid, cpu := range after {
		d += cpu - before[pid]
	}
	return d
}

func envInt(t *testing.T, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	require.NoError(t, err, "%s", name)
	return n
}
