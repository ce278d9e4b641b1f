package cli

import (
	"bufio"
	"encoding/json"
	"fmt"
	"html"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/viaduct-nys/viaduct/pkg/awstest"
	"github.com/viaduct-nys/viaduct/pkg/casedb"
	"github.com/viaduct-nys/viaduct/pkg/commcare/commcaretest"
	"github.com/viaduct-nys/viaduct/pkg/countylist"
	"github.com/viaduct-nys/viaduct/pkg/pgtest"
	"github.com/viaduct-nys/viaduct/pkg/status/report"
	"github.com/viaduct-nys/viaduct/pkg/testfactory"
)

// TestFailuresThatWereInvisible runs `viaduct run --e1` on a queue that does not exist, on a database whose last
// export was imported three hours ago: Engine 1 is red on /status, in `viaduct status` and in the metrics for both
// reasons (it cannot read the queue, and the feed is stale), and Engines 2 to 5, which no daemon runs, are red
// too. Engine 1's failure is one named log line; watermill's once-a-second line is Debug, under its logger's name.
func TestFailuresThatWereInvisible(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	env, stopAWS, err := awstest.Start(ctx)
	require.NoError(t, err)
	t.Cleanup(stopAWS)
	res, err := env.CreateResources(ctx, awstest.UniqueNames("invisible"), nil)
	require.NoError(t, err)
	db := pgtest.New(t)
	var imported time.Time
	require.NoError(t, db.Pool.QueryRow(ctx, `INSERT INTO files (filename, key, status, processing_started_at,
		    processing_completed_at) VALUES ('s3://b/last.txt', 'last.txt', 'imported', now() - interval '3 hours',
		    date_trunc('second', now()) - interval '3 hours') RETURNING processing_completed_at`).Scan(&imported))

	p := startViaduct(t, append(daemonEnv(env, db), "VIADUCT_LOG_LEVEL=debug"), "run", "--e1",
		"--sqs-queue-url", res.QueueURL+"-missing", "--http-addr", "127.0.0.1:0")
	addr, _ := p.waitLog(t, "serving the status page, River UI, metrics, health and readiness", time.Minute)["addr"].(string)
	require.NotEmpty(t, addr)
	base := "http://" + addr
	// The daemon beats every 10 s; its beat after the first failed receive carries the problem.
	require.Eventually(t, func() bool {
		var reported bool
		_ = db.Pool.QueryRow(ctx, `SELECT bool_or(problems ? 'e1') FROM daemons`).Scan(&reported)
		return reported
	}, time.Minute, 100*time.Millisecond, "the heartbeat reports Engine 1's problem")

	queueMissing := "cannot read the queue: the queue does not exist (queue_missing) since "
	stale := "no export imported for 3h"
	wantWhy := map[string][]string{"e1": {queueMissing, stale, "(stale after 2h): the last was file 1 at "}}
	for n := 2; n <= 5; n++ {
		wantWhy[fmt.Sprintf("e%d", n)] = []string{fmt.Sprintf("no running daemon runs Engine %d", n)}
	}

	// /status as JSON: every engine red, each for its reasons.
	code, body := get(t, base+"/status?format=json")
	require.Equal(t, http.StatusOK, code, body)
	var got report.Status
	require.NoError(t, json.Unmarshal([]byte(body), &got))
	require.Len(t, got.Engines, 5)
	for _, e := range got.Engines {
		require.Equal(t, report.Red, e.State, "%s: %q", e.Engine, e.Why)
		for _, why := range wantWhy[e.Engine] {
			require.True(t, containsOne(e.Why, why), "%s: %q among %q", e.Engine, why, e.Why)
		}
	}
	require.Equal(t, []string{"e1"}, got.Daemons[0].Engines)
	require.Equal(t, report.Duration(2*time.Hour), got.Thresholds.E1StaleAfter, "the thresholds in force are shown")

	// The page and the terminal say the same.
	code, body = get(t, base+"/status")
	require.Equal(t, http.StatusOK, code)
	page := html.UnescapeString(body)
	term := runCLI(t, map[string]string{"DATABASE_URL": db.URL}, "status")
	require.Equal(t, 0, term.code, term.stderr)
	for _, text := range []string{page, term.stdout} {
		for _, whys := range wantWhy {
			for _, why := range whys {
				require.Contains(t, text, why)
			}
		}
	}
	require.Regexp(t, `<tr class="red">\s*<td><b>Engine 1</b>`, page)
	require.Contains(t, term.stdout, "Engine 1 is red:")
	// A longer --e1-stale-after makes the feed fresh again, the queue still red.
	term = runCLI(t, map[string]string{"DATABASE_URL": db.URL, "VIADUCT_E1_STALE_AFTER": "4h"}, "status")
	require.Equal(t, 0, term.code, term.stderr)
	require.NotContains(t, term.stdout, stale)
	require.Contains(t, term.stdout, queueMissing)

	// The metrics: the failed receives by reason, the last import as the database has it, and the verdicts.
	code, body = get(t, base+"/metrics")
	require.Equal(t, http.StatusOK, code)
	receiveErrors, ok := metricValue(body, "viaduct_e1_receive_errors_total", map[string]string{"reason": "queue_missing"})
	require.True(t, ok, body)
	require.Positive(t, receiveErrors)
	lastImport, ok := metricValue(body, "viaduct_e1_last_import_timestamp_seconds", nil)
	require.True(t, ok, body)
	require.Equal(t, float64(imported.Unix()), lastImport)
	for engine, want := range map[string]float64{"e1": 2, "e2": 2, "e3": 2, "e4": 2, "e5": 2} {
		v, ok := metricValue(body, "viaduct_status_engine_state", map[string]string{"engine": engine})
		require.True(t, ok, body)
		require.Equal(t, want, v, engine)
	}
	for engine, want := range map[string]float64{"e1": 1, "e2": 0, "e5": 0} {
		v, ok := metricValue(body, "viaduct_status_engine_daemons", map[string]string{"engine": engine})
		require.True(t, ok, body)
		require.Equal(t, want, v, engine)
	}
	v, ok := metricValue(body, "viaduct_build_info", nil)
	require.True(t, ok, body)
	require.Equal(t, 1.0, v)

	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	require.Equal(t, 0, p.waitExit(t, 30*time.Second), "log:\n%s", p.logText())

	// The log: Engine 1 says so once, named; watermill's retries are Debug, named too.
	failed := p.entries(func(e map[string]any) bool {
		return e["msg"] == "cannot read the queue: no export is imported until this is fixed"
	})
	require.Len(t, failed, 1, "log:\n%s", p.logText())
	require.Equal(t, "e1", failed[0]["logger"])
	require.Equal(t, "error", failed[0]["level"])
	watermill := p.entries(func(e map[string]any) bool { return e["msg"] == "Cannot connect receive messages" })
	require.NotEmpty(t, watermill, "log:\n%s", p.logText())
	for _, e := range watermill {
		require.Equal(t, "watermill", e["logger"], "%v", e)
		require.Equal(t, "debug", e["level"], "%v", e)
	}
	for _, e := range p.entries(func(map[string]any) bool { return true }) {
		require.NotContains(t, e, "raw", "every line is JSON")
	}
}

