package cli

import "runtime/debug"

const (
	// gcPercent is the garbage collector's target when GOGC is unset: collect when the heap has grown by twice what
	// was live, not once. Engine 2 builds a map of 30 to 45 keys per test result and per case and throws it away at
	// commit, so at Go's default the collector took a third of its CPU; at 200, make bench-e2 ran 6% faster with
	// a fifth less CPU in the process.
	gcPercent = 200
	// memoryLimit bounds the heap when GOMEMLIMIT is unset, so that the larger target cannot carry a process past
	// what Engine 1 promises for any file (256 MB resident): near the limit the collector runs as often as it must.
	memoryLimit = 200 << 20
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
