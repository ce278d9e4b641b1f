package cli

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestVersionStamped builds the binary as `make release` does, with the version stamped through -ldflags, and checks
// that every place an operator reads the version shows it: `viaduct version`, `viaduct --version` and the daemon's
// start-up line.
func TestVersionStamped(t *testing.T) {
	t.Parallel()
	const stamped = "v9.8.7-test"
	bin := filepath.Join(t.TempDir(), "viaduct")
	build := exec.CommandContext(t.Context(), "go", "build", "-ldflags", "-X github.com/viaduct-nys/viaduct/internal/cli.version="+stamped, "-o", bin, "../../cmd/viaduct")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "go build:\n%s", out)

	for _, args := range [][]string{{"version"}, {"--version"}, {"-version"}} {
		out, err := exec.CommandContext(t.Context(), bin, args...).Output()
		require.NoError(t, err, "viaduct %s", args)
		require.Equal(t, "viaduct "+stamped+"\n", string(out), "viaduct %s", args)
	}

	// The start-up line is written before the database is opened, so an unreachable one is enough.
	cmd := exec.CommandContext(t.Context(), bin, "run", "--e1", "--sqs-queue-url", "http://127.0.0.1:1/q", "--http-addr", "")
	cmd.Env = append(os.Environ(), "DATABASE_URL=postgres://viaduct@127.0.0.1:1/viaduct", "VIADUCT_LOG_FORMAT=json")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	require.Error(t, cmd.Run(), "the database is unreachable")
	var starting map[string]any
	for line := range strings.Lines(stderr.String()) {
		var entry map[string]any
		if json.Unmarshal([]byte(line), &entry) == nil && entry["msg"] == "starting" {
			starting = entry
		}
	}
	require.NotNil(t, starting, "no start-up line in:\n%s", stderr.String())
	require.Equal(t, stamped, starting["version"])
}

// TestVersionCLI: --version is the version command, so it takes the command's --help too.
func TestVersionCLI(t *testing.T) {
	t.Parallel()
	res := runCLI(t, nil, "--version")
	require.Equal(t, 0, res.code, res.stderr)
	require.Equal(t, "viaduct "+buildVersion()+"\n", res.stdout)

	res = runCLI(t, nil, "--version", "--help")
	require.Equal(t, 0, res.code, res.stderr)
	require.Contains(t, res.stdout, "Usage: viaduct version")
}
