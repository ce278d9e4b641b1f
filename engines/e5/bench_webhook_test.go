//go:build bench

package e5

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/viaduct-nys/viaduct/pkg/commcare"
	"github.com/viaduct-nys/viaduct/pkg/commcare/commcaretest"
	"github.com/viaduct-nys/viaduct/pkg/countylist"
	"github.com/viaduct-nys/viaduct/pkg/pgtest"
)

// TestBenchWebhook is `make bench-webhook`: case forwarding wired as the daemon wires it (the webhook on a loopback
// listener, the importer on a River client with River's default fetch settings, one PostgreSQL on the same machine),
// with the fake CommCare forwarding as CommCare's data forwarding does. It seeds VIADUCT_BENCH_WEBHOOK_CASES known
// cases (10,000) by one polling round, then measures:
//   - the webhook's throughput: every case posted once, VIADUCT_BENCH_WEBHOOK_CLIENTS (16) at a time, with the
//     importer stopped, so that only taking and queueing is timed; then how fast the importer merges them all;
//   - latency: VIADUCT_BENCH_WEBHOOK_EDITS (200) tracer edits in the fake, one after the other at random moments,
//     each timed from the edit to its merged row in PostgreSQL (read every millisecond), beside the floor: the
//     fake's forward answered 202, the job queued.
func TestBenchWebhook(t *testing.T) {
	ctx := context.Background()
	cases := envInt(t, "VIADUCT_BENCH_WEBHOOK_CASES", 10_000)
	clients := envInt(t, "VIADUCT_BENCH_WEBHOOK_CLIENTS", 16)
	edits := envInt(t, "VIADUCT_BENCH_WEBHOOK_EDITS", 200)
	const (
		password         = "bench webhook password"
		targetThroughput = 500.0       // cases/s
		targetLatency    = time.Second // p50
		domain           = commcaretest.MidsomerDomain
	)

	db := pgtest.New(t)
	fake := commcaretest.StartTest(t, commcaretest.Options{Counties: commcaretest.TestCounties()})
	list, err := countylist.NewList(commcaretest.TestCounties())
	require.NoError(t, err)
	_, err = countylist.Seed(ctx, db.Pool, list)
	require.NoError(t, err)
	counties := staticCounties{list}
	client, err := commcare.NewClient(fake.ClientConfig())
	require.NoError(t, err)
	for i := range cases {
		fake.PutCase(domain, benchCase(i))
	}
	poller, err := New(Config{PageSize: 1000, UntilIdle: true}, Deps{Pool: db.Pool, CommCare: client, Counties: counties,
		Logger: zap.NewNop()})
	require.NoError(t, err)
	seedStart := time.Now()
	require.NoError(t, poller.Round(ctx))
	count := func(query string, args ...any) int {
		t.Helper()
		var n int
		require.NoError(t, db.Pool.QueryRow(ctx, query, args...).Scan(&n))
		return n
	}
	require.Equal(t, cases, count(`SELECT count(*) FROM index_cases`))
	t.Logf("seeded %d known cases by one polling round in %s", cases, time.Since(seedStart).Round(time.Millisecond))

	// Wired as the daemon wires it.
	metrics := NewMetrics(prometheus.NewRegistry())
	importer, err := NewImporter(ImporterConfig{}, ImporterDeps{Pool: db.Pool, CommCare: client, Counties: counties,
		Logger: zap.NewNop(), Metrics: metrics})
	require.NoError(t, err)
	rc := &river.Config{}
	require.NoError(t, importer.Register(rc))
	jobs, err := river.NewClient(riverpgxv5.New(db.Pool), rc)
	require.NoError(t, err)
	webhook, err := NewWebhook(WebhookConfig{Password: password}, WebhookDeps{Pool: db.Pool, Jobs: jobs, Counties: counties,
		Logger: zap.NewNop(), Metrics: metrics})
	require.NoError(t, err)
	srv := httptest.NewServer(webhook)
	defer srv.Close()
	url := srv.URL + WebhookPath

	// 1. Throughput: each case forwarded once, as a tracer's edit.
	bodies := make([][]byte, cases)
	modified := time.Now().UTC()
	for i := range cases {
		c := benchCase(i)
		c.Domain, c.DateModified, c.ChildCases = domain, modified.Format(time.RFC3339Nano), nil
		c.Properties["interviewed"] = "yes"
		bodies[i], err = json.Marshal(c)
		require.NoError(t, err)
	}
	httpClient := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
	var next atomic.Int64
	var failures atomic.Int64
	var wg sync.WaitGroup
	postStart := time.Now()
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1)) - 1; i < cases; i = int(next.Add(1)) - 1 {
				req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(bodies[i]))
				req.Header.Set("Content-Type", "application/json")
				req.SetBasicAuth(WebhookUser, password)
				resp, err := httpClient.Do(req)
				if err != nil || resp.StatusCode != http.StatusAccepted {
					failures.Add(1)
				}
				if err == nil {
					_ = resp.Body.Close()
				}
			}
		}()
	}
	wg.Wait()
	postElapsed := time.Since(postStart)
	require.Zero(t, failures.Load(), "every post answered 202")
	require.Equal(t, cases, count(`SELECT count(*) FROM commcare_case_inbox`))

	events, cancel := jobs.Subscribe(river.EventKindJobCompleted)
	defer cancel()
	drainStart := time.Now()
	require.NoError(t, jobs.Start(ctx))
	defer func() {
		stopCtx, stop := context.WithTimeout(ctx, 30*time.Second)
		defer stop()
		require.NoError(t, jobs.Stop(stopCtx))
	}()
	for range cases {
		select {
		case <-events:
		case <-time.After(time.Minute):
			require.FailNow(t, "the importer stalled")
		}
	}
	drainElapsed := time.Since(drainStart)
	require.Equal(t, cases, count(`SELECT count(*) FROM index_cases WHERE data->>'interviewed' = 'yes'`))
	require.Zero(t, count(`SELECT count(*) FROM commcare_case_inbox`))

	// 2. Latency: a tracer's edit in the fake, forwarded, to its merged row.
	var mu sync.Mutex
	delivered := map[string]time.Duration{}
	forwarder, err := fake.ForwardTo(commcaretest.ForwardOptions{URL: url, Password: password,
		OnDelivery: func(d commcaretest.Delivery) {
			mu.Lock()
			defer mu.Unlock()
			delivered[d.CaseID+"@"+d.DateModified] = d.Done.Sub(d.Queued)
		}})
	require.NoError(t, err)
	defer forwarder.Close()
	var latencies, floors []time.Duration
	for i := range edits {
		// At a random moment, as a tracer's edit comes: not in step with the importer's polls.
		time.Sleep(time.Duration(rand.Int64N(int64(100 * time.Millisecond))))
		caseID := benchCaseID(i % cases)
		value := "edit-" + strconv.Itoa(i)
		start := time.Now()
		require.NoError(t, fake.UpdateCase(domain, caseID, map[string]string{"contact_tracer": value}, "tracer"))
		deadline := start.Add(30 * time.Second)
		for {
			var got string
			require.NoError(t, db.Pool.QueryRow(ctx, `SELECT coalesce(data->>'contact_tracer', '') FROM index_cases
				WHERE case_id = $1`, caseID).Scan(&got))
			if got == value {
				break
			}
			require.True(t, time.Now().Before(deadline), "edit %d did not arrive", i)
			time.Sleep(time.Millisecond)
		}
		latencies = append(latencies, time.Since(start))
		c, _ := fake.Case(domain, caseID)
		require.NoError(t, forwarder.Wait(ctx))
		mu.Lock()
		floors = append(floors, delivered[caseID+"@"+c.DateModified])
		mu.Unlock()
	}

	throughput := float64(cases) / postElapsed.Seconds()
	fmt.Printf("\nbench-webhook: %d known cases, the webhook and the importer wired as the daemon wires them, PostgreSQL "+
		"on the same machine, %d CPUs (GOMAXPROCS %d)\n", cases, runtime.NumCPU(), runtime.GOMAXPROCS(0))
	verdict := func(ok bool) string {
		if ok {
			return "met"
		}
		return "MISSED"
	}
	fmt.Printf("  webhook, %d cases posted %d at a time   %7.2f s  %8.1f cases/s   target >= %.0f cases/s: %s\n",
		cases, clients, postElapsed.Seconds(), throughput, targetThroughput, verdict(throughput >= targetThroughput))
	fmt.Printf("  importer, merging them all               %7.2f s  %8.1f cases/s   (%d at once)\n",
		drainElapsed.Seconds(), float64(cases)/drainElapsed.Seconds(), importer.config.Concurrency)
	p := func(d []time.Duration, q float64) time.Duration {
		s := slices.Clone(d)
		slices.Sort(s)
		return s[min(len(s)-1, int(q*float64(len(s))))]
	}
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	fmt.Printf("  edit -> merged row, %d edits             p50 %6.1f ms  p95 %6.1f ms  p99 %6.1f ms  max %6.1f ms   "+
		"target p50 <= %s: %s\n", edits, ms(p(latencies, 0.5)), ms(p(latencies, 0.95)), ms(p(latencies, 0.99)),
		ms(p(latencies, 1)), targetLatency, verdict(p(latencies, 0.5) <= targetLatency))
	fmt.Printf("  floor: edit -> forward answered 202      p50 %6.1f ms  p95 %6.1f ms\n", ms(p(floors, 0.5)),
		ms(p(floors, 0.95)))
}
