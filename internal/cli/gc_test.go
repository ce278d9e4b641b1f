package cli

import (
	"math"
	"runtime/debug"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestTuneGC is not parallel: it changes the process's collector settings, and puts them back.
func TestTuneGC(t *testing.T) {
	percent, limit := debug.SetGCPercent(100), debug.SetMemoryLimit(math.MaxInt64)
	t.Cleanup(func() {
		debug.SetGCPercent(percent)
		debug.SetMemoryLimit(limit)
	})

	tuneGC(func(string) string { return "" })
	require.Equal(t, gcPercent, debug.SetGCPercent(100))
	require.Equal(t, int64(memoryLimit), debug.SetMemoryLimit(math.MaxInt64))

	// The operator's variables win: the runtime applied them at start, and tuneGC leaves them.
	tuneGC(func(name string) string { return map[string]string{"GOGC": "50", "GOMEMLIMIT": "1GiB"}[name] })
	require.Equal(t, 100, debug.SetGCPercent(100))
	require.Equal(t, int64(math.MaxInt64), debug.SetMemoryLimit(math.MaxInt64))
}
