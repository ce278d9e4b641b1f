package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/aws/smithy-go/logging"
	"github.com/stretchr/testify/require"
)

// TestLibraryLinesAreNamedJSON: what River, watermill and the AWS SDK log comes out as JSON lines of the one log,
// under their logger's name.
func TestLibraryLinesAreNamedJSON(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	logger := newLogger(&config{LogLevel: "debug", LogFormat: "json"}, &out)
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
