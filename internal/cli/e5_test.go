package cli

import (
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/viaduct-nys/viaduct/pkg/casedb"
	"github.com/viaduct-nys/viaduct/pkg/commcare/commcaretest"
	"github.com/viaduct-nys/viaduct/pkg/countylist"
	"github.com/viaduct-nys/viaduct/pkg/pgtest"
)

// TestAllEnginesEndToEnd runs the five engines in one `viaduct run` process, logging at debug level: an ECLRS
// export put in S3 becomes cases in the fake CommCare; a contact tracer's edit made there comes back into
// PostgreSQL, while Viaduct's own posts do not bounce back as updates. No patient's name, date of birth, phone
// number or address appears anywhere in the log.
func TestAllEnginesEndToEnd(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	env, res := announceGeneratedExport(t, "e5", 300, 5)

	db := pgtest.New(t)
	fake := commcaretest.StartTest(t, commcaretest.Options{})
	p := startViaduct(t, append(append(daemonEnv(env, db), commCareEnv(fake)...), "COMMCARE_USER_ID=viaduct-test-user",
		"VIADUCT_LOG_LEVEL=debug"),
		"run", "--e1", "--e2", "--e3", "--e4", "--e5", "--http-addr", "", "--sqs-queue-url", res.QueueURL,
		"--e2-poll-interval", "100ms", "--e3-idle-poll-interval", "100ms", "--e3-busy-poll-interval", "1ms",
		"--e5-interval", "1s", "--shutdown-grace", "20s")

	// waitFor waits for cond, failing at once if the daemon exits.
	waitFor := func(cond func() bool, timeout time.Duration, what string) {
		t.Helper()
		require.Eventually(t, func() bool {
			select {
			case <-p.exited:
				return true
			default:
			}
			return cond()
		}, timeout, 100*time.Millisecond, what)
		select {
		case <-p.exited:
			require.FailNow(t, "viaduct exited", "log:\n%s", p.logText())
		default:
		}
	}

	// Every index case reaches CommCare.
	var cases int
	waitFor(func() bool {
		if db.Pool.QueryRow(ctx, `SELECT count(*) FROM index_cases`).Scan(&cases) != nil || cases == 0 {
			return false
		}
		var posted int
		_ = db.Pool.QueryRow(ctx, `SELECT count(DISTINCT j.index_case_id) FROM index_case_events j
			JOIN events e ON e.id = j.event_id WHERE e.type = $1`, casedb.EventSendToCommCareSucceeded).Scan(&posted)
		return posted == cases
	}, 2*time.Minute, "every case posted")

	// A contact tracer edits one case in CommCare.
	var caseID string
	var county int64
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT case_id, county_id FROM index_cases ORDER BY id LIMIT 1`).Scan(&caseID, &county))
	list, err := countylist.NewList(commcaretest.NewYorkCounties())
	require.NoError(t, err)
	c, ok := list.ByFIPS(strconv.FormatInt(county, 10))
	require.True(t, ok)
	require.NoError(t, fake.UpdateCase(c.Domain, caseID, map[string]string{"interview_status": "completed"}, "tracer-1"))

	waitFor(func() bool {
		var status string
		_ = db.Pool.QueryRow(ctx, `SELECT coalesce(data->>'interview_status', '') FROM index_cases WHERE case_id = $1`,
			caseID).Scan(&status)
		return status == "completed"
	}, time.Minute, "the edit came back")

	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	require.Equal(t, 0, p.waitExit(t, 30*time.Second), "exit code; log:\n%s", p.logText())

	var updates, retrieved int
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE type = $1), count(*) FILTER (WHERE type = $2)
		FROM events`, casedb.EventUpdatedFromCommCare, casedb.EventRetrievedFromCommCare).Scan(&updates, &retrieved))
	require.Equal(t, 1, updates, "only the tracer's edit came back; Viaduct's own posts did not")
	require.Zero(t, retrieved, "CommCare held no case Viaduct did not send")
	var after int
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*) FROM index_cases`).Scan(&after))
	require.Equal(t, cases, after)

	// The patient data of every test result, against everything the daemon logged.
	rows, err := db.Pool.Query(ctx, `SELECT DISTINCT v FROM test_results, LATERAL unnest(ARRAY[patient_name_first,
		    patient_name_last, to_char(patient_dob, 'YYYY-MM-DD'), to_char(patient_dob, 'MM/DD/YYYY'), patient_phone_home,
		    patient_phone_home_normalized, patient_address_1]) AS v
		 WHERE length(v) >= 5`)
	require.NoError(t, err)
	logText := p.logText()
	checked := 0
	for rows.Next() {
		var v string
		require.NoError(t, rows.Scan(&v))
		if i := strings.Index(logText, v); i >= 0 {
			t.Errorf("patient data %q in the log: …%s…", v, logText[max(0, i-200):min(len(logText), i+len(v)+50)])
		}
		checked++
	}
	require.NoError(t, rows.Err())
	require.Positive(t, checked)
	t.Logf("%d distinct names, dates of birth, phones and addresses checked against %d bytes of log", checked, len(logText))
}
