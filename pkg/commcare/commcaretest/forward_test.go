package commcaretest_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/viaduct-nys/viaduct/pkg/commcare"
	"github.com/viaduct-nys/viaduct/pkg/commcare/commcaretest"
)

// receiver is a stand-in for Viaduct's webhook: it records what it is sent and answers with the statuses it is
// given, one per request, then 202.
type receiver struct {
	mu       sync.Mutex
	statuses []int
	got      []forwardedRequest
}

type forwardedRequest struct {
	user, password, contentType string
	c                           commcare.Case
	raw                         map[string]any
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	user, password, _ := req.BasicAuth()
	got := forwardedRequest{user: user, password: password, contentType: req.Header.Get("Content-Type")}
	_ = json.Unmarshal(body, &got.c)
	_ = json.Unmarshal(body, &got.raw)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, got)
	status := http.StatusAccepted
	if len(r.statuses) > 0 {
		status, r.statuses = r.statuses[0], r.statuses[1:]
	}
	w.WriteHeader(status)
}

func (r *receiver) requests() []forwardedRequest {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]forwardedRequest(nil), r.got...)
}

func startForwarding(t *testing.T, s *commcaretest.Server, r *receiver, opts commcaretest.ForwardOptions) *commcaretest.Forwarder {
	t.Helper()
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	opts.URL, opts.Password = srv.URL+"/api/commcare_cases", "secret"
	opts.RetryWait = time.Millisecond
	f, err := s.ForwardTo(opts)
	require.NoError(t, err)
	t.Cleanup(f.Close)
	return f
}

func TestForwarding(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := startTest(t, commcaretest.Options{})
	r := &receiver{}
	var mu sync.Mutex
	var deliveries []commcaretest.Delivery
	f := startForwarding(t, s, r, commcaretest.ForwardOptions{OnDelivery: func(d commcaretest.Delivery) {
		mu.Lock()
		defer mu.Unlock()
		deliveries = append(deliveries, d)
	}})

	// A form creating a patient and its lab result: the patient is forwarded, the lab result is not (the type filter).
	resp, body := submit(t, s, midsomer, specForm("lab-1", "form-1"))
	require.Equal(t, http.StatusCreated, resp.StatusCode, body)
	// Three edits of one case, in the order they were made.
	for _, status := range []string{"attempted", "reached", "completed"} {
		require.NoError(t, s.UpdateCase(midsomer, "index-case-id", map[string]string{"interview_status": status}, "tracer"))
	}
	require.NoError(t, f.Wait(ctx))

	got := r.requests()
	require.Len(t, got, 4)
	for _, g := range got {
		require.Equal(t, commcaretest.DefaultForwardUser, g.user)
		require.Equal(t, "secret", g.password)
		require.Equal(t, "application/json", g.contentType)
		require.Equal(t, "index-case-id", g.c.CaseID)
		require.Equal(t, midsomer, g.c.Domain)
		require.Equal(t, "patient", g.c.Type())
		require.NotContains(t, g.raw, "child_cases", "as CommCare's case repeater, without child cases")
	}
	require.Equal(t, "test-user-id", got[0].c.UserID)
	for i, status := range []string{"attempted", "reached", "completed"} {
		require.Equal(t, status, got[i+1].c.Properties["interview_status"], "in the order made")
		require.Equal(t, "tracer", got[i+1].c.UserID)
	}
	require.Equal(t, commcaretest.ForwardStats{Delivered: 4}, f.Stats())
	mu.Lock()
	require.Len(t, deliveries, 4)
	require.Equal(t, http.StatusAccepted, deliveries[3].Status)
	mu.Unlock()

	// Forward sends a case as it stands; a seeded case is forwarded only so.
	s.PutCase(midsomer, patientCase("seeded", "ext-1", ""))
	require.NoError(t, s.Forward(midsomer, "seeded"))
	require.NoError(t, f.Wait(ctx))
	require.Equal(t, "seeded", r.requests()[4].c.CaseID)
	require.Error(t, s.Forward(midsomer, "no-such-case"))
	_, err := s.ForwardTo(commcaretest.ForwardOptions{URL: "http://127.0.0.1:1/"})
	require.Error(t, err, "one forwarder at a time")
}

func TestForwardingRetries(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := startTest(t, commcaretest.Options{})
	a := patientCase("a", "ext-a", "")
	a.ChildCases = map[string]commcare.Case{"a-lab": {Properties: map[string]any{"case_type": "lab_result"}}}
	s.PutCase(midsomer, a)
	s.PutCase(midsomer, patientCase("b", "ext-b", ""))
	// a: a 503 and a 429 are tried again; b: a 401 is final. One worker, so the order is known.
	r := &receiver{statuses: []int{http.StatusServiceUnavailable, http.StatusTooManyRequests, http.StatusAccepted,
		http.StatusUnauthorized}}
	f := startForwarding(t, s, r, commcaretest.ForwardOptions{Workers: 1, ChildCases: true, MaxAttempts: 3})
	require.NoError(t, s.Forward(midsomer, "a"))
	require.NoError(t, s.Forward(midsomer, "b"))
	require.NoError(t, f.Wait(ctx))
	require.Equal(t, commcaretest.ForwardStats{Delivered: 1, Failed: 1, Retries: 2}, f.Stats())
	got := r.requests()
	require.Len(t, got, 4)
	require.Contains(t, got[0].raw, "child_cases", "ChildCases forwards them")

	// Nothing answers: given up after MaxAttempts.
	s2, _ := startTest(t, commcaretest.Options{})
	s2.PutCase(midsomer, patientCase("c", "ext-c", ""))
	f2, err := s2.ForwardTo(commcaretest.ForwardOptions{URL: "http://127.0.0.1:1/api/commcare_cases", Password: "x",
		MaxAttempts: 2, RetryWait: time.Millisecond})
	require.NoError(t, err)
	defer f2.Close()
	require.NoError(t, s2.Forward(midsomer, "c"))
	require.NoError(t, f2.Wait(ctx))
	require.Equal(t, commcaretest.ForwardStats{Failed: 1, Retries: 1}, f2.Stats())
}
