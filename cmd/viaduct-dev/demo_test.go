package main

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/viaduct-nys/viaduct/pkg/pgtest"
)

// TestDemo runs `viaduct demo` small: the whole story `make demo` tells, from exports in S3 to a tracer's edit
// back in PostgreSQL (forwarded by the CommCare stand-in to the webhook), ends with the status table and the cases
// in CommCare.
func TestDemo(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	res := runCLI(t, nil, "demo", "--database-url", db.URL, "--rows", "400", "--http-addr", "127.0.0.1:0",
		"--webhook-addr", "127.0.0.1:0", "--log-level", "warn")
	require.Equal(t, 0, res.code, "stdout:\n%s\nstderr:\n%s", res.stdout, res.stderr)
	for _, want := range []string{
		"All five engines are running. Watch them at http://127.0.0.1:",
		"done waiting for the exports to reach CommCare.",
		"A contact tracer set interview_status=completed on case",
		"done waiting for Engine 5 to bring the tracer's edit back.",
		"The edit came back by CommCare's data forwarding, through the webhook,",
		"ENGINE", "Engine 5 CommCare extractor", "0 domains failing",
		"COMMCARE DOMAIN",
	} {
		require.Contains(t, res.stdout, want)
	}
}

// TestDemoRefusesADatabaseWithImports: the demo's story needs a clean slate, and it drops only its own database.
func TestDemoRefusesADatabaseWithImports(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	_, err := db.Pool.Exec(t.Context(), `INSERT INTO files (filename, key) VALUES ('s3://b/k.txt', 'k.txt')`)
	require.NoError(t, err)
	res := runCLI(t, map[string]string{"VIADUCT_DEMO_DATABASE_URL": db.URL, "DATABASE_URL": "postgres://elsewhere/prod"},
		"demo", "--http-addr", "")
	require.Equal(t, 1, res.code, "stdout:\n%s\nstderr:\n%s", res.stdout, res.stderr)
	require.Contains(t, res.stderr, "the demo needs an empty database")
	var files int
	require.NoError(t, db.Pool.QueryRow(t.Context(), `SELECT count(*) FROM files`).Scan(&files))
	require.Equal(t, 1, files, "nothing was dropped")
}
