//go:build bench

package cli

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/viaduct-nys/viaduct/pkg/eclrs"
	"github.com/viaduct-nys/viaduct/pkg/eclrs/eclrsgen"
	"github.com/viaduct-nys/viaduct/pkg/pgtest"
)

// TestBenchE1 is `make bench-e1`: it prints Engine 1's figures against the targets of the issue. It is a
// measurement, not a test: it fails only if something breaks, never on a number.
//
//	cold  import a 500,000-row export into an empty database, against the floor of COPYing the same file into an
//	      unindexed table of 65 text columns (target ≤ 2×)
//	warm  import a second export of which 99% was imported already, against the in-process floor of reading,
//	      splitting and SHA-256-hashing every line (target ≤ 2.5×)
//	rss   peak resident memory of the importing process, for both and for a 2,000,000-row export imported after
//	      them (target ≤ 256 MB)
func TestBenchE1(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	rows := envInt("BENCH_ROWS", 500_000)
	bigRows := envInt("BENCH_BIG_ROWS", 2_000_000)

	bin := filepath.Join(dir, "viaduct")
	build := exec.Command("go", "build", "-o", bin, "../../cmd/viaduct")
	build.Stderr = os.Stderr
	require.NoError(t, build.Run())

	gen := func(name string, first, n int) string {
		path := filepath.Join(dir, name)
		f, err := os.Create(path)
		require.NoError(t, err)
		w := bufio.NewWriterSize(f, 1<<20)
		require.NoError(t, eclrsgen.Write(w, eclrsgen.Options{Rows: n, FirstRow: first, Seed: 1}))
		require.NoError(t, w.Flush())
		require.NoError(t, f.Close())
		return path
	}
	cold := gen("cold.txt", 0, rows)
	warm := gen("warm.txt", rows/100, rows) // shares 99% of its rows with cold
	big := gen("big.txt", 10_000_000, bigRows)
	info, err := os.Stat(cold)
	require.NoError(t, err)

	// Each measurement starts from a checkpoint, so none pays for the write-ahead log of the one before; the floor
	// has a database of its own so its 300 MB do not sit in the imports' buffers.
	checkpoint := func(db *pgtest.DB) {
		_, err := db.Pool.Exec(ctx, "CHECKPOINT")
		require.NoError(t, err)
	}
	floorDB := pgtest.New(t)
	checkpoint(floorDB)
	floorCopy := copyFloor(t, ctx, floorDB, cold)

	db := pgtest.New(t)
	checkpoint(db)
	coldRes, coldRSS := extract(t, bin, db.URL, cold)
	floorHash := hashFloor(t, warm)
	checkpoint(db)
	warmRes, warmRSS := extract(t, bin, db.URL, warm)

	// After the warm import, so that the big one also holds the last file's set: its memory at the worst.
	checkpoint(db)
	bigRes, bigRSS := extract(t, bin, db.URL, big)

	fmt.Printf("\nEngine 1 benchmark — %s, %d CPUs, %s\n", cpuModel(), runtime.NumCPU(), runtime.Version())
	fmt.Printf("export: %d rows, %.0f MB (%.0f bytes/row)\n\n", rows, float64(info.Size())/1e6, float64(info.Size())/float64(rows))
	fmt.Printf("%-44s %10s %10s %8s %10s\n", "run", "seconds", "floor (s)", "ratio", "peak RSS")
	fmt.Printf("%-44s %10.2f %10.2f %7.2fx %7.0f MB   target ≤ 2x\n",
		fmt.Sprintf("cold: %d new of %d", coldRes.New, coldRes.Rows), coldRes.Seconds, floorCopy.Seconds(), coldRes.Seconds/floorCopy.Seconds(), coldRSS)
	fmt.Printf("%-44s %10.2f %10.2f %7.2fx %7.0f MB   target ≤ 2.5x\n",
		fmt.Sprintf("warm: %d new, %d matched", warmRes.New, warmRes.Matched), warmRes.Seconds, floorHash.Seconds(), warmRes.Seconds/floorHash.Seconds(), warmRSS)
	fmt.Printf("%-44s %10.2f %10s %8s %7.0f MB   target ≤ 256 MB\n",
		fmt.Sprintf("big: %d new of %d", bigRes.New, bigRes.Rows), bigRes.Seconds, "-", "-", bigRSS)
	fmt.Printf("\nfloors: COPY into an unindexed 65-text-column table (cold); read + split + SHA-256 per line, in process (warm)\n")
}

// extract runs `viaduct extract path` as its own process and returns its result and peak RSS in MB.
func extract(t *testing.T, bin, databaseURL, path string) (*extractResult, float64) {
	t.Helper()
	cmd := exec.Command(bin, "extract", "--log-level", "warn", path)
	cmd.Env = append(os.Environ(), "DATABASE_URL="+databaseURL)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	require.NoError(t, err)
	var res extractResult
	require.NoError(t, json.Unmarshal(out, &res))
	require.Equal(t, eclrs.FileImported, res.Status)
	rusage := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	return &res, float64(rusage.Maxrss) / 1024 // KiB on Linux
}

type extractResult struct {
	Status  string  `json:"status"`
	Rows    int64   `json:"rows"`
	New     int64   `json:"new"`
	Matched int64   `json:"matched"`
	Seconds float64 `json:"seconds"`
}

// copyFloor COPYs the export into an unindexed table of 65 text columns: the least any import of it can cost.
func copyFloor(t *testing.T, ctx context.Context, db *pgtest.DB, path string) time.Duration {
	t.Helper()
	cols := make([]string, eclrs.NumFields)
	for i := range cols {
		cols[i] = fmt.Sprintf("c%d text", i)
	}
	_, err := db.Pool.Exec(ctx, "CREATE TABLE copy_floor ("+strings.Join(cols, ", ")+")")
	require.NoError(t, err)
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	conn, err := db.Pool.Acquire(ctx)
	require.NoError(t, err)
	defer conn.Release()
	start := time.Now()
	_, err = conn.Conn().PgConn().CopyFrom(ctx, f, `COPY copy_floor FROM STDIN WITH (FORMAT csv, DELIMITER '|', HEADER true)`)
	require.NoError(t, err)
	return time.Since(start)
}

// hashFloor reads the export, splits it into lines and hashes each: what recognising rows costs before any
// database work.
func hashFloor(t *testing.T, path string) time.Duration {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	start := time.Now()
	r := bufio.NewReaderSize(f, 1<<20)
	var sink byte
	for {
		line, err := r.ReadSlice('\n')
		if len(line) > 0 {
			sum := sha256.Sum256(line)
			sink ^= sum[0]
		}
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
	}
	_ = sink
	return time.Since(start)
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return runtime.GOARCH
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH
}

func envInt(name string, def int) int {
	var v int
	if _, err := fmt.Sscan(os.Getenv(name), &v); err != nil || v <= 0 {
		return def
	}
	return v
}
