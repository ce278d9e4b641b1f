package cli

import (
	"bufio"
	"bytes"
	"encoding/json"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/viaduct-nys/viaduct/pkg/pgtest"
)

// cliResult is what one in-process `viaduct …` returned and printed.
type cliResult struct {
	code           int
	stdout, stderr string
}

// runCLI runs the command line in-process with env as the whole environment.
func runCLI(t *testing.T, env map[string]string, args ...string) cliResult {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := Run(t.Context(), args, func(name string) string { return env[name] }, &stdout, &stderr, nil)
	return cliResult{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

func TestRun(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout []string
		wantStderr []string
	}{
		{name: "NoArgsPrintsUsage", args: nil, wantCode: 2, wantStdout: []string{"Usage: viaduct COMMAND", "migrate", "run", "extract", "status"}},
		{name: "Help", args: []string{"help"}, wantCode: 0, wantStdout: []string{"Usage: viaduct COMMAND"}},
		{name: "DashDashHelp", args: []string{"--help"}, wantCode: 0, wantStdout: []string{"Usage: viaduct COMMAND"}},
		{name: "DashH", args: []string{"-h"}, wantCode: 0, wantStdout: []string{"Usage: viaduct COMMAND"}},
		{name: "UnknownCommand", args: []string{"frobnicate"}, wantCode: 2, wantStderr: []string{`unknown command "frobnicate"`, "Usage: viaduct COMMAND"}},
		{name: "Version", args: []string{"version"}, wantCode: 0, wantStdout: []string{"viaduct "}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			res := runCLI(t, nil, tt.args...)
			require.Equal(t, tt.wantCode, res.code, "stdout:\n%s\nstderr:\n%s", res.stdout, res.stderr)
			for _, want := range tt.wantStdout {
				require.Contains(t, res.stdout, want)
			}
			for _, want := range tt.wantStderr {
				require.Contains(t, res.stderr, want)
			}
		})
	}

	t.Run("VersionLine", func(t *testing.T) {
		t.Parallel()
		res := runCLI(t, nil, "version")
		require.Equal(t, 0, res.code)
		require.True(t, strings.HasPrefix(res.stdout, "viaduct "), "stdout: %q", res.stdout)
		require.Equal(t, 1, strings.Count(res.stdout, "\n"), "one line: %q", res.stdout)
	})
}

