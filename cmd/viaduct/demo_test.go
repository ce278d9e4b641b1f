package main

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/viaduct-nys/viaduct/pkg/pgtest"
)

// TestDemo runs `viaduct demo` small: the whole story `make demo` tells, from exports in S3 to a tracer's edit
// back in PostgreSQL, ends with the status table and the cases in CommCare.
func TestDemo(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	res := runCLI(t, map[string]string{"DATABASE_URL": db.URL}, "demo", "--rows", "400", "--http-addr", "127.0.0.1:0",
		"--log-level", "warn")
	require.Equal(t, 0, res.code, "stdout:\n%s\nstderr:\n%s", res.stdout, res.stderr)
	for _, want := range []string{
		"All five engines are running. Watch them at http://127.0.0.1:",
		"done waiting for the exports to reach CommCare.",
		"A contact tracer set interview_status=completed on case",
		"done waiting for Engine 5 to bring the tracer's edit back.",
		"ENGINE", "Engine 5 CommCare extractor", "0 domains failing",
		"COMMCARE DOMAIN",
	} {
		require.Contains(t, res.stdout, want)
	}
}
