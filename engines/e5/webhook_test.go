package e5

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/viaduct-nys/viaduct/pkg/commcare"
	"github.com/viaduct-nys/viaduct/pkg/commcare/commcaretest"
)

const webhookPassword = "correct horse battery staple"

// forwarding is Engine 5's forwarding path as the daemon wires it: the webhook on a loopback server, and a River
// client with the importer registered (started by run).
type forwarding struct {
	*fixture
	url      string // the webhook's URL
	jobs     *river.Client[pgx.Tx]
	importer *Importer
	logs     *observer.ObservedLogs // everything the webhook and the importer logged, Debug included
	events   <-chan *river.Event
}

func newForwarding(t *testing.T, opts commcaretest.Options, adjust func(*ImporterConfig)) *forwarding {
	t.Helper()
	f := &forwarding{fixture: newFixture(t, opts)}
	core, logs := observer.New(zapcore.DebugLevel)
	f.logs = logs
	logger := zap.New(core)
	cfg := ImporterConfig{OwnUserIDs: []string{ownUser}, LagWait: time.Minute}
	if adjust != nil {
		adjust(&cfg)
	}
	var err error
	f.importer, err = NewImporter(cfg,
		ImporterDeps{Pool: f.db.Pool, CommCare: f.client, Counties: f, Logger: logger, Metrics: f.metrics})
	require.NoError(t, err)
	rc := &river.Config{FetchCooldown: 5 * time.Millisecond, FetchPollInterval: 50 * time.Millisecond}
	require.NoError(t, f.importer.Register(rc))
	f.jobs, err = river.NewClient(riverpgxv5.New(f.db.Pool), rc)
	require.NoError(t, err)
	webhook, err := NewWebhook(WebhookConfig{Password: webhookPassword, OwnUserIDs: []string{ownUser}},
		WebhookDeps{Pool: f.db.Pool, Jobs: f.jobs, Counties: f, Logger: logger, Metrics: f.metrics})
	require.NoError(t, err)
	srv := httptest.NewServer(webhook)
	t.Cleanup(srv.Close)
	f.url = srv.URL + WebhookPath
	return f
}

// run starts the River client, which works the importer's jobs until the test ends.
func (f *forwarding) run(t *testing.T) {
	t.Helper()
	events, cancel := f.jobs.Subscribe(river.EventKindJobCompleted, river.EventKindJobSnoozed, river.EventKindJobFailed,
		river.EventKindJobCancelled)
	f.events = events
	require.NoError(t, f.jobs.Start(context.Background()))
	t.Cleanup(func() {
		cancel()
		ctx, stop := context.WithTimeout(context.Background(), 10*time.Second)
		defer stop()
		require.NoError(t, f.jobs.Stop(ctx))
	})
}

// next waits for the next job event: a job completed, snoozed, failed or cancelled.
func (f *forwarding) next(t *testing.T) *river.Event {
	t.Helper()
	select {
	case ev := <-f.events:
		return ev
	case <-time.After(10 * time.Second):
		require.FailNow(t, "no import job finished within 10 s")
		return nil
	}
}

// post sends body to the webhook as CommCare's forwarder would, with the user and password given, and returns the
// answer's status and text.
func (f *forwarding) post(t *testing.T, body []byte, contentType, user, password string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, f.url, bytes.NewReader(body))
	require.NoError(t, err)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if user != "" || password != "" {
		req.SetBasicAuth(user, password)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	text, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, strings.TrimSpace(string(text))
}

// forward posts c as CommCare's forwarder does and requires 202.
func (f *forwarding) forward(t *testing.T, c commcare.Case) {
	t.Helper()
	status, text := f.post(t, caseJSON(t, c), "application/json", WebhookUser, webhookPassword)
	require.Equal(t, http.StatusAccepted, status, text)
}

func caseJSON(t *testing.T, c commcare.Case) []byte {
	t.Helper()
	body, err := json.Marshal(c)
	require.NoError(t, err)
	return body
}

// forwarded is patient's case as CommCare's forwarder sends it: in domain, last changed at modified, without its
// child cases.
func forwarded(c commcare.Case, domain string, modified time.Time) commcare.Case {
	c.Domain = domain
	c.DateModified = modified.UTC().Format("2006-01-02T15:04:05.000000Z")
	c.ChildCases = nil
	return c
}

