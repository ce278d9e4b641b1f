package cli

import "runtime/debug"

const (
	// gcPercent is the garbage collector's target when GOGC is unset: collect when the heap has grown by twice what
	// was live, not once. Engine 2 builds a map of 30 to 45 keys per test result and per case and throws it away at
	// commit, so at Go's default the collector took a third of its CPU; at 200, make bench-e2 ran 6% faster with
	// a fifth less CPU in the process.
	gcPercent = 200
	// memoryLimit is the soft limit when GOMEMLIMIT is unset: past it the collector runs as often as it must, so
	// the larger target cannot double a heap that is large already. It is well above what a daemon holds (an import
	// of a 2,000,000-row file peaks at about 220 MB resident, make bench-e1), so it does not make the collector
	// work harder in normal operation; a limit near the live heap would.
	memoryLimit = 512 << 20
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
