package cli

import "runtime/debug"

const (
	// gcPercent is the garbage collector's target when GOGC is unset: collect when the heap has grown by twice what
	// was live, not once. Engine 2 builds a map of 30 to 45 keys per test result and per case and throws it away at
	// commit, so at Go's default the collector took a third of its CPU; at 200, make bench-e2 ran 6% faster with
	// a fifth less CPU in the process.
	gcPercent = 200
	// memoryLimit is the soft limit when GOMEMLIMIT is unset: past it the collector runs as often as it must
	// (spending at most half the CPU), so the larger target cannot carry a process past what Engine 1 promises
	// for any file, 256 MB resident: at 512 MiB an import of 2,000,000 rows peaked at 260 MB, at 200 MiB at 217 MB
	// (make bench-e1). The heaps the engines keep live are well below it, so in normal operation it only trims the
	// larger target's headroom.
	memoryLimit = 224 << 20
)

// tuneGC sets the collector's target and soft memory limit, each unless its variable (GOGC, GOMEMLIMIT) is set,
// since the runtime has applied those already.
func tuneGC(getenv func(string) string) {
	if getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
	if getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(memoryLimit)
	}
}
