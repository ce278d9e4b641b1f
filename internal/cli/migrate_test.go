package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
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

// TestMigrateStatus: `viaduct migrate status` lists River's version and each of Viaduct's migrations, applied or
// pending, exits 0 either way, and changes nothing.
func TestMigrateStatus(t *testing.T) {
	t.Parallel()
	files, err := fs.Glob(migrations.FS, "*.sql")
	require.NoError(t, err)
	lastVersion, _, _ := strings.Cut(files[len(files)-1], "_")
	lastName := strings.TrimSuffix(files[len(files)-1][len(lastVersion)+1:], ".sql")
	// A table row: version, name, then a date or "pending".
	row := regexp.MustCompile(`(?m)^(\d{5})\s+(\S+)\s+(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d|pending)$`)

	t.Run("Current", func(t *testing.T) {
		t.Parallel()
		db := pgtest.New(t)
		res := runCLI(t, map[string]string{"DATABASE_URL": db.URL}, "migrate", "status")
		require.Equal(t, 0, res.code, "stderr:\n%s", res.stderr)
		require.Regexp(t, `(?m)^river: version \d+ \(current\)$`, res.stdout)
		require.Contains(t, res.stdout, "viaduct: version "+strings.TrimLeft(lastVersion, "0")+" (current)\n")
		rows := row.FindAllStringSubmatch(res.stdout, -1)
		require.Len(t, rows, len(files), "stdout:\n%s", res.stdout)
		for i, r := range rows {
			require.Equal(t, files[i], r[1]+"_"+r[2]+".sql")
			require.NotEqual(t, "pending", r[3])
		}
	})

	t.Run("LastRolledBack", func(t *testing.T) {
		t.Parallel()
		db := pgtest.New(t)
		provider, err := goose.NewProvider(goose.DialectPostgres, stdlib.OpenDBFromPool(db.Pool), migrations.FS)
		require.NoError(t, err)
		t.Cleanup(func() { _ = provider.Close() })
		_, err = provider.Down(t.Context())
		require.NoError(t, err)

		res := runCLI(t, map[string]string{"DATABASE_URL": db.URL}, "migrate", "status")
		require.Equal(t, 0, res.code, "pending migrations are a state, not a failure; stderr:\n%s", res.stderr)
		require.Regexp(t, `(?m)^viaduct: version \d+ of `+strings.TrimLeft(lastVersion, "0")+` \(1 pending\)$`, res.stdout)
		require.Regexp(t, `(?m)^`+lastVersion+`\s+`+lastName+`\s+pending$`, res.stdout)
		require.Equal(t, 1, strings.Count(res.stdout, "pending\n"), "stdout:\n%s", res.stdout)

		res = runCLI(t, map[string]string{"DATABASE_URL": db.URL}, "migrate", "status", "--json")
		require.Equal(t, 0, res.code, "stderr:\n%s", res.stderr)
		var out migrationStatusJSON
		require.NoError(t, json.Unmarshal([]byte(res.stdout), &out), res.stdout)
		require.Empty(t, out.River.Pending)
		require.Len(t, out.Viaduct.Migrations, len(files))
		for i, m := range out.Viaduct.Migrations {
			require.Equal(t, i == len(files)-1, m.AppliedAt == nil, "version %d", m.Version)
		}
		require.Equal(t, out.Viaduct.Migrations[len(files)-2].Version, out.Viaduct.Version)
	})

	t.Run("Empty", func(t *testing.T) {
		t.Parallel()
		db := pgtest.NewEmpty(t)
		res := runCLI(t, map[string]string{"DATABASE_URL": db.URL}, "migrate", "status")
		require.Equal(t, 0, res.code, "stderr:\n%s", res.stderr)
		require.Regexp(t, `(?m)^river: version 0 of (\d+) \(\d+ pending\)$`, res.stdout)
		require.Contains(t, res.stdout, fmt.Sprintf("viaduct: version 0 of %s (%d pending)\n", strings.TrimLeft(lastVersion, "0"), len(files)))
		rows := row.FindAllStringSubmatch(res.stdout, -1)
		require.Len(t, rows, len(files))
		for _, r := range rows {
			require.Equal(t, "pending", r[3])
		}
		var tables int
		require.NoError(t, db.Pool.QueryRow(t.Context(), `SELECT count(*) FROM pg_tables WHERE schemaname = 'public'`).Scan(&tables))
		require.Zero(t, tables, "status wrote to the database")
	})

	t.Run("MissingDatabase", func(t *testing.T) {
		t.Parallel()
		const secret = "s3cr3t-pw"
		u, err := url.Parse(pgtest.ServerURL())
		require.NoError(t, err)
		u.User = url.UserPassword(u.User.Username(), secret)
		u.Path = "/viaduct_no_such_database"
		res := runCLI(t, map[string]string{"DATABASE_URL": u.String()}, "migrate", "status")
		require.Equal(t, 1, res.code, "stdout:\n%s\nstderr:\n%s", res.stdout, res.stderr)
		require.Contains(t, res.stderr, `database "viaduct_no_such_database" does not exist`)
		require.Contains(t, res.stderr, ":xxxxx@")
		require.NotContains(t, res.stderr, secret)
		require.Empty(t, res.stdout)
	})

	t.Run("Unreachable", func(t *testing.T) {
		t.Parallel()
		res := runCLI(t, map[string]string{"DATABASE_URL": "postgres://viaduct:s3cr3t-pw@127.0.0.1:1/viaduct"}, "migrate", "status")
		require.Equal(t, 1, res.code, "stderr:\n%s", res.stderr)
		require.Contains(t, res.stderr, "viaduct migrate: cannot reach PostgreSQL at 127.0.0.1:1")
		require.Contains(t, res.stderr, "postgres://viaduct:xxxxx@127.0.0.1:1/viaduct")
		require.NotContains(t, res.stderr, "s3cr3t-pw")
	})

	// The flag package stops at the first non-flag word: without the check, this would migrate.
	t.Run("StatusAfterFlags", func(t *testing.T) {
		t.Parallel()
		db := pgtest.NewEmpty(t)
		res := runCLI(t, nil, "migrate", "--database-url", db.URL, "status")
		require.Equal(t, 2, res.code, "stderr:\n%s", res.stderr)
		require.Contains(t, res.stderr, `unexpected argument "status"`)
		pending, err := migrations.Pending(t.Context(), db.Pool)
		require.NoError(t, err)
		require.NotEmpty(t, pending)
	})

	t.Run("Help", func(t *testing.T) {
		t.Parallel()
		res := runCLI(t, nil, "migrate", "status", "--help")
		require.Equal(t, 0, res.code)
		require.Contains(t, res.stdout, "Usage: viaduct migrate status [flags]")
		require.Regexp(t, `(?m)^\s+--database-url\s+DATABASE_URL\s`, res.stdout)
		require.Regexp(t, `(?m)^\s+--json\s+-\s`, res.stdout)
		require.NotContains(t, res.stdout, "--log-level", "status logs nothing")
	})
}
