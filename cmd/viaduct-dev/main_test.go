package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"go.uber.org/goleak"

	"github.com/viaduct-nys/viaduct/internal/cli"
)

// devBin is the viaduct-dev binary built once by TestMain, for the tests that run it as a process.
var devBin string

// TestMain builds the binary, runs the tests, and fails the package if a test leaves goroutines behind.
func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "viaduct-dev-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "creating a directory for the viaduct-dev binary:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	devBin = filepath.Join(dir, "viaduct-dev")
	build := exec.Command("go", "build", "-o", devBin, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building the viaduct-dev binary:", err)
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

// cliResult is how a command line ended: its exit code and what it printed.
type cliResult struct {
	code           int
	stdout, stderr string
}

// runCLI runs the viaduct-dev command line in-process with env as the whole environment.
func runCLI(t *testing.T, env map[string]string, args ...string) cliResult {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := cli.Run(t.Context(), args, func(name string) string { return env[name] }, &stdout, &stderr, devCommands)
	return cliResult{code: code, stdout: stdout.String(), stderr: stderr.String()}
}
