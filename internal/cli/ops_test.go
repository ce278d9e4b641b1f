package cli

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"

	"github.com/viaduct-nys/viaduct/engines/e1"
	"github.com/viaduct-nys/viaduct/pkg/awstest"
	"github.com/viaduct-nys/viaduct/pkg/pgtest"
	"github.com/viaduct-nys/viaduct/pkg/status/report"
)

// get fetches url and returns the status code and body.
func get(t *testing.T, url string) (int, string) {
	t.Helper()
	return do(t, http.MethodGet, url)
}

// do sends a bodiless request and returns the status code and body. Keep-alives are off so no connection outlives
// the test.
func do(t *testing.T, method, url string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, nil)
	require.NoError(t, err)
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 30 * time.Second}
	resp, err := client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(body)
}

func TestOpsHandler(t *testing.T) {
	t.Parallel()

	type testBundle struct {
		reg *prometheus.Registry
		url string
	}
	setup := func(t *testing.T, pool *pgxpool.Pool) *testBundle {
		t.Helper()
		reg := prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector())
		jobs, err := river.NewClient(riverpgxv5.New(pool), &river.Config{})
		require.NoError(t, err)
		ui, err := newRiverUI(t.Context(), jobs, slog.New(slog.DiscardHandler), "")
		require.NoError(t, err)
		srv := httptest.NewServer(newOpsHandler(pool, reg, ui, report.Defaults()))
		t.Cleanup(srv.Close)
		return &testBundle{reg: reg, url: srv.URL}
	}

	t.Run("Healthz", func(t *testing.T) {
		t.Parallel()
		b := setup(t, pgtest.New(t).Pool)
		code, body := get(t, b.url+"/healthz")
		require.Equal(t, http.StatusOK, code)
		require.Equal(t, "ok\n", body)
	})

	t.Run("RiverUI", func(t *testing.T) {
		t.Parallel()
		db := pgtest.New(t)
		b := setup(t, db.Pool)
		_, err := db.Pool.Exec(t.Context(), `INSERT INTO river_job (args, kind, max_attempts, queue, state)
			VALUES ('{"case_id": "case-1", "county_id": 1111}', 'commcare_case_loader', 20, 'commcare', 'available')`)
		require.NoError(t, err)
		code, body := get(t, b.url+"/riverui/")
		require.Equal(t, http.StatusOK, code)
		require.Contains(t, body, "<html")
		code, body = get(t, b.url+"/riverui/api/jobs?state=available")
		require.Equal(t, http.StatusOK, code, body)
		require.Contains(t, body, "commcare_case_loader")
		code, body = do(t, http.MethodPost, b.url+"/riverui/api/jobs/retry")
		require.Equal(t, http.StatusForbidden, code, "read-only without a password")
		require.Contains(t, body, "--riverui-password")
	})

	t.Run("RiverUIPassword", func(t *testing.T) {
		t.Parallel()
		db := pgtest.New(t)
		jobs, err := river.NewClient(riverpgxv5.New(db.Pool), &river.Config{})
		require.NoError(t, err)
		ui, err := newRiverUI(t.Context(), jobs, slog.New(slog.DiscardHandler), "s3cret")
		require.NoError(t, err)
		srv := httptest.NewServer(newOpsHandler(db.Pool, prometheus.NewRegistry(), ui, report.Defaults()))
		t.Cleanup(srv.Close)
		code, _ := get(t, srv.URL+"/riverui/")
		require.Equal(t, http.StatusUnauthorized, code)
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+"/riverui/api/jobs?state=available", nil)
		require.NoError(t, err)
		req.SetBasicAuth("ops", "s3cret")
		resp, err := srv.Client().Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
	})

	t.Run("ReadyzMigrated", func(t *testing.T) {
		t.Parallel()
		b := setup(t, pgtest.New(t).Pool)
		code, body := get(t, b.url+"/readyz")
		require.Equal(t, http.StatusOK, code, body)
		require.Equal(t, "ready\n", body)
	})

	t.Run("ReadyzMigrationsPending", func(t *testing.T) {
		t.Parallel()
		b := setup(t, pgtest.NewEmpty(t).Pool)
		code, body := get(t, b.url+"/readyz")
		require.Equal(t, http.StatusServiceUnavailable, code, body)
		require.Contains(t, body, "migrations pending")
	})

	t.Run("ReadyzDatabaseUnreachable", func(t *testing.T) {
		t.Parallel()
		db := pgtest.New(t)
		pool, err := pgxpool.New(t.Context(), db.URL)
		require.NoError(t, err)
		pool.Close()
		b := setup(t, pool)
		code, body := get(t, b.url+"/readyz")
		require.Equal(t, http.StatusServiceUnavailable, code, body)
		require.Contains(t, body, "database unreachable")
	})

	t.Run("Metrics", func(t *testing.T) {
		t.Parallel()
		b := setup(t, pgtest.New(t).Pool)
		code, body := get(t, b.url+"/metrics")
		require.Equal(t, http.StatusOK, code)
		require.Contains(t, body, "go_goroutines")
		require.NotContains(t, body, "viaduct_e1_")

		e1.NewMetrics(b.reg)
		families, err := b.reg.Gather()
		require.NoError(t, err)
		names := map[string]bool{}
		for _, f := range families {
			names[f.GetName()] = true
		}
		require.True(t, names["viaduct_e1_import_duration_seconds"], "gathered: %v", names)
		require.True(t, names["viaduct_e1_batch_duration_seconds"], "gathered: %v", names)

		code, body = get(t, b.url+"/metrics")
		require.Equal(t, http.StatusOK, code)
		require.Contains(t, body, "# TYPE viaduct_e1_import_duration_seconds histogram")
		require.Contains(t, body, "# TYPE viaduct_e1_batch_duration_seconds histogram")
	})

	t.Run("OnlyGet", func(t *testing.T) {
		t.Parallel()
		b := setup(t, pgtest.New(t).Pool)
		code, _ := do(t, http.MethodPost, b.url+"/healthz")
		require.Equal(t, http.StatusMethodNotAllowed, code)
	})
}

