package cli

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/aws/smithy-go/logging"
	"github.com/stretchr/testify/require"

	"github.com/viaduct-nys/viaduct/pkg/casedb"
)

// TestLibraryLinesAreNamedJSON: what River, watermill and the AWS SDK log comes out as JSON lines of the one log,
// under their logger's name.
func TestLibraryLinesAreNamedJSON(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	logger := NewLogger(&Config{LogLevel: "debug", LogFormat: "json"}, &out)
	slogFor(logger.Named("river")).Info("job rescued", "job_id", 7)
	slogFor(logger.Named("e4").Named("river")).Warn("retrying")
	awsLogger{logger.Named("aws")}.Logf(logging.Warn, "Response has no supported checksum. Not validating response payload.")
	require.NoError(t, logger.Sync())

	var names []string
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var entry map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &entry), line)
		names = append(names, entry["logger"].(string))
	}
	require.Equal(t, []string{"river", "e4.river", "aws"}, names)
}

// TestRiverRetryLinesAreDebug: River's line for a failed attempt of an Engine 4 job is Debug, since Engine 4 logs
// the attempt itself; other kinds' keep River's level.
func TestRiverRetryLinesAreDebug(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	river := slogFor(NewLogger(&Config{LogLevel: "info", LogFormat: "json"}, &out).Named("river"))
	river.Info("jobexecutor.JobExecutor: Job errored; retrying", "error", "boom", "job_id", 1,
		"job_kind", casedb.CaseLoaderArgs{}.Kind())
	river.With("client", "x").Info("jobexecutor.JobExecutor: Job errored", "job_id", 2,
		"job_kind", casedb.CaseLoaderArgs{}.Kind())
	river.Info("jobexecutor.JobExecutor: Job errored; retrying", "job_id", 3, "job_kind", "commcare_import")
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	require.Len(t, lines, 1, out.String())
	require.Contains(t, lines[0], `"job_kind":"commcare_import"`)
	require.Contains(t, lines[0], `"logger":"river"`)
}