// TestCommandHelp checks that every command's --help lists each of its flags next to the environment variable that
// also sets it, and nothing it does not document here: operators configure the daemon through those names.
func TestCommandHelp(t *testing.T) {
	t.Parallel()

	common := [][2]string{
		{"database-url", "DATABASE_URL"},
		{"log-level", "VIADUCT_LOG_LEVEL"},
		{"log-format", "VIADUCT_LOG_FORMAT"},
	}
	tests := []struct {
		name  string
		args  []string
		flags [][2]string // flag name, environment variable ("-" for none)
	}{
		{
			name: "Run",
			args: []string{"run", "--help"},
			flags: append(append([][2]string{}, common...),
				[2]string{"http-addr", "VIADUCT_HTTP_ADDR"},
				[2]string{"riverui-password", "VIADUCT_RIVERUI_PASSWORD"},
				[2]string{"shutdown-grace", "VIADUCT_SHUTDOWN_GRACE"},
				[2]string{"until-idle", "VIADUCT_UNTIL_IDLE"},
				[2]string{"migrate", "VIADUCT_MIGRATE"},
				[2]string{"e1", "VIADUCT_E1_ENABLED"},
				[2]string{"e2", "VIADUCT_E2_ENABLED"},
				[2]string{"e3", "VIADUCT_E3_ENABLED"},
				[2]string{"e4", "VIADUCT_E4_ENABLED"},
				[2]string{"e5", "VIADUCT_E5_ENABLED"},
				[2]string{"s3-path-style", "S3_USE_PATH_STYLE"},
				[2]string{"sqs-queue-url", "VIADUCT_SQS_QUEUE_URL"},
				[2]string{"sqs-visibility-timeout", "VIADUCT_SQS_VISIBILITY_TIMEOUT"},
				[2]string{"sqs-wait-time", "VIADUCT_SQS_WAIT_TIME"},
				[2]string{"batch-rows", "VIADUCT_E1_BATCH_ROWS"},
				[2]string{"commcare-url", "COMMCARE_BASE_URL"},
				[2]string{"commcare-api-key", "COMMCARE_API_KEY_CREDENTIALS"},
				[2]string{"commcare-root-domain", "COMMCARE_ROOT_DOMAIN"},
				[2]string{"county-list-file", "VIADUCT_COUNTY_LIST_FILE"},
				[2]string{"county-refresh", "VIADUCT_COUNTY_REFRESH"},
				[2]string{"commcare-timeout", "COMMCARE_TIMEOUT"},
				[2]string{"e1-resume-after", "VIADUCT_E1_RESUME_AFTER"},
				[2]string{"e1-max-attempts", "VIADUCT_E1_MAX_ATTEMPTS"},
				[2]string{"e2-batch-size", "VIADUCT_E2_BATCH_SIZE"},
				[2]string{"e2-workers", "VIADUCT_E2_WORKERS"},
				[2]string{"e2-poll-interval", "VIADUCT_E2_POLL_INTERVAL"},
				[2]string{"e2-max-attempts", "VIADUCT_E2_MAX_ATTEMPTS"},
				[2]string{"e2-ignore-before", "VIADUCT_E2_IGNORE_BEFORE"},
				[2]string{"e3-batch-size", "VIADUCT_E3_BATCH_SIZE"},
				[2]string{"e3-busy-poll-interval", "VIADUCT_E3_BUSY_POLL_INTERVAL"},
				[2]string{"e3-idle-poll-interval", "VIADUCT_E3_IDLE_POLL_INTERVAL"},
				[2]string{"commcare-username", "COMMCARE_USERNAME"},
				[2]string{"commcare-user-id", "COMMCARE_USER_ID"},
				[2]string{"commcare-posting", "COMMCARE_POSTING_ENABLED"},
				[2]string{"e4-concurrency", "VIADUCT_E4_CONCURRENCY"},
				[2]string{"e4-job-timeout", "VIADUCT_E4_JOB_TIMEOUT"},
				[2]string{"e4-rescue-after", "VIADUCT_E4_RESCUE_AFTER"},
				[2]string{"e4-retry-base", "VIADUCT_E4_RETRY_BASE"},
				[2]string{"e4-retry-cap", "VIADUCT_E4_RETRY_CAP"},
				[2]string{"e5-interval", "VIADUCT_E5_INTERVAL"},
				[2]string{"e5-overlap", "VIADUCT_E5_OVERLAP"},
				[2]string{"e5-first-window", "VIADUCT_E5_FIRST_WINDOW"},
				[2]string{"e5-page-size", "VIADUCT_E5_PAGE_SIZE"},
				[2]string{"e5-domains", "VIADUCT_E5_DOMAINS"},
				[2]string{"commcare-own-user-ids", "VIADUCT_COMMCARE_OWN_USER_IDS"},
				[2]string{"webhook-addr", "VIADUCT_WEBHOOK_ADDR"},
				[2]string{"webhook-password", "VIADUCT_WEBHOOK_PASSWORD"},
				[2]string{"e5-import-concurrency", "VIADUCT_E5_IMPORT_CONCURRENCY"},
				[2]string{"e1-stale-after", "VIADUCT_E1_STALE_AFTER"},
				[2]string{"retention", "VIADUCT_RETENTION"},
			),
		},
		{
			name: "Extract",
			args: []string{"extract", "--help"},
			flags: append(append([][2]string{}, common...),
				[2]string{"s3-path-style", "S3_USE_PATH_STYLE"},
				[2]string{"batch-rows", "VIADUCT_E1_BATCH_ROWS"},
			),
		},
		{
			name:  "Migrate",
			args:  []string{"migrate", "--help"},
			flags: common,
		},
		{
			name: "Status",
			args: []string{"status", "--help"},
			flags: [][2]string{
				{"database-url", "DATABASE_URL"},
				{"e1-stale-after", "VIADUCT_E1_STALE_AFTER"},
				{"e4-job-timeout", "VIADUCT_E4_JOB_TIMEOUT"},
				{"e4-rescue-after", "VIADUCT_E4_RESCUE_AFTER"},
				{"e5-interval", "VIADUCT_E5_INTERVAL"},
				{"json", "-"},
			},
		},
		{
			name:  "ShortFlag",
			args:  []string{"migrate", "-h"},
			flags: common,
		},
	}
	flagLine := regexp.MustCompile(`^\s+--(\S+)\s+(\S+)\s`)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			res := runCLI(t, nil, tt.args...)
			require.Equal(t, 0, res.code, "stderr:\n%s", res.stderr)
			require.Empty(t, res.stderr)
			require.Contains(t, res.stdout, "Usage: viaduct "+tt.args[0])

			listed := map[string]string{}
			sc := bufio.NewScanner(strings.NewReader(res.stdout))
			for sc.Scan() {
				if m := flagLine.FindStringSubmatch(sc.Text()); m != nil {
					listed[m[1]] = m[2]
				}
			}
			want := map[string]string{}
			for _, f := range tt.flags {
				want[f[0]] = f[1]
			}
			require.Equal(t, want, listed, "help text:\n%s", res.stdout)
		})
	}
}