func TestWebhookAnswers(t *testing.T) {
	t.Parallel()
	f := newForwarding(t, commcaretest.Options{}, nil)
	now := time.Now()
	good := forwarded(patient("case-1", "Ada", "Lovelace", "1815-12-10", nil), midsomer, now)
	without := func(mutate func(m map[string]any)) []byte {
		var m map[string]any
		require.NoError(t, json.Unmarshal(caseJSON(t, good), &m))
		mutate(m)
		body, err := json.Marshal(m)
		require.NoError(t, err)
		return body
	}
	labResult := good
	labResult.CaseID = "lab-1"
	labResult.Properties = map[string]any{"case_type": "lab_result", "accession_number": "A1"}
	own := good
	own.CaseID, own.UserID = "own-1", ownUser
	elsewhere := good
	elsewhere.CaseID, elsewhere.Domain = "elsewhere-1", "ny-nowhere-cdcms"

	tests := []struct {
		name        string
		method      string
		body        []byte
		contentType string
		user, pass  string
		want        int
		wantText    string
	}{
		{name: "ConnectivityCheck", method: http.MethodGet, want: http.StatusOK, wantText: "OK"},
		{name: "OtherMethod", method: http.MethodPut, body: caseJSON(t, good), contentType: "application/json",
			user: WebhookUser, pass: webhookPassword, want: http.StatusMethodNotAllowed},
		{name: "NoCredentials", body: caseJSON(t, good), contentType: "application/json",
			want: http.StatusUnauthorized, wantText: "Unauthorized"},
		{name: "WrongPassword", body: caseJSON(t, good), contentType: "application/json", user: WebhookUser,
			pass: webhookPassword + "!", want: http.StatusUnauthorized},
		{name: "WrongUser", body: caseJSON(t, good), contentType: "application/json", user: "admin",
			pass: webhookPassword, want: http.StatusUnauthorized},
		{name: "NotDeclaredJSON", body: caseJSON(t, good), contentType: "text/xml", user: WebhookUser,
			pass: webhookPassword, want: http.StatusUnsupportedMediaType},
		{name: "NotJSON", body: []byte(`<case case_id="x"/>`), contentType: "application/json", user: WebhookUser,
			pass: webhookPassword, want: http.StatusUnsupportedMediaType},
		{name: "TooLarge", body: without(func(m map[string]any) { m["padding"] = strings.Repeat("x", 1<<20) }),
			contentType: "application/json", user: WebhookUser, pass: webhookPassword,
			want: http.StatusRequestEntityTooLarge},
		{name: "NotAnObject", body: []byte(`[1, 2]`), contentType: "application/json", user: WebhookUser,
			pass: webhookPassword, want: http.StatusBadRequest, wantText: "Bad Request"},
		{name: "NoCaseID", body: without(func(m map[string]any) { delete(m, "case_id") }),
			contentType: "application/json", user: WebhookUser, pass: webhookPassword, want: http.StatusBadRequest},
		{name: "NoDomain", body: without(func(m map[string]any) { delete(m, "domain") }),
			contentType: "application/json", user: WebhookUser, pass: webhookPassword, want: http.StatusBadRequest},
		{name: "NoUserID", body: without(func(m map[string]any) { m["user_id"] = "" }),
			contentType: "application/json", user: WebhookUser, pass: webhookPassword, want: http.StatusBadRequest},
		{name: "NoCaseType", body: without(func(m map[string]any) { delete(m["properties"].(map[string]any), "case_type") }),
			contentType: "application/json", user: WebhookUser, pass: webhookPassword, want: http.StatusBadRequest},
		{name: "NotAPatient", body: caseJSON(t, labResult), contentType: "application/json", user: WebhookUser,
			pass: webhookPassword, want: http.StatusUnprocessableEntity,
			wantText: "Unprocessable Entity. Can only import `patient` cases. lab-1 is a `lab_result`."},
		{name: "NoParticipatingCounty", body: caseJSON(t, elsewhere), contentType: "application/json",
			user: WebhookUser, pass: webhookPassword, want: http.StatusUnprocessableEntity,
			wantText: "Unprocessable Entity. ny-nowhere-cdcms is not the project space of a participating county."},
		{name: "OwnUser", body: caseJSON(t, own), contentType: "application/json", user: WebhookUser,
			pass: webhookPassword, want: http.StatusAccepted, wantText: "Accepted"},
		{name: "Patient", body: caseJSON(t, good), contentType: "application/json; charset=utf-8", user: WebhookUser,
			pass: webhookPassword, want: http.StatusAccepted, wantText: "Accepted"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			method := tt.method
			if method == "" {
				method = http.MethodPost
			}
			req, err := http.NewRequest(method, f.url, bytes.NewReader(tt.body))
			require.NoError(t, err)
			if tt.contentType != "" {
				req.Header.Set("Content-Type", tt.contentType)
			}
			if tt.user != "" || tt.pass != "" {
				req.SetBasicAuth(tt.user, tt.pass)
			}
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			text, err := io.ReadAll(resp.Body)
			require.NoError(t, err)
			require.Equal(t, tt.want, resp.StatusCode, string(text))
			if tt.wantText != "" {
				require.Equal(t, tt.wantText, strings.TrimSpace(string(text)))
			}
			if tt.want == http.StatusUnauthorized {
				require.Contains(t, resp.Header.Get("WWW-Authenticate"), "Basic")
			}
		})
	}
	// Only the patient was kept and queued; Viaduct's own change and every refusal were not.
	require.Equal(t, 1, f.count(t, `SELECT count(*) FROM commcare_case_inbox`))
	require.Equal(t, 1, f.count(t, `SELECT count(*) FROM commcare_case_inbox WHERE case_id = 'case-1' AND domain = $1`,
		midsomer))
	require.Equal(t, 1, f.count(t, `SELECT count(*) FROM river_job WHERE kind = $1`, ImportArgs{}.Kind()))
	require.Equal(t, 2.0, value(t, f.metrics.forwarding.requests.WithLabelValues("202")))
	require.Equal(t, 3.0, value(t, f.metrics.forwarding.requests.WithLabelValues("401")))
	require.Equal(t, 1.0, value(t, f.metrics.forwarding.received.WithLabelValues("own_post")))
	require.Equal(t, 1.0, value(t, f.metrics.forwarding.received.WithLabelValues("queued")))
}