// TestRetriedPostIsAmber runs `viaduct run --e4` on a case whose first post CommCare answers 500 and whose second it
// accepts: Engine 4 is amber ("retrying"), not red, on /status, in `viaduct status` and in the metrics, and the
// retry is one line of the log, Engine 4's, saying when the next attempt comes (River's own line is Debug).
func TestRetriedPostIsAmber(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	db := pgtest.New(t)
	fake := commcaretest.StartTest(t, commcaretest.Options{Counties: commcaretest.TestCounties()})
	list, err := countylist.NewList(commcaretest.TestCounties())
	require.NoError(t, err)
	_, err = countylist.Seed(ctx, db.Pool, list)
	require.NoError(t, err)
	person := testfactory.Person(t, ctx, db.Pool, &testfactory.PersonOpts{PatientKeys: []string{"retried"}})
	caseID := "3e1f9a52-8c4d-4b6e-9f70-1a2b3c4d5e6f"
	id := testfactory.IndexCase(t, ctx, db.Pool, &testfactory.IndexCaseOpts{PersonID: person,
		CountyID: testfactory.MidsomerCountyID, CaseID: caseID}).ID
	testfactory.Event(t, ctx, db.Pool, &testfactory.EventOpts{IndexCaseID: id, Type: casedb.EventIndexCaseCreated})
	testfactory.LabResult(t, ctx, db.Pool, &testfactory.LabResultOpts{IndexCaseID: id})
	execSQL(t, db.Pool, `INSERT INTO river_job (args, kind, max_attempts, queue, state) VALUES ($1, $2, 20, 'commcare',
		'available')`, fmt.Sprintf(`{"case_id": %q, "county_id": %d}`, caseID, testfactory.MidsomerCountyID),
		casedb.CaseLoaderArgs{}.Kind())
	fake.Fail(http.MethodPost, "/a/"+commcaretest.MidsomerDomain+"/receiver/", commcaretest.Fault{Status: 500, Times: 1})

	p := startViaduct(t, append(append(e2Env(db, "VIADUCT_LOG_LEVEL=debug"), commCareEnv(fake)...),
		"COMMCARE_USER_ID=viaduct-test-user"), "run", "--e4", "--http-addr", "127.0.0.1:0", "--e4-retry-base", "1s")
	addr, _ := p.waitLog(t, "serving the status page, River UI, metrics, health and readiness", time.Minute)["addr"].(string)
	require.NotEmpty(t, addr)
	base := "http://" + addr
	require.Eventually(t, func() bool {
		var state string
		_ = db.Pool.QueryRow(ctx, `SELECT state::text FROM river_job`).Scan(&state)
		return state == "completed"
	}, time.Minute, 50*time.Millisecond, "the job is retried and completes")
	require.Equal(t, 1, fake.Submissions(commcaretest.MidsomerDomain), "accepted on the second post")

	retrying := "retrying: 1 post failed in the last hour, each retried by its job"
	code, body := get(t, base+"/status?format=json")
	require.Equal(t, http.StatusOK, code, body)
	var got report.Status
	require.NoError(t, json.Unmarshal([]byte(body), &got))
	e4 := got.Engines[3]
	require.Equal(t, "e4", e4.Engine)
	require.Equal(t, report.Amber, e4.State, "%q", e4.Why)
	require.Equal(t, []string{retrying}, e4.Why)
	require.Len(t, e4.Daemons, 1)

	code, body = get(t, base+"/status")
	require.Equal(t, http.StatusOK, code)
	page := html.UnescapeString(body)
	require.Regexp(t, `<tr class="amber">\s*<td><b>Engine 4</b>`, page)
	require.Contains(t, page, retrying)
	require.Regexp(t, `<a href="/riverui/jobs/\d+">River job \d+; viaduct trace --case-id `+caseID+`</a>`, page,
		"the failure links to its job")
	term := runCLI(t, map[string]string{"DATABASE_URL": db.URL}, "status")
	require.Equal(t, 0, term.code, term.stderr)
	require.Contains(t, term.stdout, "Engine 4 is amber:\n    - "+retrying)
	require.Regexp(t, `Engine 4 case loader\s+amber\s`, term.stdout)

	code, body = get(t, base+"/metrics")
	require.Equal(t, http.StatusOK, code)
	for outcome, want := range map[string]float64{"failed": 1, "posted": 1, "discarded": 0, "cancelled": 0} {
		v, ok := metricValue(body, "viaduct_e4_job_attempts_total", map[string]string{"outcome": outcome})
		require.True(t, ok, body)
		require.Equal(t, want, v, outcome)
	}
	v, ok := metricValue(body, "viaduct_status_engine_state", map[string]string{"engine": "e4"})
	require.True(t, ok, body)
	require.Equal(t, 1.0, v, "amber")

	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	require.Equal(t, 0, p.waitExit(t, 30*time.Second), "log:\n%s", p.logText())

	// One line above Debug for the retry, Engine 4's; River's own is Debug, under River's name.
	retries := p.entries(func(e map[string]any) bool {
		msg, _ := e["msg"].(string)
		return e["level"] != "debug" && (strings.Contains(msg, "attempt failed") || strings.Contains(msg, "Job errored") ||
			strings.Contains(msg, "retrying later"))
	})
	require.Len(t, retries, 1, "log:\n%s", p.logText())
	require.Equal(t, "e4", retries[0]["logger"])
	require.Equal(t, "warn", retries[0]["level"])
	require.Equal(t, "case loader attempt failed; retrying", retries[0]["msg"])
	require.EqualValues(t, 1, retries[0]["attempt"])
	require.Equal(t, "1s", retries[0]["retry_in"])
	require.Contains(t, retries[0]["error"], "posting the case to "+commcaretest.MidsomerDomain)
	_, err = time.Parse(time.RFC3339, retries[0]["next_attempt_at"].(string))
	require.NoError(t, err)
	river := p.entries(func(e map[string]any) bool {
		msg, _ := e["msg"].(string)
		return strings.HasSuffix(msg, "Job errored; retrying")
	})
	require.Len(t, river, 1, "River still says it, at Debug: log:\n%s", p.logText())
	require.Equal(t, "river", river[0]["logger"])
	require.Equal(t, "debug", river[0]["level"])
}

