package cli

import (
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/viaduct-nys/viaduct/engines/e5"
	"github.com/viaduct-nys/viaduct/pkg/casedb"
	"github.com/viaduct-nys/viaduct/pkg/commcare"
	"github.com/viaduct-nys/viaduct/pkg/commcare/commcaretest"
	"github.com/viaduct-nys/viaduct/pkg/countylist"
	"github.com/viaduct-nys/viaduct/pkg/pgtest"
)

const testWebhookPassword = "a webhook password long enough"

func TestWebhookConfiguration(t *testing.T) {
	t.Parallel()
	password := map[string]string{"VIADUCT_WEBHOOK_PASSWORD": testWebhookPassword}
	checkConfigCases(t, []configCase{
		{
			name: "NeedsE5",
			env:  password,
			args: []string{"run", "--e1", "--sqs-queue-url", "http://sqs/q", "--webhook-addr", "127.0.0.1:0"},
			want: []string{"--webhook-addr needs --e5: Engine 5 merges the cases CommCare forwards"},
		},
		{
			name: "NeedsAPassword",
			args: []string{"run", "--e5", "--county-list-file", "counties.json", "--webhook-addr", "127.0.0.1:0"},
			want: []string{"--webhook-addr needs a password: set VIADUCT_WEBHOOK_PASSWORD"},
		},
		{
			name:      "ShortPassword",
			env:       map[string]string{"VIADUCT_WEBHOOK_PASSWORD": "hunter2"},
			args:      []string{"run", "--e5", "--county-list-file", "counties.json", "--webhook-addr", "127.0.0.1:0"},
			want:      []string{"the webhook password (VIADUCT_WEBHOOK_PASSWORD) must be at least 16 characters"},
			wantNotIn: []string{"hunter2"},
		},
		{
			name: "NotTheOpsAddress",
			env:  password,
			args: []string{"run", "--e5", "--county-list-file", "counties.json", "--webhook-addr", "127.0.0.1:8080"},
			want: []string{"--webhook-addr 127.0.0.1:8080 is the ops address (--http-addr)"},
		},
		{
			name: "ImportConcurrency",
			args: []string{"run", "--e5", "--county-list-file", "counties.json", "--e5-import-concurrency", "-1"},
			want: []string{"e5: import concurrency -1 is outside 1 to 1,000"},
		},
	})
}

// TestForwardingEndToEnd runs `viaduct run --e5` with its webhook, polling once an hour, and the fake CommCare
// forwarding to it as CommCare's data forwarding would: a case a tracer creates in CommCare arrives with its lab
// result, and the tracer's edit of it follows, both without a poll; Viaduct's own change queues nothing. Nothing
// forwarded, nor the password, reaches the log (at debug level).
func TestForwardingEndToEnd(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	db := pgtest.New(t)
	fake := commcaretest.StartTest(t, commcaretest.Options{})
	p := startViaduct(t, append(commCareEnv(fake), "DATABASE_URL="+db.URL, "COMMCARE_USER_ID=viaduct-test-user",
		"VIADUCT_LOG_LEVEL=debug", "VIADUCT_WEBHOOK_PASSWORD="+testWebhookPassword),
		"run", "--e5", "--http-addr", "", "--webhook-addr", "127.0.0.1:0", "--e5-interval", "1h")
	addr, _ := p.waitLog(t, "serving CommCare's forwarded cases", 30*time.Second)["addr"].(string)
	require.NotEmpty(t, addr)
	p.waitLog(t, "CommCare round done", time.Minute) // the round at start: from here on, only forwarding brings changes
	forwarder, err := fake.ForwardTo(commcaretest.ForwardOptions{URL: "http://" + addr + e5.WebhookPath,
		Password: testWebhookPassword})
	require.NoError(t, err)
	defer forwarder.Close()

	list, err := countylist.NewList(commcaretest.NewYorkCounties())
	require.NoError(t, err)
	county, ok := list.ByFIPS("7")
	require.True(t, ok)
	count := func(query string, args ...any) int {
		var n int
		require.NoError(t, db.Pool.QueryRow(ctx, query, args...).Scan(&n))
		return n
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		require.Eventually(t, cond, 30*time.Second, 20*time.Millisecond, "%s; log:\n%s", what, p.logText())
	}

	// A tracer registers a patient with a lab result in CommCare. The forwarder sends the patient without its child
	// cases, so Viaduct gets it from the case API to create it.
	client, err := commcare.NewClient(fake.ClientConfig())
	require.NoError(t, err)
	name, owner := "Quinbert Zanzibarov", county.LocationID
	form, err := commcare.Form{Cases: []commcare.CaseBlock{
		{CaseID: "tracer-case", DateModified: time.Now(), UserID: "tracer-1", CaseType: "patient", CaseName: &name,
			OwnerID: owner, Update: map[string]any{"first_name": "Quinbert", "last_name": "Zanzibarov",
				"dob": "1931-03-01", "full_name": name, "phone_home": "5550123987"}},
		{CaseID: "tracer-lab", CaseType: "lab_result", OwnerID: "-", Update: map[string]any{"accession_number": "ACC-T1"},
			Parent: &commcare.CaseIndex{CaseID: "tracer-case", CaseType: "patient", Relationship: "extension"}},
	}, Now: time.Now(), Username: "tracer", UserID: "tracer-1", InstanceID: commcare.NewInstanceID()}.XML()
	require.NoError(t, err)
	_, err = client.SubmitForm(ctx, county.Domain, form)
	require.NoError(t, err)
	waitFor("the new case arrives", func() bool {
		return count(`SELECT count(*) FROM lab_results lr JOIN index_cases ic ON ic.id = lr.index_case_id
			WHERE ic.case_id = 'tracer-case' AND lr.accession_number = 'ACC-T1'`) == 1
	})

	// The tracer's edit follows.
	require.NoError(t, fake.UpdateCase(county.Domain, "tracer-case", map[string]string{"interview_status": "completed"},
		"tracer-1"))
	waitFor("the edit arrives", func() bool {
		return count(`SELECT count(*) FROM index_cases WHERE case_id = 'tracer-case'
			AND data->>'interview_status' = 'completed'`) == 1
	})
	// Viaduct's own change comes back through the forwarder too, and is left there.
	require.NoError(t, fake.UpdateCase(county.Domain, "tracer-case", map[string]string{"new_lab_result_received": "yes"},
		"viaduct-test-user"))
	require.NoError(t, forwarder.Wait(ctx))
	require.Equal(t, commcaretest.ForwardStats{Delivered: 3}, forwarder.Stats())

	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	require.Equal(t, 0, p.waitExit(t, 30*time.Second), "exit code; log:\n%s", p.logText())
	require.Equal(t, 2, count(`SELECT count(*) FROM river_job WHERE kind = $1 AND state = 'completed'`,
		e5.ImportArgs{}.Kind()), "two changes imported, Viaduct's own not queued")
	require.Equal(t, 1, count(`SELECT count(*) FROM events WHERE type = $1`, casedb.EventRetrievedFromCommCare))
	require.Equal(t, 1, count(`SELECT count(*) FROM events WHERE type = $1`, casedb.EventUpdatedFromCommCare))
	require.Zero(t, count(`SELECT count(*) FROM commcare_case_inbox`))

	logText := p.logText()
	require.Contains(t, logText, "tracer-case", "case ids are logged, at debug level")
	for _, secret := range []string{"Quinbert", "Zanzibarov", "1931-03-01", "5550123987", testWebhookPassword} {
		require.NotContains(t, logText, secret)
	}
}
