package commcaretest_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/viaduct-nys/viaduct/pkg/commcare/commcaretest"
)

const patientURL = "/a/" + midsomer + "/api/v0.5/case/p/?format=json&child_cases__full=true"

func TestRandomFaults(t *testing.T) {
	t.Parallel()

	t.Run("RateLimit", func(t *testing.T) {
		t.Parallel()
		s, _ := startTest(t, commcaretest.Options{FaultRate: 1, FaultKinds: []commcaretest.FaultKind{commcaretest.FaultRateLimit}})
		for _, target := range []string{patientURL, "/a/" + midsomer + "/api/v0.5/case/?type=patient"} {
			resp, _ := send(t, s, http.MethodGet, target, "")
			require.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
			require.Equal(t, "1", resp.Header.Get("Retry-After"))
		}
		require.Equal(t, map[commcaretest.FaultKind]int{commcaretest.FaultRateLimit: 2}, s.FaultsInjected())

		s, _ = startTest(t, commcaretest.Options{FaultRate: 1, RetryAfter: 2500 * time.Millisecond,
			FaultKinds: []commcaretest.FaultKind{commcaretest.FaultRateLimit}})
		resp, _ := send(t, s, http.MethodGet, patientURL, "")
		require.Equal(t, "3", resp.Header.Get("Retry-After"), "whole seconds, rounded up")
	})

	t.Run("ServerError", func(t *testing.T) {
		t.Parallel()
		s, _ := startTest(t, commcaretest.Options{FaultRate: 1, FaultKinds: []commcaretest.FaultKind{commcaretest.FaultServerError}})
		resp, body := send(t, s, http.MethodGet, patientURL, "")
		require.Equal(t, http.StatusInternalServerError, resp.StatusCode)
		require.Equal(t, "500 Internal Server Error", body)
		require.Equal(t, map[commcaretest.FaultKind]int{commcaretest.FaultServerError: 1}, s.FaultsInjected())
	})

	t.Run("TimeoutAnswers504WhenHeldLongEnough", func(t *testing.T) {
		t.Parallel()
		s, _ := startTest(t, commcaretest.Options{FaultRate: 1, TimeoutDelay: time.Millisecond,
			FaultKinds: []commcaretest.FaultKind{commcaretest.FaultTimeout}})
		resp, _ := send(t, s, http.MethodGet, patientURL, "")
		require.Equal(t, http.StatusGatewayTimeout, resp.StatusCode)
		require.Equal(t, map[commcaretest.FaultKind]int{commcaretest.FaultTimeout: 1}, s.FaultsInjected())
	})

	t.Run("TimeoutOutlastsTheClient", func(t *testing.T) {
		t.Parallel()
		// The default hold is two minutes; the client gives up long before, and stopping the server ends the hold.
		s, _ := startTest(t, commcaretest.Options{FaultRate: 1, FaultKinds: []commcaretest.FaultKind{commcaretest.FaultTimeout}})
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL()+patientURL, nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", "ApiKey "+commcaretest.DefaultCredentials)
		_, err = http.DefaultClient.Do(req)
		require.ErrorIs(t, err, context.DeadlineExceeded)
	})

	t.Run("FailedSubmissionIsNotApplied", func(t *testing.T) {
		t.Parallel()
		for _, kind := range []commcaretest.FaultKind{
			commcaretest.FaultRateLimit, commcaretest.FaultServerError, commcaretest.FaultTimeout,
		} {
			t.Run(string(kind), func(t *testing.T) {
				t.Parallel()
				s, _ := startTest(t, commcaretest.Options{FaultRate: 1, TimeoutDelay: time.Millisecond,
					FaultKinds: []commcaretest.FaultKind{kind}})
				resp, body := submit(t, s, midsomer, specForm("lab", "instance"))
				require.NotEqual(t, http.StatusCreated, resp.StatusCode)
				require.NotContains(t, body, "submit_success")
				require.Empty(t, s.Domains())
				require.Zero(t, s.Submissions(midsomer))
				require.Equal(t, 1, s.FaultsInjected()[kind])

				s.SetFaultRate(0, 0)
				mustSubmit(t, s, midsomer, specForm("lab", "instance"))
				require.Zero(t, s.DuplicateSubmissions(), "the failed post left no trace of its instance")
			})
		}
	})

	t.Run("OnlyCaseAPIAndReceiver", func(t *testing.T) {
		t.Parallel()
		s, _ := startTest(t, commcaretest.Options{FaultRate: 1})
		resp, _ := send(t, s, http.MethodGet, "/a/ny-statewide-cdcms/api/v0.5/fixture/?fixture_type=county_list", "")
		require.Equal(t, http.StatusOK, resp.StatusCode, "the county list never fails at random")
		resp, _ = send(t, s, http.MethodGet, patientURL, "", "ApiKey wrong:wrong")
		require.Equal(t, http.StatusUnauthorized, resp.StatusCode, "authentication comes first")
		require.Empty(t, s.FaultsInjected())
	})

	t.Run("Seeded", func(t *testing.T) {
		t.Parallel()
		statuses := func() []int {
			s, _ := startTest(t, commcaretest.Options{FaultRate: 0.5, FaultSeed: 42, TimeoutDelay: time.Millisecond})
			s.PutCase(midsomer, patientCase("p", "", ""))
			var out []int
			for range 30 {
				resp, _ := send(t, s, http.MethodGet, patientURL, "")
				out = append(out, resp.StatusCode)
			}
			injected := 0
			for _, n := range s.FaultsInjected() {
				injected += n
			}
			require.Equal(t, 30-count(out, http.StatusOK), injected)
			return out
		}
		first := statuses()
		require.Equal(t, first, statuses(), "the same seed fails the same requests")
		for _, status := range []int{http.StatusOK, http.StatusTooManyRequests, http.StatusInternalServerError,
			http.StatusGatewayTimeout} {
			require.Contains(t, first, status)
		}
	})

	t.Run("SetAtRuntime", func(t *testing.T) {
		t.Parallel()
		s, _ := startTest(t, commcaretest.Options{})
		s.PutCase(midsomer, patientCase("p", "", ""))
		resp, _ := send(t, s, http.MethodGet, patientURL, "")
		require.Equal(t, http.StatusOK, resp.StatusCode)
		s.SetFaultRate(1, 7)
		s.SetFaultKinds(commcaretest.FaultServerError)
		resp, _ = send(t, s, http.MethodGet, patientURL, "")
		require.Equal(t, http.StatusInternalServerError, resp.StatusCode)
		s.SetFaultRate(0, 7)
		resp, _ = send(t, s, http.MethodGet, patientURL, "")
		require.Equal(t, http.StatusOK, resp.StatusCode)

		require.Panics(t, func() { s.SetFaultRate(1.5, 0) })
		require.Panics(t, func() { s.SetFaultRate(-0.1, 0) })
		require.Panics(t, func() { s.SetFaultKinds(commcaretest.FaultExplicit) })
		require.Panics(t, func() { commcaretest.NewServer(commcaretest.Options{FaultRate: 2}) })
	})
}