// TestWebhookKeepsTheNewestCopy: copies of one case may arrive out of order and more than once; while its job
// waits, the inbox keeps the newest and the case has one job.
func TestWebhookKeepsTheNewestCopy(t *testing.T) {
	t.Parallel()
	f := newForwarding(t, commcaretest.Options{}, nil)
	base := time.Now().UTC()
	c := patient("case-1", "Ada", "Lovelace", "1815-12-10", map[string]any{"interview_status": "pending"})
	newer := c
	newer.Properties = map[string]any{"case_type": "patient", "interview_status": "completed"}

	f.forward(t, forwarded(newer, midsomer, base.Add(time.Minute)))
	f.forward(t, forwarded(c, midsomer, base))                      // older, arriving late
	f.forward(t, forwarded(newer, midsomer, base.Add(time.Minute))) // the same change again

	var status string
	require.NoError(t, f.db.Pool.QueryRow(context.Background(),
		`SELECT payload->'properties'->>'interview_status' FROM commcare_case_inbox WHERE case_id = 'case-1'`).Scan(&status))
	require.Equal(t, "completed", status)
	require.Equal(t, 1, f.count(t, `SELECT count(*) FROM river_job WHERE kind = $1`, ImportArgs{}.Kind()))
	require.Equal(t, 2.0, value(t, f.metrics.forwarding.received.WithLabelValues("coalesced")))
}

