package cli

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"go.uber.org/goleak"
)

// viaductBin is the viaduct binary built once by TestMain, for tests that need a real process: signals, exit codes,
// several processes at once.
var viaductBin string

// TestMain builds the binary the subprocess tests run, runs the tests, and fails the package if a test leaves
// goroutines behind (pgx pools, the in-process AWS emulator, daemons run in-process).
func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "viaduct-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "creating a directory for the viaduct binary:", err)
		return 1
	}
	defer os.RemoveAll(dir)

	viaductBin = filepath.Join(dir, "viaduct")
	build := exec.Command("go", "build", "-o", viaductBin, "../../cmd/viaduct")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building the viaduct binary:", err)
		return 1
	}

	code := m.Run()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak: goroutines outlived the tests:", err)
			return 1
		}
	}
	return code
}
