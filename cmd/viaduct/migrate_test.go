package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/viaduct-nys/viaduct/migrations"
	"github.com/viaduct-nys/viaduct/pkg/pgtest"
)

// logMessages returns the "msg" of every JSON log line in out, in order; other lines are skipped.
func logMessages(out string) []string {
	var msgs []string
	for line := range strings.Lines(out) {
		var entry struct {
			Msg string `json:"msg"`
		}
		if json.Unmarshal([]byte(line), &entry) == nil && entry.Msg != "" {
			msgs = append(msgs, entry.Msg)
		}
	}
	return msgs
}

func TestMigrate(t *testing.T) {
	t.Parallel()

	// Deployments start several hosts at once, each running `viaduct migrate`: one migrates under the advisory lock,
	// the others wait for it and find nothing left to do.
	t.Run("ConcurrentProcesses", func(t *testing.T) {
		t.Parallel()
		db := pgtest.NewEmpty(t)

		const n = 3
		cmds := make([]*exec.Cmd, n)
		stderrs := make([]*bytes.Buffer, n)
		for i := range cmds {
			cmd := exec.CommandContext(t.Context(), viaductBin, "migrate")
			cmd.Env = append(os.Environ(), "DATABASE_URL="+db.URL, "VIADUCT_LOG_FORMAT=json", "VIADUCT_LOG_LEVEL=info")
			stderrs[i] = &bytes.Buffer{}
			cmd.Stderr = stderrs[i]
			require.NoError(t, cmd.Start())
			cmds[i] = cmd
		}

		migrated, current := 0, 0
		for i, cmd := range cmds {
			require.NoError(t, cmd.Wait(), "viaduct migrate #%d:\n%s", i, stderrs[i])
			for _, msg := range logMessages(stderrs[i].String()) {
				switch msg {
				case "schema migrated":
					migrated++
				case "schema already current":
					current++
				}
			}
		}
		require.Equal(t, 1, migrated, "exactly one process migrates")
		require.Equal(t, n-1, current, "the others find the schema current")

		pending, err := migrations.Pending(t.Context(), db.Pool)
		require.NoError(t, err)
		require.Empty(t, pending)
	})

	t.Run("AlreadyCurrent", func(t *testing.T) {
		t.Parallel()
		db := pgtest.New(t)
		res := runCLI(t, map[string]string{"DATABASE_URL": db.URL}, "migrate")
		require.Equal(t, 0, res.code, "stderr:\n%s", res.stderr)
		require.Equal(t, []string{"schema already current"}, logMessages(res.stderr))
	})

	t.Run("BadDatabaseURL", func(t *testing.T) {
		t.Parallel()
		res := runCLI(t, map[string]string{"DATABASE_URL": "mysql://localhost/viaduct", "VIADUCT_LOG_LEVEL": "chatty"}, "migrate")
		require.Equal(t, 2, res.code, "stderr:\n%s", res.stderr)
		require.Contains(t, res.stderr, "--database-url (DATABASE_URL) is not a PostgreSQL connection string")
		require.Contains(t, res.stderr, `--log-level "chatty"`)
	})

	// The daemon never migrates implicitly: against a database whose schema is not current it refuses to start and
	// says what to do.
	t.Run("RunRefusesUnmigratedDatabase", func(t *testing.T) {
		t.Parallel()
		db := pgtest.NewEmpty(t)
		res := runCLI(t, map[string]string{"DATABASE_URL": db.URL},
			"run", "--e1", "--sqs-queue-url", "http://127.0.0.1:1/q", "--http-addr", "127.0.0.1:0")
		require.NotEqual(t, 0, res.code, "stderr:\n%s", res.stderr)
		require.Contains(t, res.stderr, "run `viaduct migrate` first")

		pending, err := migrations.Pending(t.Context(), db.Pool)
		require.NoError(t, err)
		require.NotEmpty(t, pending, "run did not migrate")
	})
}