// TestWebhookNeverLogsTheBodyOrCredentials sends cases full of patient data, good and refused, with good and bad
// credentials, at Debug level: nothing logged holds a value from a body, the password or the Authorization header.
func TestWebhookNeverLogsTheBodyOrCredentials(t *testing.T) {
	t.Parallel()
	f := newForwarding(t, commcaretest.Options{}, nil)
	f.run(t)
	secrets := []string{"Zebediah", "Quixotesworth", "1931-02-29", "1931-03-01", "5550123987", "42 Wallaby Way",
		webhookPassword, base64.StdEncoding.EncodeToString([]byte(WebhookUser + ":" + webhookPassword))}
	c := patient("case-log", "Zebediah", "Quixotesworth", "1931-03-01",
		map[string]any{"phone_home": "5550123987", "address": "42 Wallaby Way"}, "ACC-LOG")
	c = forwarded(c, midsomer, time.Now())
	c.ChildCases = patient("case-log", "", "", "", nil, "ACC-LOG").ChildCases
	f.cc.PutCase(midsomer, c) // the case API's copy, with its lab result
	bodies := [][]byte{
		caseJSON(t, forwarded(c, midsomer, time.Now().Add(-time.Second))),
		[]byte(`{"case_id": "case-log", "properties": {"first_name": "Zebediah", "dob": "1931-02-29"}}`),
		[]byte(`{"first_name": "Zebediah", "address": "42 Wallaby Way"`),
	}
	for _, body := range bodies {
		for _, password := range []string{webhookPassword, "wrong " + webhookPassword} {
			f.post(t, body, "application/json", WebhookUser, password)
		}
	}
	require.Equal(t, river.EventKindJobCompleted, f.next(t).Kind, "the good case was merged")
	require.Equal(t, 1, f.count(t, `SELECT count(*) FROM index_cases WHERE case_id = 'case-log'`))

	require.NotZero(t, f.logs.Len(), "the webhook and the importer logged at Debug")
	for _, entry := range f.logs.All() {
		line, err := json.Marshal(map[string]any{"msg": entry.Message, "fields": entry.ContextMap()})
		require.NoError(t, err)
		for _, s := range secrets {
			require.NotContains(t, string(line), s)
		}
	}
}

func TestNewWebhookReportsEveryProblem(t *testing.T) {
	t.Parallel()
	_, err := NewWebhook(WebhookConfig{MaxBody: -1}, WebhookDeps{})
	require.EqualError(t, err, "e5: the webhook needs a password\n"+
		"e5: the webhook's body limit -1 must be positive\n"+
		"e5: a database pool is required\n"+
		"e5: a River client is required\n"+
		"e5: a county list is required")
}

func TestDecodeForwardedCase(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		body string
		want error
	}{
		{"Case", `{"case_id": "c", "domain": "d", "user_id": "u", "properties": {"case_type": "patient"}}`, nil},
		{"TopLevelCaseType", `{"case_id": "c", "domain": "d", "user_id": "u", "case_type": "patient", "properties": {}}`,
			errNotACase},
		{"Empty", ``, errNotJSON},
		{"Truncated", `{"case_id": "c"`, errNotJSON},
		{"Null", `null`, errNotACase},
		{"Array", `[]`, errNotACase},
		{"WrongType", `{"case_id": 7, "domain": "d", "user_id": "u", "properties": {"case_type": "patient"}}`, errNotACase},
		{"BlankCaseID", `{"case_id": " ", "domain": "d", "user_id": "u", "properties": {"case_type": "patient"}}`, errNotACase},
		{"NoProperties", `{"case_id": "c", "domain": "d", "user_id": "u"}`, errNotACase},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := decodeForwardedCase([]byte(tt.body))
			if tt.want != nil {
				require.ErrorIs(t, err, tt.want)
				return
			}
			require.NoError(t, err)
			require.Equal(t, "c", c.CaseID)
			require.Equal(t, "patient", c.Type())
		})
	}
}

// FuzzDecodeForwardedCase: whatever a forwarder sends, decoding never panics, tells non-JSON from JSON that is not
// a case, and a case it accepts has what the webhook relies on.
func FuzzDecodeForwardedCase(f *testing.F) {
	f.Add([]byte(`{"case_id": "c", "domain": "d", "user_id": "u", "properties": {"case_type": "patient"}}`))
	f.Add([]byte(`{"case_id": "c", "domain": "d", "user_id": "u", "date_modified": "2020-06-05T00:56:45.753000Z",
		"properties": {"case_type": "patient", "dob": "1990-01-01"}, "child_cases": {"l": {"case_id": "l",
		"properties": {"case_type": "lab_result"}}}}`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`{"case_id": 1}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		c, err := decodeForwardedCase(body)
		switch {
		case !json.Valid(body):
			require.ErrorIs(t, err, errNotJSON)
		case err != nil:
			require.ErrorIs(t, err, errNotACase)
		default:
			require.NotEmpty(t, strings.TrimSpace(c.CaseID))
			require.NotEmpty(t, strings.TrimSpace(c.Domain))
			require.NotEmpty(t, strings.TrimSpace(c.UserID))
			require.NotEmpty(t, c.Property("case_type"))
		}
		require.False(t, err != nil && c != nil)
		require.False(t, errors.Is(err, errNotJSON) && errors.Is(err, errNotACase))
	})
}
