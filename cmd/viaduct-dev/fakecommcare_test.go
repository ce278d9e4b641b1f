package main

import (
	"bufio"
	"context"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/viaduct-nys/viaduct/pkg/commcare"
)

// TestFakeCommCareCommand runs `viaduct fake-commcare` as a process: it prints where it listens, serves the county
// list to a real client with the credentials it printed, and exits 0 on SIGTERM.
func TestFakeCommCareCommand(t *testing.T) {
	t.Parallel()
	cmd := exec.Command(devBin, "fake-commcare", "--addr", "127.0.0.1:0")
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill() })

	lines := bufio.NewScanner(stdout)
	require.True(t, lines.Scan())
	url, ok := strings.CutPrefix(lines.Text(), "fake CommCare at ")
	require.True(t, ok, lines.Text())
	require.True(t, lines.Scan())
	env := map[string]string{}
	for _, kv := range strings.Fields(lines.Text()) {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	require.Equal(t, url, env["COMMCARE_BASE_URL"])

	client, err := commcare.NewClient(commcare.ClientConfig{BaseURL: url,
		Credentials: env["COMMCARE_API_KEY_CREDENTIALS"], RootDomain: env["COMMCARE_ROOT_DOMAIN"]})
	require.NoError(t, err)
	list, err := client.CountyList(context.Background())
	require.NoError(t, err)
	statewide, ok := list.Statewide()
	require.True(t, ok)
	require.Equal(t, "ny-statewide-cdcms", statewide.Domain)

	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	require.NoError(t, cmd.Wait())
}
