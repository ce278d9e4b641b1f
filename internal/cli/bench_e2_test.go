//go:build bench

package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/viaduct-nys/viaduct/pkg/commcare/commcaretest"
	"github.com/viaduct-nys/viaduct/pkg/eclrs/eclrsgen"
	"github.com/viaduct-nys/viaduct/pkg/pgtest"
)

// TestBenchE2 is `make bench-e2`: Engine 2 processes the 200,000 new test results of a generated export (about a
// third sharing a person with another result, spread over New York's participating counties) with --until-idle,
// as its own process. It prints results per second and how the time splits between claiming, matching (loading
// and deciding) and writing. A measurement, not a test: it fails only if something breaks. Target ≥ 5,000/s.
func TestBenchE2(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	rows := envInt("BENCH_ROWS", 200_000)

	bin := filepath.Join(dir, "viaduct")
	build := exec.Command("go", "build", "-o", bin, "../../cmd/viaduct")
	build.Stderr = os.Stderr
	require.NoError(t, build.Run())

	var participating []int64
	for _, c := range commcaretest.NewYorkCounties() {
		if n, err := strconv.ParseInt(c.FIPS, 10, 64); err == nil && c.Participating && !c.Statewide {
			participating = append(participating, n)
		}
	}
	export := filepath.Join(dir, "export.txt")
	f, err := os.Create(export)
	require.NoError(t, err)
	w := bufio.NewWriterSize(f, 1<<20)
	require.NoError(t, eclrsgen.Write(w, eclrsgen.Options{Rows: rows, Seed: 2, Counties: participating}))
	require.NoError(t, w.Flush())
	require.NoError(t, f.Close())
	countyFile := filepath.Join(dir, "counties.json")
	require.NoError(t, commcaretest.WriteCountyListFile(countyFile, commcaretest.NewYorkCounties()))

	db := pgtest.New(t)
	extract(t, bin, db.URL, export)
	_, err = db.Pool.Exec(ctx, "VACUUM ANALYZE test_results")
	require.NoError(t, err)
	_, err = db.Pool.Exec(ctx, "CHECKPOINT")
	require.NoError(t, err)

	// At debug level each batch logs how long each of its write steps took.
	cmd := exec.Command(bin, "run", "--e2", "--until-idle", "--http-addr", "", "--log-format", "json", "--log-level", "debug",
		"--county-list-file", countyFile, "--e2-ignore-before", "2020-01-01")
	cmd.Env = append(os.Environ(), "DATABASE_URL="+db.URL)
	var logs bytes.Buffer
	cmd.Stderr = &logs
	start := time.Now()
	require.NoError(t, cmd.Run(), logs.String())
	elapsed := time.Since(start)

	var final struct {
		Results int    `json:"results"`
		Ignored int    `json:"ignored"`
		Failed  int    `json:"failed"`
		Batches int    `json:"batches"`
		Claim   string `json:"claim_time"`
		Match   string `json:"match_time"`
		Write   string `json:"write_time"`
	}
	found := false
	steps := map[string]float64{}
	var stepNames []string
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, `"no test results ready; stopping"`) {
			require.NoError(t, json.Unmarshal([]byte(line), &final))
			found = true
		}
		if strings.Contains(line, `"batch committed"`) {
			var batch struct {
				Steps json.RawMessage `json:"write_steps"`
			}
			require.NoError(t, json.Unmarshal([]byte(line), &batch))
			// The steps in the order the batch ran them: the object's order, which a map would lose.
			dec := json.NewDecoder(bytes.NewReader(batch.Steps))
			_, err := dec.Token()
			require.NoError(t, err)
			for dec.More() {
				key, err := dec.Token()
				require.NoError(t, err)
				var v string
				require.NoError(t, dec.Decode(&v))
				d, err := time.ParseDuration(v)
				require.NoError(t, err)
				name := key.(string)
				if _, seen := steps[name]; !seen {
					stepNames = append(stepNames, name)
				}
				steps[name] += d.Seconds()
			}
		}
	}
	require.True(t, found, "Engine 2's closing log line is missing:\n%s", logs.String())
	require.Equal(t, rows, final.Results)
	require.Zero(t, final.Failed)

	var people, cases, labs, events int64
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM people), (SELECT count(*) FROM index_cases),
		(SELECT count(*) FROM lab_results), (SELECT count(*) FROM events)`).Scan(&people, &cases, &labs, &events))
	seconds := func(s string) float64 {
		d, err := time.ParseDuration(s)
		require.NoError(t, err)
		return d.Seconds()
	}
	claim, match, write := seconds(final.Claim), seconds(final.Match), seconds(final.Write)
	busy := claim + match + write

	fmt.Printf("\nEngine 2 benchmark — %s, %d CPUs, %s\n", cpuModel(), runtime.NumCPU(), runtime.Version())
	fmt.Printf("%d test results in %d batches → %d people, %d index cases, %d lab results, %d events\n\n",
		final.Results, final.Batches, people, cases, labs, events)
	fmt.Printf("%-28s %10.2f s\n", "wall clock (process)", elapsed.Seconds())
	usage := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	cpu := time.Duration(usage.Utime.Nano() + usage.Stime.Nano())
	fmt.Printf("%-28s %10.2f s   (user+sys; PostgreSQL had the rest of the %d CPUs' %.1f s)\n", "CPU of the process",
		cpu.Seconds(), runtime.NumCPU(), float64(runtime.NumCPU())*elapsed.Seconds())
	fmt.Printf("%-28s %10.0f MB\n", "peak RSS of the process", float64(usage.Maxrss)/1024)
	fmt.Printf("%-28s %10.0f /s   target ≥ 15,000/s\n", "test results per second", float64(final.Results)/elapsed.Seconds())
	fmt.Printf("\nworker time, summed over workers (%.2f s):\n", busy)
	fmt.Printf("  %-26s %8.2f s  %5.1f%%\n", "claim", claim, 100*claim/busy)
	fmt.Printf("  %-26s %8.2f s  %5.1f%%\n", "match (load + decide)", match, 100*match/busy)
	fmt.Printf("  %-26s %8.2f s  %5.1f%%\n", "write (incl. commit)", write, 100*write/busy)
	rest := write
	for _, name := range stepNames {
		fmt.Printf("    %-24s %8.2f s  %5.1f%%\n", strings.ReplaceAll(name, "_", " "), steps[name], 100*steps[name]/busy)
		rest -= steps[name]
	}
	fmt.Printf("    %-24s %8.2f s  %5.1f%%\n", "commit", rest, 100*rest/busy)
}