func TestExplicitFaultHeader(t *testing.T) {
	t.Parallel()
	s, _ := startTest(t, commcaretest.Options{})
	s.PutCase(midsomer, patientCase("p", "", ""))
	s.Fail(http.MethodPost, "/a/"+midsomer+"/receiver/", commcaretest.Fault{
		Status: http.StatusTooManyRequests, Header: http.Header{"Retry-After": {"7"}}, Times: 1,
	})
	resp, _ := submit(t, s, midsomer, specForm("lab", "i"))
	require.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
	require.Equal(t, "7", resp.Header.Get("Retry-After"))
	require.Empty(t, s.Cases(yggdrasil))
	require.Equal(t, map[commcaretest.FaultKind]int{commcaretest.FaultExplicit: 1}, s.FaultsInjected())
	mustSubmit(t, s, midsomer, specForm("lab", "i"))
}

func TestServerLatency(t *testing.T) {
	t.Parallel()
	const latency = 50 * time.Millisecond
	s, _ := startTest(t, commcaretest.Options{Latency: latency})
	elapsed := func(target string) time.Duration {
		start := time.Now()
		send(t, s, http.MethodGet, target, "")
		return time.Since(start)
	}
	require.GreaterOrEqual(t, elapsed(patientURL), latency)
	require.GreaterOrEqual(t, elapsed("/accounts/login/"), latency, "every answer")

	s.SetLatency(2 * latency)
	require.GreaterOrEqual(t, elapsed(patientURL), 2*latency)
}

func TestServerLoginPage(t *testing.T) {
	t.Parallel()
	s, _ := startTest(t, commcaretest.Options{})
	resp, body := send(t, s, http.MethodGet, "/accounts/login/", "", "")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.True(t, strings.Contains(body, "CommCare HQ"), body)
}

func count(statuses []int, status int) int {
	n := 0
	for _, s := range statuses {
		if s == status {
			n++
		}
	}
	return n
}
