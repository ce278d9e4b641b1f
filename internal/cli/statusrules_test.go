package cli

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/viaduct-nys/viaduct/pkg/pgtest"
	"github.com/viaduct-nys/viaduct/pkg/status/report"
	"github.com/viaduct-nys/viaduct/pkg/testfactory"
)

// liveDaemon is a daemon that beat just now and runs every engine.
const liveDaemon = `INSERT INTO daemons (id, hostname, pid, version, engines) VALUES
	(gen_random_uuid(), 'ops-1', 101, 'test', '{e1,e2,e3,e4,e5}');`

// recentImport is an export imported a minute ago, so that Engine 1's feed is fresh.
const recentImport = `INSERT INTO files (filename, key, status, processing_started_at, processing_completed_at)
	VALUES ('s3://b/recent.txt', 'recent.txt', 'imported', now() - interval '2 minutes', now() - interval '1 minute');`

// TestStatusRules reads real databases seeded with one situation each and checks every engine's verdict: which
// daemons are live (the heartbeat's 30 s), how fresh the feed is (--e1-stale-after, measured from the last import or,
// before the first, from the oldest live Engine 1 daemon's start), what a daemon reports (Engine 1's queue), and
// how long the oldest waiting item of each engine may wait before it turns amber, then red.
func TestStatusRules(t *testing.T) {
	t.Parallel()
	type want struct {
		state report.State
		why   []string // each must be among the verdict's reasons (as a substring of one)
	}
	ok := want{state: report.OK}
	tests := []struct {
		name string
		sql  string
		// seed does what SQL alone makes awkward; nil for nothing.
		seed func(t *testing.T, pool *pgxpool.Pool)
		// thresholds changes the defaults; nil keeps them.
		thresholds func(*report.Thresholds)
		want       map[string]want // by engine; an engine not listed must be ok
	}{
		{
			name: "NoDaemonAtAll",
			want: map[string]want{
				"e1": {report.Red, []string{"no running daemon runs Engine 1"}},
				"e2": {report.Red, []string{"no running daemon runs Engine 2"}},
				"e3": {report.Red, []string{"no running daemon runs Engine 3"}},
				"e4": {report.Red, []string{"no running daemon runs Engine 4"}},
				"e5": {report.Red, []string{"no running daemon runs Engine 5"}},
			},
		},
		{
			name: "OneDaemonRunsEverything",
			sql:  liveDaemon + recentImport,
		},
		{
			name: "ADaemonWithOnlyEngine1",
			sql: recentImport + `INSERT INTO daemons (id, hostname, pid, version, engines) VALUES
				(gen_random_uuid(), 'e1-only', 7, 'test', '{e1}');`,
			want: map[string]want{
				"e2": {report.Red, []string{"no running daemon runs Engine 2"}},
				"e3": {report.Red, []string{"no running daemon runs Engine 3"}},
				"e4": {report.Red, []string{"no running daemon runs Engine 4"}},
				"e5": {report.Red, []string{"no running daemon runs Engine 5"}},
			},
		},
		{
			name: "BeatWithinThreeIntervalsIsLive",
			sql: recentImport + `INSERT INTO daemons (id, hostname, pid, version, engines, beat_at) VALUES
				(gen_random_uuid(), 'slow', 7, 'test', '{e1,e2,e3,e4,e5}', now() - interval '25 seconds');`,
		},
		{
			name: "BeatOlderThanThreeIntervalsIsGone",
			sql: recentImport + `INSERT INTO daemons (id, hostname, pid, version, engines, beat_at) VALUES
				(gen_random_uuid(), 'killed', 7, 'test', '{e1,e2,e3,e4,e5}', now() - interval '31 seconds');`,
			want: map[string]want{
				"e1": {report.Red, []string{"no running daemon runs Engine 1 (the last, killed (pid 7), went silent at "}},
				"e2": {report.Red, []string{"no running daemon runs Engine 2"}},
				"e3": {report.Red, []string{"no running daemon runs Engine 3"}},
				"e4": {report.Red, []string{"no running daemon runs Engine 4"}},
				"e5": {report.Red, []string{"no running daemon runs Engine 5"}},
			},
		},
		{
			name: "StoppedDaemon",
			sql: liveDaemon + recentImport + `UPDATE daemons SET engines = '{e2,e3,e4,e5}';
				INSERT INTO daemons (id, hostname, pid, version, engines, stopped_at) VALUES
				(gen_random_uuid(), 'deployed', 8, 'old', '{e1}', now());`,
			want: map[string]want{
				"e1": {report.Red, []string{"no running daemon runs Engine 1 (the last, deployed (pid 8), stopped at "}},
			},
		},
		{
			name: "StaleFeed",
			sql: liveDaemon + `INSERT INTO files (filename, key, status, processing_started_at, processing_completed_at)
				VALUES ('s3://b/old.txt', 'old.txt', 'imported', now() - interval '3 hours 13 minutes',
				        now() - interval '3 hours 12 minutes');`,
			want: map[string]want{"e1": {report.Red, []string{"no export imported for 3h12m (stale after 2h): the last was file 1 at "}}},
		},
		{
			name: "FeedNotStaleYet",
			sql: liveDaemon + `INSERT INTO files (filename, key, status, processing_started_at, processing_completed_at)
				VALUES ('s3://b/old.txt', 'old.txt', 'imported', now() - interval '2 hours', now() - interval '119 minutes');`,
		},
		{
			name: "StaleAfterIsConfigured",
			sql: liveDaemon + `INSERT INTO files (filename, key, status, processing_started_at, processing_completed_at)
				VALUES ('s3://b/old.txt', 'old.txt', 'imported', now() - interval '3 hours', now() - interval '3 hours');`,
			thresholds: func(th *report.Thresholds) { th.E1StaleAfter = report.Duration(4 * time.Hour) },
		},
		{
			name: "NeverImportedSinceAnOldDaemonStarted",
			sql: `INSERT INTO daemons (id, hostname, pid, version, engines, started_at) VALUES
				(gen_random_uuid(), 'ops-1', 101, 'test', '{e1,e2,e3,e4,e5}', now() - interval '150 minutes'),
				(gen_random_uuid(), 'ops-2', 102, 'test', '{e1}', now() - interval '10 minutes');`,
			want: map[string]want{"e1": {report.Red, []string{"no export imported since Engine 1 started 2h30m ago (stale after 2h): none ever was"}}},
		},
		{
			name: "NeverImportedButJustStarted",
			sql:  liveDaemon,
		},
		{
			name: "QueueMissing",
			sql: recentImport + `INSERT INTO daemons (id, hostname, pid, version, engines, problems) VALUES
				(gen_random_uuid(), 'ops-1', 101, 'test', '{e1,e2,e3,e4,e5}', '{"e1": {"reason": "queue_missing",
				 "message": "AWS.SimpleQueueService.NonExistentQueue", "since": "2026-12-04T10:00:00Z", "errors": 42}}');`,
			want: map[string]want{"e1": {report.Red, []string{"cannot read the queue: the queue does not exist " +
				"(queue_missing) since 2026-12-04T10:00:00Z (42 failed receives) on ops-1 (pid 101): " +
				"AWS.SimpleQueueService.NonExistentQueue"}}},
		},
		{
			name: "AProblemOfADaemonGoneIsNotCurrent",
			sql: liveDaemon + recentImport + `INSERT INTO daemons (id, hostname, pid, version, engines, problems, beat_at)
				VALUES (gen_random_uuid(), 'old', 9, 'test', '{e1}', '{"e1": {"reason": "access_denied", "message": "no",
				 "since": "2026-12-04T10:00:00Z", "errors": 1}}', now() - interval '5 minutes');`,
		},
		{
			name: "FileFailedInTheLastHour",
			sql: liveDaemon + recentImport + `INSERT INTO files (filename, key, status, failure_reason,
				processing_completed_at) VALUES ('s3://b/bad.txt', 'bad.txt', 'failed', 'gave up', now());`,
			want: map[string]want{"e1": {report.Red, []string{"1 file failed in the last hour"}}},
		},
		{
			name: "FileImportingForLong",
			sql: liveDaemon + recentImport + `INSERT INTO files (filename, key, status, inserted_at) VALUES
				('s3://b/slow.txt', 'slow.txt', 'importing', now() - interval '45 minutes');`,
			want: map[string]want{"e1": {report.Amber, []string{"the oldest file importing has waited 45m (amber after 30m)"}}},
		},
		{
			name: "FileImportingForTooLong",
			sql: liveDaemon + recentImport + `INSERT INTO files (filename, key, status, inserted_at) VALUES
				('s3://b/stuck.txt', 'stuck.txt', 'importing', now() - interval '150 minutes');`,
			want: map[string]want{"e1": {report.Red, []string{"the oldest file importing has waited 2h30m (red after 2h)"}}},
		},
		{
			name: "TestResultWaiting",
			sql:  liveDaemon + recentImport,
			seed: func(t *testing.T, pool *pgxpool.Pool) {
				testfactory.TestResult(t, t.Context(), pool, nil)
				execSQL(t, pool, `UPDATE test_results SET inserted_at = now() - interval '15 minutes'`)
			},
			want: map[string]want{"e2": {report.Amber, []string{"the oldest waiting test result has waited 15m (amber after 10m)"}}},
		},
		{
			name: "TestResultRetryingForLong",
			sql:  liveDaemon + recentImport,
			seed: func(t *testing.T, pool *pgxpool.Pool) {
				id := testfactory.TestResult(t, t.Context(), pool, nil)
				execSQL(t, pool, `UPDATE test_results SET inserted_at = now() - interval '90 minutes'`)
				execSQL(t, pool, `INSERT INTO test_result_attempts (test_result_id, attempts, last_error, next_attempt_at)
					VALUES ($1, 3, 'deadlock detected', now() + interval '1 minute')`, id)
			},
			want: map[string]want{"e2": {report.Red, []string{"retrying: 1 test result waits for another attempt",
				"the oldest waiting test result has waited 1h30m (red after 1h)"}}},
		},
		{
			name: "ChangedCaseWaiting",
			sql: liveDaemon + recentImport + `INSERT INTO counties (id) VALUES (1);
				INSERT INTO people (id, patient_keys) VALUES (1, '{rules-test}');
				INSERT INTO index_cases (id, person_id, county_id, data) VALUES (1, 1, 1, '{}');
				INSERT INTO events (id, type, inserted_at) VALUES (1, 'index_case_created', now() - interval '40 minutes');
				INSERT INTO index_case_events (index_case_id, event_id) VALUES (1, 1);`,
			want: map[string]want{"e3": {report.Red, []string{"the oldest changed case has waited 40m (red after 30m)"}}},
		},
		{
			name: "JobWaitingAndAJobRunningPastItsRescue",
			sql: liveDaemon + recentImport + `INSERT INTO river_job (args, kind, max_attempts, queue, state, created_at,
				attempted_at, attempt) VALUES
				('{"case_id": "a", "county_id": 1}', 'commcare_case_loader', 20, 'commcare', 'available',
				 now() - interval '45 minutes', NULL, 0),
				('{"case_id": "b", "county_id": 1}', 'commcare_case_loader', 20, 'commcare', 'running',
				 now() - interval '10 minutes', now() - interval '10 minutes', 1);`,
			want: map[string]want{"e4": {report.Amber, []string{"the oldest waiting job has waited 45m (amber after 30m)",
				"a job has run for 10m, longer than 3m: its daemon has likely died"}}},
		},
		{
			name: "ARetriedPostIsAmber",
			sql: liveDaemon + recentImport + `INSERT INTO events (type, data) VALUES
				('send_to_commcare_failed', '{"status": 500}'), ('send_to_commcare_failed', '{"status": 429,
				 "response": "rate_limited"}'), ('send_to_commcare_succeeded', '{"response": "ok"}');`,
			want: map[string]want{"e4": {report.Amber, []string{"retrying: 1 post failed in the last hour",
				"retrying: 1 post rate limited in the last hour"}}},
		},
		{
			name: "AGivenUpPostIsRed",
			sql: liveDaemon + recentImport + `INSERT INTO events (type, data) VALUES
				('send_to_commcare_discarded', '{"reason": "cycle_detected"}');
				INSERT INTO river_job (args, kind, max_attempts, queue, state, finalized_at, attempt) VALUES
				('{"case_id": "c", "county_id": 1}', 'commcare_case_loader', 20, 'commcare', 'discarded', now(), 20);`,
			want: map[string]want{"e4": {report.Red, []string{"1 case given up in the last hour",
				"1 job ran out of attempts in the last hour"}}},
		},
		{
			name: "DomainsFailingAndBehind",
			sql: liveDaemon + recentImport + `INSERT INTO commcare_sync_marks (domain, high_water, round_started_at,
				round_completed_at, last_error, failing_since) VALUES
				('ny-current-cdcms', now() - interval '5 minutes', now() - interval '5 minutes', now() - interval '4 minutes', NULL, NULL),
				('ny-new-failure-cdcms', now() - interval '30 minutes', now(), now() - interval '30 minutes', 'HTTP 500', now() - interval '20 minutes'),
				('ny-old-failure-cdcms', now() - interval '3 hours', now(), now() - interval '3 hours', 'HTTP 403', now() - interval '2 hours'),
				('ny-behind-cdcms', now() - interval '40 minutes', now(), now() - interval '40 minutes', NULL, NULL),
				('ny-left-cdcms', now() - interval '9 days', now() - interval '8 days', now() - interval '9 days', 'HTTP 401', now() - interval '8 days');`,
			want: map[string]want{"e5": {report.Red, []string{
				"ny-old-failure-cdcms failing for 2h (red after 1h): HTTP 403",
				"ny-new-failure-cdcms failing for 20m (red after 1h): HTTP 500",
				"not current, no round completed within 15m: ny-behind-cdcms (last completed 40m ago)"}}},
		},
		{
			name: "DomainCurrentWithinThreeIntervals",
			sql: liveDaemon + recentImport + `INSERT INTO commcare_sync_marks (domain, high_water, round_started_at,
				round_completed_at) VALUES ('ny-slow-cdcms', now() - interval '80 minutes', now() - interval '80 minutes',
				now() - interval '80 minutes');`,
			thresholds: func(th *report.Thresholds) { th.E5CurrentWithin = report.Duration(90 * time.Minute) },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			db := pgtest.New(t)
			if tt.sql != "" {
				_, err := db.Pool.Exec(t.Context(), tt.sql, pgx.QueryExecModeSimpleProtocol)
				require.NoError(t, err)
			}
			if tt.seed != nil {
				tt.seed(t, db.Pool)
			}
			th := report.Defaults()
			if tt.thresholds != nil {
				tt.thresholds(&th)
			}
			r, err := readStatusBy(t.Context(), db.Pool, th)
			require.NoError(t, err)
			require.Len(t, r.Engines, 5)
			for i, e := range r.Engines {
				require.Equal(t, "e"+string(rune('1'+i)), e.Engine)
				w, listed := tt.want[e.Engine]
				if !listed {
					w = ok
				}
				require.Equal(t, w.state, e.State, "%s: %q", e.Engine, e.Why)
				if w.state == report.OK {
					require.Empty(t, e.Why, e.Engine)
				}
				for _, why := range w.why {
					require.True(t, containsOne(e.Why, why), "%s: %q among %q", e.Engine, why, e.Why)
				}
			}
		})
	}
}