// TestDaemonOps runs the daemon in-process with Engine 1 on an emulated queue: once it reports its ops address the
// endpoints answer from the daemon's own registry and pool, and cancelling its context stops it cleanly.
func TestDaemonOps(t *testing.T) {
	t.Parallel()
	ctx := t.Context()

	env, stopAWS, err := awstest.Start(ctx)
	require.NoError(t, err)
	t.Cleanup(stopAWS)
	res, err := env.CreateResources(ctx, awstest.UniqueNames("ops"), nil)
	require.NoError(t, err)
	db := pgtest.New(t)

	c := &Config{
		DatabaseURL:   db.URL,
		LogLevel:      "info",
		LogFormat:     "json",
		HTTPAddr:      "127.0.0.1:0",
		ShutdownGrace: 10 * time.Second,
		SQSQueueURL:   res.QueueURL,
		SQSWaitTime:   time.Second,
		BatchRows:     1000,
	}
	c.Engines[1] = true
	require.NoError(t, c.ValidateEngines())

	runCtx, cancel := context.WithCancel(ctx)
	ready := make(chan string, 1)
	var daemonErr error
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		daemonErr = Daemon(runCtx, c, zaptest.NewLogger(t), DaemonHooks{
			AWS:   &AWSSetup{Config: env.AWSConfig, S3: env.S3},
			Ready: ready,
		})
	}()
	// Whatever happens below, the daemon stops (and stops logging to t) before the emulator and database go.
	t.Cleanup(func() {
		cancel()
		<-stopped
	})

	var addr string
	select {
	case addr = <-ready:
	case <-stopped:
		require.FailNow(t, "the daemon stopped before serving", "error: %v", daemonErr)
	case <-time.After(time.Minute):
		require.FailNow(t, "the daemon did not report its ops address within a minute")
	}
	base := "http://" + addr

	code, _ := get(t, base+"/healthz")
	require.Equal(t, http.StatusOK, code)
	code, body := get(t, base+"/readyz")
	require.Equal(t, http.StatusOK, code, body)
	code, body = get(t, base+"/metrics")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, "go_goroutines")
	require.Contains(t, body, "process_start_time_seconds")
	require.Contains(t, body, "viaduct_e1_import_duration_seconds")

	cancel()
	select {
	case <-stopped:
		require.NoError(t, daemonErr)
	case <-time.After(c.ShutdownGrace + 5*time.Second):
		require.FailNow(t, "the daemon did not stop within its grace period")
	}
}
