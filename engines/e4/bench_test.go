//go:build bench

package e4

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/viaduct-nys/viaduct/pkg/casedb"
	"github.com/viaduct-nys/viaduct/pkg/commcare"
	"github.com/viaduct-nys/viaduct/pkg/commcare/commcaretest"
	"github.com/viaduct-nys/viaduct/pkg/countylist"
	"github.com/viaduct-nys/viaduct/pkg/pgtest"
)

// TestBenchE4 is `make bench-e4`: 20,000 index cases with one to three lab results each, queued at once, posted
// to the fake CommCare answering every request after 20 ms. It prints posts per second and the job latencies.
// VIADUCT_BENCH_E4_CONCURRENCY sets the one knob, Engine 4's concurrency (default 32, the daemon's); VIADUCT_BENCH_E4_CASES
// the number of cases.
func TestBenchE4(t *testing.T) {
	ctx := context.Background()
	cases := envInt(t, "VIADUCT_BENCH_E4_CASES", 20_000)
	concurrency := envInt(t, "VIADUCT_BENCH_E4_CONCURRENCY", 32)
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
	e := newEngine(t, config, Deps{Pool: db.Pool, CommCare: client, Counties: staticCounties{counties}, Logger: zap.NewNop()})

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

	start := time.Now()
	require.NoError(t, e.run(ctx, 10*time.Second))
	elapsed := time.Since(start)

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
	fmt.Printf("  posts per second   %8.1f   (target >= 200)\n", rate)
	fmt.Printf("  job run time       p50 %6.1f ms   p99 %6.1f ms   (attempt start to finish: GET + POST + recording)\n",
		runP50*1000, runP99*1000)
	fmt.Printf("  job latency        p50 %6.1f s    p99 %6.1f s    (queued to finished; all %d queued at once)\n",
		waitP50, waitP99, cases)
}

// staticCounties is a county list that never changes.
type staticCounties struct{ list *countylist.List }

func (s staticCounties) Current() *countylist.List { return s.list }

func envInt(t *testing.T, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	require.NoError(t, err, "%s", name)
	return n
}