// containsOne reports whether one of reasons contains s.
func containsOne(reasons []string, s string) bool {
	for _, r := range reasons {
		if strings.Contains(r, s) {
			return true
		}
	}
	return false
}

// execSQL runs sql with args on pool.
func execSQL(t *testing.T, pool *pgxpool.Pool, sql string, args ...any) {
	t.Helper()
	if len(args) == 0 {
		args = []any{pgx.QueryExecModeSimpleProtocol} // several statements
	}
	_, err := pool.Exec(context.WithoutCancel(t.Context()), sql, args...)
	require.NoError(t, err)
}

// TestDaemonStatusJudgesByItsFlags: a daemon's /status judges by the thresholds its own flags set (--e1-stale-after,
// --e4-rescue-after, three --e5-interval), and says so in its JSON; `viaduct status` takes the same flags.
func TestDaemonStatusJudgesByItsFlags(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	p := startViaduct(t, e2Env(db), "run", "--e2", "--county-list-file", writeCountyList(t), "--http-addr", "127.0.0.1:0",
		"--e1-stale-after", "3h", "--e4-rescue-after", "10m", "--e5-interval", "1m")
	addr, _ := p.waitLog(t, "serving the status page, River UI, metrics, health and readiness", time.Minute)["addr"].(string)
	require.NotEmpty(t, addr)
	code, body := get(t, "http://"+addr+"/status?format=json")
	require.Equal(t, http.StatusOK, code, body)
	var got report.Status
	require.NoError(t, json.Unmarshal([]byte(body), &got))
	want := report.Defaults()
	want.E1StaleAfter = report.Duration(3 * time.Hour)
	want.E4RunningLongerThan = report.Duration(10 * time.Minute)
	want.E5CurrentWithin = report.Duration(3 * time.Minute)
	require.Equal(t, want, got.Thresholds,
		"daemon() serves /status with newOpsHandler(pool, reg, ui, c.statusThresholds())")
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	require.Equal(t, 0, p.waitExit(t, 30*time.Second), "log:\n%s", p.logText())

	res := runCLI(t, map[string]string{"DATABASE_URL": db.URL, "VIADUCT_E1_STALE_AFTER": "3h"}, "status", "--json",
		"--e4-job-timeout", "9m", "--e5-interval", "1m")
	require.Equal(t, 0, res.code, res.stderr)
	require.NoError(t, json.Unmarshal([]byte(res.stdout), &got))
	require.Equal(t, want, got.Thresholds, "the rescue time is the job timeout and a minute")
}