// TestRunConfiguration checks `viaduct run`'s configuration errors: all problems reported together with exit 2,
// engines this build lacks refused, the environment standing in for flags and flags winning over it. None of these
// reaches the database.
func TestRunConfiguration(t *testing.T) {
	t.Parallel()

	tests := []configCase{
		{
			name: "ReportsEveryProblemAtOnce",
			env:  map[string]string{"VIADUCT_LOG_LEVEL": "loud", "VIADUCT_SHUTDOWN_GRACE": "soon"},
			args: []string{"run"},
			want: []string{
				"no engine enabled",
				`--log-level "loud"`,
				`VIADUCT_SHUTDOWN_GRACE="soon": not a duration`,
			},
		},
		{
			name: "ReportsBadFlagWithOtherProblems",
			args: []string{"run", "--log-format", "xml", "--batch-rows", "many"},
			want: []string{"no engine enabled", `--log-format "xml"`, "--batch-rows"},
		},
		{
			name: "E4NeedsCommCare",
			args: []string{"run", "--e4", "--e4-concurrency", "-1", "--e4-retry-base", "2h", "--e4-retry-cap", "1h"},
			want: []string{"--e4 needs the county list", "--e4 needs CommCare: --commcare-url and --commcare-api-key",
				"--commcare-user-id (COMMCARE_USER_ID) is required with --e4: forms are submitted as that user",
				"e4: concurrency -1 is outside 1 to 1,000",
				"e4: retry base 2h0m0s must be positive and no longer than the retry cap 1h0m0s"},
			wantNotIn: []string{"not part of this build", "e4: the CommCare user id"},
		},
		{
			name: "E5NeedsCommCare",
			args: []string{"run", "--e5", "--e5-page-size", "9000"},
			want: []string{"--e5 needs the county list", "--e5 needs CommCare: --commcare-url",
				"e5: page size 9000 is outside 1 to 5,000"},
		},
		{
			name: "E1NeedsQueueURL",
			args: []string{"run", "--e1"},
			want: []string{"--e1 needs --sqs-queue-url (VIADUCT_SQS_QUEUE_URL)"}, wantNotIn: []string{"no engine enabled"},
		},
		{
			name: "EnvironmentEnablesE1",
			env:  map[string]string{"VIADUCT_E1_ENABLED": "true"},
			args: []string{"run"},
			want: []string{"--e1 needs --sqs-queue-url"}, wantNotIn: []string{"no engine enabled"},
		},
		{
			name: "FlagOverridesEnvironment",
			env:  map[string]string{"VIADUCT_E1_ENABLED": "true", "VIADUCT_LOG_LEVEL": "loud"},
			args: []string{"run", "--e1=false", "--log-level", "debug"},
			want: []string{"no engine enabled"}, wantNotIn: []string{"--sqs-queue-url", "--log-level"},
		},
		{
			name: "BadBooleanInEnvironment",
			env:  map[string]string{"VIADUCT_E1_ENABLED": "yes please"},
			args: []string{"run"},
			want: []string{`VIADUCT_E1_ENABLED="yes please": not a boolean`},
		},
		{
			name: "UnknownFlag",
			args: []string{"run", "--e9"},
			want: []string{"unknown flag --e9\n"},
		},
		{
			name: "EveryUnknownFlagWithTheOtherProblems",
			args: []string{"run", "--e9", "--comcare-api-key=user:s3cr3t", "-databse-url", "postgres://u:s3cr3t@h/db",
				"--log-level", "loud"},
			want:      []string{"unknown flags --e9, --comcare-api-key, -databse-url", `--log-level "loud"`, "no engine enabled"},
			wantNotIn: []string{"s3cr3t"},
		},
	}
	checkConfigCases(t, tests)
}