// TestFatalStartErrorIsOneLogLine: `viaduct run` that cannot start (its database unreachable) ends with one JSON
// line like the rest of its log, saying why, and exits 1.
func TestFatalStartErrorIsOneLogLine(t *testing.T) {
	t.Parallel()
	res := runCLI(t, map[string]string{"DATABASE_URL": "postgres://viaduct@127.0.0.1:1/viaduct?connect_timeout=2"},
		"run", "--e2", "--county-list-file", "counties.json", "--http-addr", "")
	require.Equal(t, 1, res.code, res.stderr)
	lines := strings.Split(strings.TrimSpace(res.stderr), "\n")
	require.GreaterOrEqual(t, len(lines), 2, "the start line, then the error: %s", res.stderr)
	for _, line := range lines {
		var entry map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &entry), "every line is JSON: %q", line)
	}
	var last map[string]any
	require.NoError(t, json.Unmarshal([]byte(lines[len(lines)-1]), &last))
	require.Equal(t, "error", last["level"])
	require.Contains(t, last["msg"], "viaduct run: connecting to postgres://viaduct@127.0.0.1:1/viaduct")
	require.Equal(t, "run", last["command"])

	// A configuration error comes before there is a log: it is text for the person at the terminal.
	res = runCLI(t, nil, "run")
	require.Equal(t, 2, res.code)
	require.True(t, strings.HasPrefix(res.stderr, "viaduct run: invalid configuration"), res.stderr)
}

// entries returns the log entries for which keep is true.
func (p *viaductProcess) entries(keep func(map[string]any) bool) []map[string]any {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []map[string]any
	for _, e := range p.logs {
		if keep(e) {
			out = append(out, e)
		}
	}
	return out
}

// sample matches a sample line of the Prometheus text format: name, labels, value.
var sample = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)`)

// metricValue returns the value of the sample of name in body, a /metrics page, whose labels include labels.
func metricValue(body, name string, labels map[string]string) (float64, bool) {
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		m := sample.FindStringSubmatch(sc.Text())
		if m == nil || m[1] != name {
			continue
		}
		matches := true
		for k, v := range labels {
			if !strings.Contains(m[2], k+"="+strconv.Quote(v)) {
				matches = false
			}
		}
		if !matches {
			continue
		}
		v, err := strconv.ParseFloat(m[3], 64)
		return v, err == nil
	}
	return 0, false
}
