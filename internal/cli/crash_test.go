package cli

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/viaduct-nys/viaduct/pkg/eclrs/eclrsgen"
	"github.com/viaduct-nys/viaduct/pkg/pgtest"
)

// TestCrashSafety kills `viaduct extract` with SIGKILL at points spread over an import, restarts it each time, and
// requires the database to end exactly as after one clean import: the same rows, the same statistics, nothing
// duplicated, nothing missing. After every kill the file is either entirely absent or entirely there.
func TestCrashSafety(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	path := filepath.Join(t.TempDir(), "export.txt")
	f, err := os.Create(path)
	require.NoError(t, err)
	w := bufio.NewWriter(f)
	require.NoError(t, eclrsgen.Write(w, eclrsgen.Options{Rows: 60_000, Seed: 3}))
	require.NoError(t, w.Flush())
	require.NoError(t, f.Close())

	extract := func(db *pgtest.DB) *exec.Cmd {
		cmd := exec.Command(viaductBin, "extract", "--log-level", "warn", "--batch-rows", "2000", path)
		cmd.Env = append(os.Environ(), "DATABASE_URL="+db.URL)
		return cmd
	}
	state := func(db *pgtest.DB) (rows int64, digest, stats string) {
		require.NoError(t, db.Pool.QueryRow(ctx, `
			SELECT count(*), coalesce(md5(string_agg(encode(checksum, 'hex') || line_number || tr.raw_line, ',' ORDER BY checksum)), '')
			  FROM test_results tr`).Scan(&rows, &digest))
		require.NoError(t, db.Pool.QueryRow(ctx, `SELECT coalesce(string_agg(status || ':' || coalesce(statistics::text, ''), ','), '') FROM files
			WHERE status <> 'importing'`).Scan(&stats))
		return rows, digest, stats
	}

	clean := pgtest.New(t)
	start := time.Now()
	require.NoError(t, extract(clean).Run())
	cleanDuration := time.Since(start)
	wantRows, wantDigest, wantStats := state(clean)
	require.Equal(t, int64(60_000), wantRows)

	crashed := pgtest.New(t)
	for _, fraction := range []float64{0.05, 0.2, 0.4, 0.6, 0.8, 0.95} {
		cmd := extract(crashed)
		require.NoError(t, cmd.Start())
		time.Sleep(time.Duration(fraction * float64(cleanDuration))) // where to kill, not waiting for a result
		require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
		_ = cmd.Wait()

		rows, digest, _ := state(crashed)
		if rows != 0 {
			// The kill came after the commit: then everything is there.
			require.Equal(t, wantDigest, digest, "killed at %.0f%%: partial import visible", fraction*100)
		}
	}
	var attempts int
	require.NoError(t, crashed.Pool.QueryRow(ctx, `SELECT attempts FROM files`).Scan(&attempts))
	require.GreaterOrEqual(t, attempts, 4, "most kills landed after the import had started")

	require.NoError(t, extract(crashed).Run(), "the restarted import completes")
	gotRows, gotDigest, gotStats := state(crashed)
	require.Equal(t, wantRows, gotRows)
	require.Equal(t, wantDigest, gotDigest)
	require.Equal(t, wantStats, gotStats)
}