// configCase is a `viaduct run` invocation that must be refused at start.
type configCase struct {
	name      string
	env       map[string]string
	args      []string
	want      []string // each must appear in stderr
	wantNotIn []string // none may appear in stderr
}

// checkConfigCases runs each case and requires exit code 2, the usage hint, and the expected problems.
func checkConfigCases(t *testing.T, tests []configCase) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			res := runCLI(t, tt.env, tt.args...)
			require.Equal(t, 2, res.code, "stderr:\n%s", res.stderr)
			require.Contains(t, res.stderr, "viaduct run: invalid configuration")
			require.Contains(t, res.stderr, "Run 'viaduct run --help' for the flags.")
			for _, want := range tt.want {
				require.Contains(t, res.stderr, want)
			}
			for _, unwanted := range tt.wantNotIn {
				require.NotContains(t, res.stderr, unwanted)
			}
			require.Empty(t, res.stdout)
		})
	}
}

func TestExtract(t *testing.T) {
	t.Parallel()

	t.Run("NoFiles", func(t *testing.T) {
		t.Parallel()
		res := runCLI(t, nil, "extract")
		require.Equal(t, 2, res.code, "stderr:\n%s", res.stderr)
		require.Contains(t, res.stderr, "name at least one file")
	})

	t.Run("MissingFileFails", func(t *testing.T) {
		t.Parallel()
		db := pgtest.New(t)
		missing := filepath.Join(t.TempDir(), "no-such-export.txt")
		res := runCLI(t, map[string]string{"DATABASE_URL": db.URL}, "extract", missing)
		require.Equal(t, 1, res.code, "stderr:\n%s", res.stderr)
		require.Contains(t, res.stderr, "1 of 1 files failed")

		lines := strings.Split(strings.TrimSpace(res.stdout), "\n")
		require.Len(t, lines, 1, "one JSON object per file: %q", res.stdout)
		var got map[string]any
		require.NoError(t, json.Unmarshal([]byte(lines[0]), &got))
		require.Equal(t, "failed", got["status"])
		require.Equal(t, missing, got["file"])
		require.Contains(t, got["reason"], "no such file")
	})
}

func TestStatus(t *testing.T) {
	t.Parallel()

	t.Run("Table", func(t *testing.T) {
		t.Parallel()
		db := pgtest.New(t)
		res := runCLI(t, map[string]string{"DATABASE_URL": db.URL}, "status")
		require.Equal(t, 0, res.code, "stderr:\n%s", res.stderr)
		for _, want := range []string{"STAGE", "files imported", "files failed", "test results", "rows with errors"} {
			require.Contains(t, res.stdout, want)
		}
		require.NotContains(t, res.stdout, "last import:", "a fresh database has imported nothing")
	})

	t.Run("JSON", func(t *testing.T) {
		t.Parallel()
		db := pgtest.New(t)
		res := runCLI(t, map[string]string{"DATABASE_URL": db.URL}, "status", "--json")
		require.Equal(t, 0, res.code, "stderr:\n%s", res.stderr)
		var got struct {
			E1 *struct {
				Files       map[string]int64 `json:"files"`
				TestResults *int64           `json:"test_results"`
			} `json:"e1"`
		}
		require.NoError(t, json.Unmarshal([]byte(res.stdout), &got), "stdout:\n%s", res.stdout)
		require.NotNil(t, got.E1, "an e1 object: %s", res.stdout)
		require.NotNil(t, got.E1.TestResults)
		require.Zero(t, *got.E1.TestResults)
		require.Contains(t, got.E1.Files, "imported")
		require.Zero(t, got.E1.Files["imported"])
	})

	t.Run("UnmigratedDatabase", func(t *testing.T) {
		t.Parallel()
		db := pgtest.NewEmpty(t)
		res := runCLI(t, map[string]string{"DATABASE_URL": db.URL}, "status")
		require.Equal(t, 1, res.code, "stderr:\n%s", res.stderr)
		require.Contains(t, res.stderr, "viaduct status:")
	})
}
