package commcare_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/viaduct-nys/viaduct/pkg/commcare"
	"github.com/viaduct-nys/viaduct/pkg/commcare/commcaretest"
	"github.com/viaduct-nys/viaduct/pkg/countylist"
)

// The client is the county source the daemon uses in production.
var _ countylist.Source = (*commcare.Client)(nil)

const countyListPath = "/a/ny-statewide-cdcms/api/v0.5/fixture/"

func TestNewClient(t *testing.T) {
	t.Parallel()

	const secret = "someone@example.org:s3cr3t-key"
	tests := []struct {
		name    string
		config  commcare.ClientConfig
		wantErr string
	}{
		{"Minimal", commcare.ClientConfig{BaseURL: "https://www.commcarehq.org", Credentials: secret}, ""},
		{"PathPrefix", commcare.ClientConfig{BaseURL: "http://127.0.0.1:8080/hq/", Credentials: secret}, ""},
		{"Nothing", commcare.ClientConfig{}, "commcare: the base URL is required\n" +
			"commcare: the API key credentials are required"},
		{"Relative", commcare.ClientConfig{BaseURL: "/a/b", Credentials: secret},
			`commcare: the base URL "/a/b" is not an absolute http(s) URL`},
		{"NotHTTP", commcare.ClientConfig{BaseURL: "ftp://commcare.example", Credentials: secret},
			`commcare: the base URL "ftp://commcare.example" is not an absolute http(s) URL`},
		{"Unparseable", commcare.ClientConfig{BaseURL: "http://[::1", Credentials: secret},
			"commcare: the base URL is not a URL"},
		{"Query", commcare.ClientConfig{BaseURL: "https://hq.example/?x=1", Credentials: secret},
			`commcare: the base URL "https://hq.example/?x=1" must not have a query or fragment`},
		{"UserInfo", commcare.ClientConfig{BaseURL: "https://" + secret + "@hq.example", Credentials: secret},
			"commcare: the base URL must not carry user info; put it in Credentials"},
		{"NoColon", commcare.ClientConfig{BaseURL: "https://hq.example", Credentials: "s3cr3t-key"},
			"commcare: the API key credentials must have the form <username>:<api key>"},
		{"NoKey", commcare.ClientConfig{BaseURL: "https://hq.example", Credentials: "someone@example.org:"},
			"commcare: the API key credentials must have the form <username>:<api key>"},
		{"ControlCharacters", commcare.ClientConfig{BaseURL: "https://hq.example", Credentials: secret + "\r\nX: y"},
			"commcare: the API key credentials contain control characters"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			client, err := commcare.NewClient(tt.config)
			if tt.wantErr == "" {
				require.NoError(t, err)
				require.NotNil(t, client)
				return
			}
			require.EqualError(t, err, tt.wantErr)
			require.NotContains(t, err.Error(), "s3cr3t")
		})
	}

	t.Run("FormatHidesCredentials", func(t *testing.T) {
		t.Parallel()
		client, err := commcare.NewClient(commcare.ClientConfig{BaseURL: "https://hq.example/", Credentials: secret})
		require.NoError(t, err)
		for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
			got := fmt.Sprintf(verb, client)
			require.Equal(t, "commcare.Client{https://hq.example}", got, verb)
		}
	})
}

func TestClientCountyList(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	type testBundle struct {
		client *commcare.Client
		server *commcaretest.Server
	}
	setup := func(t *testing.T, opts commcaretest.Options) *testBundle {
		t.Helper()
		server := commcaretest.StartTest(t, opts)
		config := server.ClientConfig()
		// The faults below would otherwise be retried for seconds; TestClientRetries covers retrying.
		config.GetRetryFor = -1
		client, err := commcare.NewClient(config)
		require.NoError(t, err)
		return &testBundle{client: client, server: server}
	}

	t.Run("FetchesAndSendsHeaders", func(t *testing.T) {
		t.Parallel()
		b := setup(t, commcaretest.Options{Counties: commcaretest.TestCounties()})
		list, err := b.client.CountyList(ctx)
		require.NoError(t, err)
		require.Equal(t, []string{"1111", "9999", "5678", "1234", "905", "907"}, fipsOf(list.All()))

		requests := b.server.Requests()
		require.Len(t, requests, 1)
		r := requests[0]
		require.Equal(t, http.MethodGet, r.Method)
		require.Equal(t, countyListPath, r.Path)
		require.Equal(t, "fixture_type=county_list", r.RawQuery)
		require.Equal(t, "ApiKey "+commcaretest.DefaultCredentials, r.Header.Get("Authorization"))
		require.Equal(t, commcare.DefaultUserAgent, r.Header.Get("User-Agent"))
		require.Empty(t, r.Body)
	})

	t.Run("FetchCountiesIsCountyList", func(t *testing.T) {
		t.Parallel()
		b := setup(t, commcaretest.Options{})
		list, err := b.client.FetchCounties(ctx)
		require.NoError(t, err)
		require.Equal(t, 67, list.Len())
	})

	t.Run("CustomUserAgentAndHTTPClient", func(t *testing.T) {
		t.Parallel()
		b := setup(t, commcaretest.Options{})
		config := b.server.ClientConfig()
		config.GetRetryFor = -1
		config.UserAgent = "viaduct-test/1"
		config.HTTPClient = &http.Client{Timeout: 5 * time.Second}
		client, err := commcare.NewClient(config)
		require.NoError(t, err)
		_, err = client.CountyList(ctx)
		require.NoError(t, err)
		require.Equal(t, "viaduct-test/1", b.server.Requests()[0].Header.Get("User-Agent"))
	})

	t.Run("EscapesTheRootDomain", func(t *testing.T) {
		t.Parallel()
		b := setup(t, commcaretest.Options{RootDomain: "ny state/wide?x#y"})
		list, err := b.client.CountyList(ctx)
		require.NoError(t, err)
		require.Equal(t, 67, list.Len())
		r := b.server.Requests()[0]
		require.Equal(t, "/a/ny%20state%2Fwide%3Fx%23y/api/v0.5/fixture/", r.Path)
		require.Equal(t, "fixture_type=county_list", r.RawQuery)
	})

	t.Run("BasePathPrefix", func(t *testing.T) {
		t.Parallel()
		server := commcaretest.NewServer(commcaretest.Options{})
		mux := http.NewServeMux()
		mux.Handle("/hq/", http.StripPrefix("/hq", server.Handler()))
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		httpServer := &http.Server{Handler: mux, ReadHeaderTimeout: time.Second}
		go func() { _ = httpServer.Serve(ln) }()
		t.Cleanup(func() { require.NoError(t, httpServer.Close()) })

		client, err := commcare.NewClient(commcare.ClientConfig{
			BaseURL:     "http://" + ln.Addr().String() + "/hq/",
			Credentials: server.Credentials(),
			RootDomain:  server.RootDomain(),
		})
		require.NoError(t, err)
		_, err = client.CountyList(ctx)
		require.NoError(t, err)
		require.Equal(t, countyListPath, server.Requests()[0].Path)
	})

	t.Run("WrongCredentials", func(t *testing.T) {
		t.Parallel()
		b := setup(t, commcaretest.Options{})
		config := b.server.ClientConfig()
		config.GetRetryFor = -1
		config.Credentials = "intruder@example.org:wr0ng-key"
		client, err := commcare.NewClient(config)
		require.NoError(t, err)
		_, err = client.CountyList(ctx)
		var httpErr *commcare.HTTPError
		require.ErrorAs(t, err, &httpErr)
		require.Equal(t, http.StatusUnauthorized, httpErr.StatusCode)
		require.Equal(t, http.MethodGet, httpErr.Method)
		require.Equal(t, b.server.URL()+countyListPath+"?fixture_type=county_list", httpErr.URL)
		require.Contains(t, httpErr.Body, `"error"`)
		require.False(t, httpErr.RateLimited())
		require.NotErrorIs(t, err, commcare.ErrRateLimited)
		require.Equal(t, "commcare: GET "+httpErr.URL+": 401 Unauthorized", err.Error())
		require.NotContains(t, err.Error(), "wr0ng-key")
	})

	t.Run("RateLimited", func(t *testing.T) {
		t.Parallel()
		b := setup(t, commcaretest.Options{})
		b.server.Fail(http.MethodGet, countyListPath, commcaretest.Fault{Status: http.StatusTooManyRequests, Times: 1})
		_, err := b.client.CountyList(ctx)
		require.ErrorIs(t, err, commcare.ErrRateLimited)
		var httpErr *commcare.HTTPError
		require.ErrorAs(t, err, &httpErr)
		require.True(t, httpErr.RateLimited())
		require.Equal(t, "commcare: GET "+httpErr.URL+": 429 Too Many Requests", err.Error())

		_, err = b.client.CountyList(ctx)
		require.NoError(t, err, "the fault applied once")
	})

	t.Run("RetriesServerErrors", func(t *testing.T) {
		t.Parallel()
		server := commcaretest.StartTest(t, commcaretest.Options{})
		server.Fail(http.MethodGet, countyListPath, commcaretest.Fault{Status: http.StatusBadGateway, Times: 2})
		client, err := commcare.NewClient(server.ClientConfig())
		require.NoError(t, err)
		list, err := client.CountyList(ctx)
		require.NoError(t, err)
		require.Equal(t, 67, list.Len())
		require.Len(t, server.Requests(), 3)
	})

	t.Run("StickyFaultUntilCleared", func(t *testing.T) {
		t.Parallel()
		b := setup(t, commcaretest.Options{})
		b.server.Fail("", countyListPath, commcaretest.Fault{Status: http.StatusInternalServerError, Body: "500 Internal Server Error"})
		for range 3 {
			_, err := b.client.CountyList(ctx)
			var httpErr *commcare.HTTPError
			require.ErrorAs(t, err, &httpErr)
			require.Equal(t, http.StatusInternalServerError, httpErr.StatusCode)
			require.Equal(t, "500 Internal Server Error", httpErr.Body)
		}
		b.server.ClearFaults()
		_, err := b.client.CountyList(ctx)
		require.NoError(t, err)
	})

	t.Run("ErrorBodyIsCutAndRedacted", func(t *testing.T) {
		t.Parallel()
		b := setup(t, commcaretest.Options{})
		// A server that echoes the request back must not leak the key into logs through the error.
		echo := "you sent ApiKey " + commcaretest.DefaultCredentials + " and the key test-api-key " + strings.Repeat("x", 1000)
		b.server.Fail(http.MethodGet, countyListPath, commcaretest.Fault{Status: http.StatusBadGateway, Body: echo})
		_, err := b.client.CountyList(ctx)
		var httpErr *commcare.HTTPError
		require.ErrorAs(t, err, &httpErr)
		require.Len(t, httpErr.Body, 512)
		require.True(t, strings.HasPrefix(httpErr.Body, "you sent ApiKey [REDACTED] and the key [REDACTED] xxx"), httpErr.Body)
		require.NotContains(t, err.Error(), "test-api-key")
	})

	t.Run("InvalidListIsAnError", func(t *testing.T) {
		t.Parallel()
		b := setup(t, commcaretest.Options{})
		b.server.Fail(http.MethodGet, countyListPath, commcaretest.Fault{Status: http.StatusOK, Body: `{"objects": []}`})
		_, err := b.client.CountyList(ctx)
		require.EqualError(t, err, "commcare: the county list from "+b.server.URL()+countyListPath+
			"?fixture_type=county_list: the county list has no entries")
	})

	t.Run("SlowServerTimesOut", func(t *testing.T) {
		t.Parallel()
		b := setup(t, commcaretest.Options{})
		b.server.Fail(http.MethodGet, countyListPath, commcaretest.Fault{Delay: time.Hour})
		timeoutCtx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		_, err := b.client.CountyList(timeoutCtx)
		require.ErrorIs(t, err, context.DeadlineExceeded)
		require.True(t, strings.HasPrefix(err.Error(), `commcare: Get "`+b.server.URL()+countyListPath), err.Error())
	})

	t.Run("Unreachable", func(t *testing.T) {
		t.Parallel()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		addr := ln.Addr().String()
		require.NoError(t, ln.Close())
		client, err := commcare.NewClient(commcare.ClientConfig{
			BaseURL: "http://" + addr, Credentials: commcaretest.DefaultCredentials, RootDomain: "d", GetRetryFor: -1,
		})
		require.NoError(t, err)
		_, err = client.CountyList(ctx)
		var opErr *net.OpError
		require.ErrorAs(t, err, &opErr)
		require.NotContains(t, err.Error(), "test-api-key")
	})

	t.Run("NoRootDomain", func(t *testing.T) {
		t.Parallel()
		client, err := commcare.NewClient(commcare.ClientConfig{
			BaseURL: "http://127.0.0.1:1", Credentials: commcaretest.DefaultCredentials,
		})
		require.NoError(t, err)
		_, err = client.CountyList(ctx)
		require.EqualError(t, err, "commcare: fetching the county list: no root domain configured")
	})
}

func TestHTTPError(t *testing.T) {
	t.Parallel()
	err := error(&commcare.HTTPError{Method: "POST", URL: "https://hq.example/a/d/receiver/", StatusCode: 202, Body: " queued \n"})
	require.Equal(t, `commcare: POST https://hq.example/a/d/receiver/: 202 Accepted`, err.Error(),
		"bodies of answers other than server errors may quote patient data: they stay out of the message")
	err = &commcare.HTTPError{Method: "POST", URL: "u", StatusCode: 502, Body: "502 Bad Gateway"}
	require.Equal(t, `commcare: POST u: 502 Bad Gateway: "502 Bad Gateway"`, err.Error())
	require.False(t, errors.Is(err, commcare.ErrRateLimited))
	err = &commcare.HTTPError{Method: "GET", URL: "u", StatusCode: 599}
	require.Equal(t, "commcare: GET u: 599", err.Error())
	err = &commcare.HTTPError{Method: "POST", URL: "u", StatusCode: 201, Body: "submit_error"}
	require.Equal(t, `commcare: POST u: 201 Created without submit_success`, err.Error())

	wrapped := fmt.Errorf("job: %w", &commcare.HTTPError{StatusCode: 404})
	require.ErrorIs(t, wrapped, commcare.ErrNotFound)
	require.NotErrorIs(t, wrapped, commcare.ErrRateLimited)
	wrapped = fmt.Errorf("job: %w", &commcare.HTTPError{StatusCode: 429, RetryAfter: time.Minute})
	require.ErrorIs(t, wrapped, commcare.ErrRateLimited)
	require.NotErrorIs(t, wrapped, commcare.ErrNotFound)
	require.Equal(t, time.Minute, commcare.RetryAfter(wrapped))
	require.Zero(t, commcare.RetryAfter(errors.New("other")))
	require.Zero(t, commcare.RetryAfter(nil))
	require.False(t, commcare.IsPermanent(errors.New("other")))
	require.False(t, commcare.IsPermanent(nil))
}

func TestHTTPErrorPermanent(t *testing.T) {
	t.Parallel()
	permanent := map[int]bool{
		201: true, 202: false, 200: false, 302: false,
		400: true, 401: false, 403: false, 404: true, 405: true, 408: false, 409: false, 410: true, 413: true,
		422: true, 425: false, 429: false,
		500: false, 502: false, 503: false, 504: false,
	}
	for status, want := range permanent {
		err := fmt.Errorf("wrapped: %w", &commcare.HTTPError{StatusCode: status})
		require.Equal(t, want, commcare.IsPermanent(err), "%d", status)
	}
}

const testCredentials = "viaduct@example.org:test-api-key"

// seenRequest is what a test server received.
type seenRequest struct {
	Method, Path, RawQuery string
	Header                 http.Header
	Body                   []byte
}

// hq is a test server that answers with a handler told the 1-based number of the request.
type hq struct {
	URL      string
	mu       sync.Mutex
	requests []seenRequest
}

func (h *hq) Requests() []seenRequest {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.requests)
}

// startHQ starts a server answering with handle and returns a client for it, configured by config (BaseURL and
// Credentials filled in).
func startHQ(t *testing.T, config commcare.ClientConfig, handle func(w http.ResponseWriter, r *http.Request, n int)) (*commcare.Client, *hq) {
	t.Helper()
	h := &hq{}
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		h.requests = append(h.requests, seenRequest{
			Method: r.Method, Path: r.URL.EscapedPath(), RawQuery: r.URL.RawQuery, Header: r.Header.Clone(), Body: body,
		})
		n := len(h.requests)
		h.mu.Unlock()
		handle(w, r, n)
	}))
	t.Cleanup(server.Close)
	h.URL = server.URL
	config.BaseURL = server.URL
	config.Credentials = testCredentials
	client, err := commcare.NewClient(config)
	require.NoError(t, err)
	return client, h
}

// zeros reads as endless spaces.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = ' '
	}
	return len(p), nil
}

// reply answers status with body.
func reply(w http.ResponseWriter, status int, body string) {
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

// hang waits until the client gives up: a client that never did would fail the test by its timeout.
func hang(r *http.Request) {
	<-r.Context().Done()
}

const caseJSON = `{
	"case_id": "c1", "id": "c1", "domain": "ny-test-cdcms", "closed": false, "date_closed": null,
	"date_modified": "2020-06-05T00:56:45.753000Z", "server_date_modified": "2020-06-05T00:56:46.123456Z",
	"user_id": "u1", "resource_uri": "", "xform_ids": ["f1", "f2"], "indices": {},
	"properties": {"case_type": "patient", "external_id": "9999#150000000", "dob": "2008-01-01", "age": 12},
	"child_cases": {"l1": {"case_id": "l1", "closed": false, "date_closed": null, "resource_uri": "",
		"xform_ids": ["f1"], "properties": {"case_type": "lab_result", "accession_number": "A1"},
		"indices": {"parent": {"case_id": "c1", "case_type": "patient", "relationship": "extension"}}}}
}`

// httpDateIn30s stands for a Retry-After date 30 seconds after the response.
const httpDateIn30s = "<http date in 30s>"

func TestClientGetCase(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("DecodesTheCase", func(t *testing.T) {
		t.Parallel()
		client, server := startHQ(t, commcare.ClientConfig{}, func(w http.ResponseWriter, _ *http.Request, _ int) {
			reply(w, http.StatusOK, caseJSON)
		})
		cs, err := client.GetCase(ctx, "ny-test-cdcms", "c1")
		require.NoError(t, err)
		require.Equal(t, "c1", cs.CaseID)
		require.Equal(t, "patient", cs.Type())
		require.Equal(t, "9999#150000000", cs.Property("external_id"))
		require.Equal(t, "12", cs.Property("age"))
		require.Equal(t, []string{"f1", "f2"}, cs.XFormIDs)
		require.Len(t, cs.ChildCases, 1)
		lab := cs.ChildCases["l1"]
		require.Equal(t, "lab_result", lab.Type())
		require.Equal(t, commcare.CaseIndex{CaseID: "c1", CaseType: "patient", Relationship: "extension"},
			lab.Indices["parent"])

		requests := server.Requests()
		require.Len(t, requests, 1)
		r := requests[0]
		require.Equal(t, http.MethodGet, r.Method)
		require.Equal(t, "/a/ny-test-cdcms/api/v0.5/case/c1/", r.Path)
		require.Equal(t, "child_cases__full=true&format=json", r.RawQuery)
		require.Equal(t, "ApiKey "+testCredentials, r.Header.Get("Authorization"))
		require.Equal(t, commcare.DefaultUserAgent, r.Header.Get("User-Agent"))
		require.Empty(t, r.Header.Get("Content-Type"))
	})

	t.Run("EscapesThePath", func(t *testing.T) {
		t.Parallel()
		client, server := startHQ(t, commcare.ClientConfig{}, func(w http.ResponseWriter, _ *http.Request, _ int) {
			reply(w, http.StatusOK, caseJSON)
		})
		_, err := client.GetCase(ctx, "ny/test#d?x y", "c/1#2?3 4&5")
		require.NoError(t, err)
		r := server.Requests()[0]
		require.Equal(t, "/a/ny%2Ftest%23d%3Fx%20y/api/v0.5/case/c%2F1%232%3F3%204&5/", r.Path)
		require.Equal(t, "child_cases__full=true&format=json", r.RawQuery)
	})

	t.Run("NotFound", func(t *testing.T) {
		t.Parallel()
		client, server := startHQ(t, commcare.ClientConfig{}, func(w http.ResponseWriter, _ *http.Request, _ int) {
			reply(w, http.StatusNotFound, `{"error": "not found"}`)
		})
		cs, err := client.GetCase(ctx, "d", "missing")
		require.Nil(t, cs)
		require.ErrorIs(t, err, commcare.ErrNotFound)
		require.NotErrorIs(t, err, commcare.ErrRateLimited)
		var httpErr *commcare.HTTPError
		require.ErrorAs(t, err, &httpErr)
		require.Equal(t, http.StatusNotFound, httpErr.StatusCode)
		require.Equal(t, server.URL+"/a/d/api/v0.5/case/missing/?child_cases__full=true&format=json", httpErr.URL)
		require.Len(t, server.Requests(), 1)
	})

	t.Run("RateLimited", func(t *testing.T) {
		t.Parallel()
		now := time.Now()
		tests := []struct {
			name, header string
			min, max     time.Duration
		}{
			{"Seconds", "7", 7 * time.Second, 7 * time.Second},
			{"Zero", "0", 0, 0},
			// httpDateIn30s is replaced by the date 30 s after the response is written: a date made when the test
			// starts can be seconds old by then on a busy machine.
			{"HTTPDate", httpDateIn30s, 28 * time.Second, 30 * time.Second},
			{"PastDate", now.Add(-time.Minute).UTC().Format(http.TimeFormat), 0, 0},
			{"Absent", "", 0, 0},
			{"Garbage", "soon", 0, 0},
			{"Negative", "-5", 0, 0},
			{"Fraction", "1.5", 0, 0},
			{"Huge", "99999999999999999999999", time.Hour, time.Hour},
			{"Days", "172800", time.Hour, time.Hour},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				client, server := startHQ(t, commcare.ClientConfig{}, func(w http.ResponseWriter, _ *http.Request, _ int) {
					header := tt.header
					if header == httpDateIn30s {
						header = time.Now().Add(30 * time.Second).UTC().Format(http.TimeFormat)
					}
					if header != "" {
						w.Header().Set("Retry-After", header)
					}
					reply(w, http.StatusTooManyRequests, "slow down")
				})
				_, err := client.GetCase(ctx, "d", "c")
				require.ErrorIs(t, err, commcare.ErrRateLimited)
				require.NotErrorIs(t, err, commcare.ErrNotFound)
				require.False(t, commcare.IsPermanent(err))
				got := commcare.RetryAfter(err)
				require.True(t, tt.min <= got && got <= tt.max, "%s not in [%s, %s]", got, tt.min, tt.max)
				require.Len(t, server.Requests(), 1, "a 429 is not retried")
			})
		}
	})

	t.Run("ServerErrorsAreRetried", func(t *testing.T) {
		t.Parallel()
		client, server := startHQ(t, commcare.ClientConfig{}, func(w http.ResponseWriter, _ *http.Request, n int) {
			switch n {
			case 1:
				reply(w, http.StatusInternalServerError, "500 Internal Server Error")
			case 2:
				reply(w, http.StatusRequestTimeout, "")
			case 3:
				w.Header().Set("Retry-After", "1")
				reply(w, http.StatusServiceUnavailable, "CommCareHQ is currently undergoing maintenance")
			default:
				reply(w, http.StatusOK, caseJSON)
			}
		})
		start := time.Now()
		cs, err := client.GetCase(ctx, "d", "c1")
		require.NoError(t, err)
		require.Equal(t, "c1", cs.CaseID)
		require.Len(t, server.Requests(), 4)
		// Waits of about 250 ms, 500 ms and 1 s, each give or take half.
		require.Greater(t, time.Since(start), 800*time.Millisecond)
	})

	t.Run("ClientErrorsAreNotRetried", func(t *testing.T) {
		t.Parallel()
		for _, status := range []int{http.StatusBadRequest, http.StatusUnauthorized, http.StatusForbidden} {
			client, server := startHQ(t, commcare.ClientConfig{}, func(w http.ResponseWriter, _ *http.Request, _ int) {
				reply(w, status, "no")
			})
			_, err := client.GetCase(ctx, "d", "c")
			var httpErr *commcare.HTTPError
			require.ErrorAs(t, err, &httpErr)
			require.Equal(t, status, httpErr.StatusCode)
			require.Equal(t, status == http.StatusBadRequest, commcare.IsPermanent(err), "%d", status)
			require.Len(t, server.Requests(), 1, "%d", status)
		}
	})

	t.Run("InvalidJSON", func(t *testing.T) {
		t.Parallel()
		for body, want := range map[string]string{
			`{"case_id": "c", `:                "decoding the case: unexpected end of JSON input",
			`<html>maintenance</html>`:         "decoding the case: invalid character '<' looking for beginning of value",
			`null`:                             "the response is not a case: it has no case_id",
			`{}`:                               "the response is not a case: it has no case_id",
			`[]`:                               "decoding the case: json: cannot unmarshal array into Go value of type commcare.Case",
			`{"case_id": "c", "xform_ids": 1}`: "decoding the case: json: cannot unmarshal number into Go struct field Case.xform_ids of type []string",
			`{"case_id": "c"} {}`:              "decoding the case: invalid character '{' after top-level value",
		} {
			client, server := startHQ(t, commcare.ClientConfig{}, func(w http.ResponseWriter, _ *http.Request, _ int) {
				reply(w, http.StatusOK, body)
			})
			cs, err := client.GetCase(ctx, "d", "c")
			require.Nil(t, cs)
			require.EqualError(t, err, "commcare: the case from "+server.URL+
				"/a/d/api/v0.5/case/c/?child_cases__full=true&format=json: "+want, body)
		}
	})

	t.Run("MissingArguments", func(t *testing.T) {
		t.Parallel()
		client, server := startHQ(t, commcare.ClientConfig{}, func(w http.ResponseWriter, _ *http.Request, _ int) {
			reply(w, http.StatusOK, caseJSON)
		})
		_, err := client.GetCase(ctx, "d", "")
		require.EqualError(t, err, "commcare: getting a case: no case id")
		_, err = client.GetCase(ctx, "", "c")
		require.EqualError(t, err, "commcare: getting a case: no domain")
		require.Empty(t, server.Requests())
	})
}

// roundTripFunc is an http.RoundTripper made of a function.
type roundTripFunc func(*http.Request) (*http.Response, error)

// RoundTrip implements http.RoundTripper.
func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestClientRetries(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	alwaysFail := func(w http.ResponseWriter, _ *http.Request, _ int) {
		reply(w, http.StatusBadGateway, "502 Bad Gateway")
	}

	t.Run("GiveUpAfterGetRetryFor", func(t *testing.T) {
		t.Parallel()
		client, server := startHQ(t, commcare.ClientConfig{GetRetryFor: 600 * time.Millisecond}, alwaysFail)
		_, err := client.GetCase(ctx, "d", "c")
		var httpErr *commcare.HTTPError
		require.ErrorAs(t, err, &httpErr)
		require.Equal(t, http.StatusBadGateway, httpErr.StatusCode)
		require.Equal(t, "502 Bad Gateway", httpErr.Body)
		// The waits are at least 125 ms, 250 ms and 500 ms: however slow the machine, no more than four tries fit.
		require.GreaterOrEqual(t, len(server.Requests()), 2)
		require.LessOrEqual(t, len(server.Requests()), 4)
	})

	t.Run("NegativeDisables", func(t *testing.T) {
		t.Parallel()
		client, server := startHQ(t, commcare.ClientConfig{GetRetryFor: -1}, alwaysFail)
		_, err := client.GetCase(ctx, "d", "c")
		require.Error(t, err)
		require.Len(t, server.Requests(), 1)
	})

	t.Run("ContextEndsTheRetries", func(t *testing.T) {
		t.Parallel()
		cancelCtx, cancel := context.WithCancel(ctx)
		defer cancel()
		// The caller gives up once the client holds the second answer whole: while it waits before its third try,
		// however slow the machine is.
		var answers atomic.Int32
		transport := roundTripFunc(func(r *http.Request) (*http.Response, error) {
			resp, err := http.DefaultTransport.RoundTrip(r)
			if err == nil && answers.Add(1) == 2 {
				body, readErr := io.ReadAll(resp.Body)
				resp.Body.Close()
				if readErr != nil {
					return nil, readErr
				}
				resp.Body = io.NopCloser(bytes.NewReader(body))
				cancel()
			}
			return resp, err
		})
		client, server := startHQ(t, commcare.ClientConfig{HTTPClient: &http.Client{Transport: transport}}, alwaysFail)
		_, err := client.GetCase(cancelCtx, "d", "c")
		require.ErrorIs(t, err, context.Canceled)
		var httpErr *commcare.HTTPError
		require.ErrorAs(t, err, &httpErr, "the last answer is kept")
		require.Equal(t, http.StatusBadGateway, httpErr.StatusCode)
		require.Len(t, server.Requests(), 2)
	})

	t.Run("ContextEndsAnAttempt", func(t *testing.T) {
		t.Parallel()
		client, server := startHQ(t, commcare.ClientConfig{}, func(w http.ResponseWriter, r *http.Request, _ int) {
			hang(r)
		})
		timeoutCtx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		_, err := client.GetCase(timeoutCtx, "d", "c")
		require.ErrorIs(t, err, context.DeadlineExceeded)
		require.NotContains(t, err.Error(), "the client's timeout", "the caller's deadline, not the client's")
		require.Len(t, server.Requests(), 1)
	})

	t.Run("TooLargeIsNotRetried", func(t *testing.T) {
		t.Parallel()
		client, server := startHQ(t, commcare.ClientConfig{}, func(w http.ResponseWriter, _ *http.Request, _ int) {
			w.WriteHeader(http.StatusOK)
			_, _ = io.CopyN(w, zeros{}, 64<<20+1)
		})
		_, err := client.GetCase(ctx, "d", "c")
		require.ErrorContains(t, err, "the response is larger than 67108864 bytes")
		require.Len(t, server.Requests(), 1)
	})

	t.Run("TransportErrorsAreRetried", func(t *testing.T) {
		t.Parallel()
		client, server := startHQ(t, commcare.ClientConfig{}, func(w http.ResponseWriter, _ *http.Request, n int) {
			if n == 1 {
				// Drop the connection without an answer.
				conn, _, err := w.(http.Hijacker).Hijack()
				if err == nil {
					_ = conn.Close()
				}
				return
			}
			reply(w, http.StatusOK, caseJSON)
		})
		_, err := client.GetCase(ctx, "d", "c1")
		require.NoError(t, err)
		require.Len(t, server.Requests(), 2)
	})

	t.Run("Unreachable", func(t *testing.T) {
		t.Parallel()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		addr := ln.Addr().String()
		require.NoError(t, ln.Close())
		client, err := commcare.NewClient(commcare.ClientConfig{
			BaseURL: "http://" + addr, Credentials: testCredentials, GetRetryFor: 300 * time.Millisecond,
		})
		require.NoError(t, err)
		_, err = client.GetCase(ctx, "d", "c")
		var opErr *net.OpError
		require.ErrorAs(t, err, &opErr)
		require.NotContains(t, err.Error(), "test-api-key")
	})
}

func TestClientTimeout(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	hanging := func(w http.ResponseWriter, r *http.Request, _ int) { hang(r) }

	t.Run("GET", func(t *testing.T) {
		t.Parallel()
		client, server := startHQ(t, commcare.ClientConfig{Timeout: 100 * time.Millisecond, GetRetryFor: -1}, hanging)
		_, err := client.GetCase(ctx, "d", "c")
		require.ErrorIs(t, err, context.DeadlineExceeded)
		require.True(t, strings.HasPrefix(err.Error(), `commcare: Get "`+server.URL+"/a/d/api/v0.5/case/c/"), err.Error())
		require.True(t, strings.HasSuffix(err.Error(), "(the client's timeout is 100ms)"), err.Error())
		require.Len(t, server.Requests(), 1)
	})

	t.Run("GETRetried", func(t *testing.T) {
		t.Parallel()
		client, server := startHQ(t, commcare.ClientConfig{
			Timeout: 100 * time.Millisecond, GetRetryFor: 5 * time.Second,
		}, func(w http.ResponseWriter, r *http.Request, n int) {
			if n == 1 {
				hang(r)
				return
			}
			reply(w, http.StatusOK, caseJSON)
		})
		_, err := client.GetCase(ctx, "d", "c1")
		require.NoError(t, err)
		require.Len(t, server.Requests(), 2)
	})

	t.Run("POST", func(t *testing.T) {
		t.Parallel()
		client, server := startHQ(t, commcare.ClientConfig{Timeout: 100 * time.Millisecond}, hanging)
		_, err := client.SubmitForm(ctx, "d", []byte("<data/>"))
		require.ErrorIs(t, err, context.DeadlineExceeded)
		require.False(t, commcare.IsPermanent(err))
		require.Len(t, server.Requests(), 1)
	})

	t.Run("SlowBody", func(t *testing.T) {
		t.Parallel()
		client, _ := startHQ(t, commcare.ClientConfig{Timeout: 100 * time.Millisecond, GetRetryFor: -1},
			func(w http.ResponseWriter, r *http.Request, _ int) {
				w.WriteHeader(http.StatusOK)
				_, _ = io.WriteString(w, `{"case_id": `)
				w.(http.Flusher).Flush()
				hang(r)
			})
		_, err := client.GetCase(ctx, "d", "c")
		require.ErrorIs(t, err, context.DeadlineExceeded)
		require.ErrorContains(t, err, "reading the response")
	})
}

func TestClientListCases(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("SendsTheQuery", func(t *testing.T) {
		t.Parallel()
		client, server := startHQ(t, commcare.ClientConfig{}, func(w http.ResponseWriter, _ *http.Request, _ int) {
			reply(w, http.StatusOK, `{"meta": {"limit": 100, "offset": 200, "next": "?offset=300", "total_count": 301},
				"objects": [`+caseJSON+`]}`)
		})
		q := commcare.CaseQuery{Type: "patient", ChildCases: true, Limit: 100, Offset: 200,
			ServerModifiedSince: time.Date(2020, 6, 1, 0, 0, 0, 0, time.UTC)}
		page, err := client.ListCases(ctx, "ny-test-cdcms", q)
		require.NoError(t, err)
		require.Equal(t, 200, page.Meta.Offset)
		require.Equal(t, 301, page.Meta.TotalCount)
		require.NotNil(t, page.Meta.Next)
		require.Len(t, page.Objects, 1)
		require.Equal(t, "c1", page.Objects[0].CaseID)

		r := server.Requests()[0]
		require.Equal(t, "/a/ny-test-cdcms/api/v0.5/case/", r.Path)
		require.Equal(t, q.Values().Encode(), r.RawQuery)
		require.Equal(t, "child_cases__full=true&limit=100&offset=200&server_date_modified_start=2020-06-01T00%3A00%3A00.000000&type=patient", r.RawQuery)
	})

	t.Run("Errors", func(t *testing.T) {
		t.Parallel()
		client, server := startHQ(t, commcare.ClientConfig{GetRetryFor: -1}, func(w http.ResponseWriter, _ *http.Request, n int) {
			switch n {
			case 1:
				reply(w, http.StatusOK, `{"objects": [`)
			case 2:
				reply(w, http.StatusOK, `null`)
			case 3:
				reply(w, http.StatusTooManyRequests, "")
			default:
				reply(w, http.StatusForbidden, "Your current subscription does not have access to this feature")
			}
		})
		_, err := client.ListCases(ctx, "d", commcare.CaseQuery{})
		require.EqualError(t, err, "commcare: the case list from "+server.URL+
			"/a/d/api/v0.5/case/: decoding the case list: unexpected end of JSON input")
		_, err = client.ListCases(ctx, "d", commcare.CaseQuery{})
		require.ErrorContains(t, err, "the response is not a case list")
		_, err = client.ListCases(ctx, "d", commcare.CaseQuery{})
		require.ErrorIs(t, err, commcare.ErrRateLimited)
		_, err = client.ListCases(ctx, "d", commcare.CaseQuery{})
		require.False(t, commcare.IsPermanent(err))
		require.ErrorContains(t, err, "403 Forbidden")
		_, err = client.ListCases(ctx, "", commcare.CaseQuery{})
		require.EqualError(t, err, "commcare: listing cases: no domain")
	})
}

func TestClientFindCasesByExternalID(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	page := func(next bool, ids ...string) string {
		var objects []string
		for _, id := range ids {
			objects = append(objects, fmt.Sprintf(`{"case_id": %q, "properties": {"case_type": "patient"}}`, id))
		}
		nextJSON := "null"
		if next {
			nextJSON = `"?more"`
		}
		return fmt.Sprintf(`{"meta": {"next": %s}, "objects": [%s]}`, nextJSON, strings.Join(objects, ","))
	}

	t.Run("FollowsThePages", func(t *testing.T) {
		t.Parallel()
		const externalID = "9999#150 000&x=1"
		client, server := startHQ(t, commcare.ClientConfig{}, func(w http.ResponseWriter, _ *http.Request, n int) {
			switch n {
			case 1:
				reply(w, http.StatusOK, page(true, "a", "b"))
			default:
				reply(w, http.StatusOK, page(false, "b", "c")) // b moved between the pages
			}
		})
		cases, err := client.FindCasesByExternalID(ctx, "d/x", externalID)
		require.NoError(t, err)
		var ids []string
		for _, c := range cases {
			ids = append(ids, c.CaseID)
		}
		require.Equal(t, []string{"a", "b", "c"}, ids)

		requests := server.Requests()
		require.Len(t, requests, 2)
		for i, r := range requests {
			require.Equal(t, "/a/d%2Fx/api/v0.5/case/", r.Path)
			q, err := url.ParseQuery(r.RawQuery)
			require.NoError(t, err)
			want := url.Values{"external_id": {externalID}, "type": {"patient"}, "child_cases__full": {"true"},
				"limit": {"100"}}
			if i == 1 {
				want.Set("offset", "2")
			}
			require.Equal(t, want, q)
		}
		require.Contains(t, requests[0].RawQuery, "external_id=9999%23150+000%26x%3D1")
	})

	t.Run("NoneFound", func(t *testing.T) {
		t.Parallel()
		client, _ := startHQ(t, commcare.ClientConfig{}, func(w http.ResponseWriter, _ *http.Request, _ int) {
			reply(w, http.StatusOK, page(false))
		})
		cases, err := client.FindCasesByExternalID(ctx, "d", "x")
		require.NoError(t, err)
		require.Empty(t, cases)
	})

	t.Run("EmptyPageEnds", func(t *testing.T) {
		t.Parallel()
		client, server := startHQ(t, commcare.ClientConfig{}, func(w http.ResponseWriter, _ *http.Request, n int) {
			if n == 1 {
				reply(w, http.StatusOK, page(true, "a"))
				return
			}
			reply(w, http.StatusOK, page(true))
		})
		cases, err := client.FindCasesByExternalID(ctx, "d", "x")
		require.NoError(t, err)
		require.Len(t, cases, 1)
		require.Len(t, server.Requests(), 2)
	})

	t.Run("EndlessServer", func(t *testing.T) {
		t.Parallel()
		client, server := startHQ(t, commcare.ClientConfig{}, func(w http.ResponseWriter, _ *http.Request, n int) {
			reply(w, http.StatusOK, page(true, fmt.Sprint(n)))
		})
		_, err := client.FindCasesByExternalID(ctx, "d", "x")
		require.EqualError(t, err, `commcare: finding cases with external id "x" in "d": still more after 100 pages`)
		require.Len(t, server.Requests(), 100)
	})

	t.Run("ErrorOnALaterPage", func(t *testing.T) {
		t.Parallel()
		client, _ := startHQ(t, commcare.ClientConfig{}, func(w http.ResponseWriter, _ *http.Request, n int) {
			if n == 1 {
				reply(w, http.StatusOK, page(true, "a"))
				return
			}
			w.Header().Set("Retry-After", "3")
			reply(w, http.StatusTooManyRequests, "")
		})
		cases, err := client.FindCasesByExternalID(ctx, "d", "x")
		require.Nil(t, cases)
		require.ErrorIs(t, err, commcare.ErrRateLimited)
		require.Equal(t, 3*time.Second, commcare.RetryAfter(err))
	})

	t.Run("NoExternalID", func(t *testing.T) {
		t.Parallel()
		client, server := startHQ(t, commcare.ClientConfig{}, func(w http.ResponseWriter, _ *http.Request, _ int) {
			reply(w, http.StatusOK, page(false))
		})
		_, err := client.FindCasesByExternalID(ctx, "d", "")
		require.EqualError(t, err, "commcare: finding cases by external id: no external id")
		require.Empty(t, server.Requests())
	})
}

const (
	submitSuccess = `<OpenRosaResponse xmlns="http://openrosa.org/http/response">` +
		`<message nature="submit_success">   √   </message></OpenRosaResponse>`
	submitError = `<OpenRosaResponse xmlns="http://openrosa.org/http/response">` +
		`<message nature="submit_error">InvalidCaseIndex: Case 'x' references non-existent case 'y'</message></OpenRosaResponse>`
)

func TestClientSubmitForm(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	form, err := specForm().XML()
	require.NoError(t, err)

	t.Run("Success", func(t *testing.T) {
		t.Parallel()
		client, server := startHQ(t, commcare.ClientConfig{UserAgent: "viaduct-test/1"},
			func(w http.ResponseWriter, _ *http.Request, _ int) {
				reply(w, http.StatusCreated, submitSuccess)
			})
		result, err := client.SubmitForm(ctx, "ny test/d", form)
		require.NoError(t, err)
		require.Equal(t, &commcare.SubmitResult{StatusCode: http.StatusCreated, Body: submitSuccess}, result)

		requests := server.Requests()
		require.Len(t, requests, 1)
		r := requests[0]
		require.Equal(t, http.MethodPost, r.Method)
		require.Equal(t, "/a/ny%20test%2Fd/receiver/", r.Path)
		require.Empty(t, r.RawQuery)
		require.Equal(t, "text/xml", r.Header.Get("Content-Type"))
		require.Equal(t, "ApiKey "+testCredentials, r.Header.Get("Authorization"))
		require.Equal(t, "viaduct-test/1", r.Header.Get("User-Agent"))
		require.Equal(t, form, r.Body)
	})

	tests := []struct {
		name       string
		status     int
		body       string
		retryAfter string
		permanent  bool
		check      func(t *testing.T, err error)
	}{
		{name: "SubmitError", status: http.StatusCreated, body: submitError, permanent: true, check: func(t *testing.T, err error) {
			require.ErrorContains(t, err, "201 Created without submit_success")
			var httpErr *commcare.HTTPError
			require.ErrorAs(t, err, &httpErr)
			require.Contains(t, httpErr.Body, "InvalidCaseIndex")
			require.NotContains(t, err.Error(), "InvalidCaseIndex", "the body stays out of the message")
		}},
		{name: "Accepted", status: http.StatusAccepted, body: submitSuccess},
		{name: "OK", status: http.StatusOK, body: "submit_success"},
		{name: "RateLimited", status: http.StatusTooManyRequests, retryAfter: "12", check: func(t *testing.T, err error) {
			require.ErrorIs(t, err, commcare.ErrRateLimited)
			require.Equal(t, 12*time.Second, commcare.RetryAfter(err))
		}},
		{name: "ServerError", status: http.StatusInternalServerError, body: "500 Internal Server Error"},
		{name: "Unavailable", status: http.StatusServiceUnavailable, retryAfter: "5", check: func(t *testing.T, err error) {
			require.Equal(t, 5*time.Second, commcare.RetryAfter(err))
		}},
		{name: "NotFound", status: http.StatusNotFound, permanent: true, check: func(t *testing.T, err error) {
			require.ErrorIs(t, err, commcare.ErrNotFound)
		}},
		{name: "BadRequest", status: http.StatusBadRequest, body: "Invalid XML", permanent: true},
		{name: "Unauthorized", status: http.StatusUnauthorized},
		{name: "Forbidden", status: http.StatusForbidden},
		{name: "Redirect", status: http.StatusFound, check: func(t *testing.T, err error) {
			require.ErrorContains(t, err, "302 Found")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			client, server := startHQ(t, commcare.ClientConfig{}, func(w http.ResponseWriter, _ *http.Request, _ int) {
				if tt.retryAfter != "" {
					w.Header().Set("Retry-After", tt.retryAfter)
				}
				if tt.status == http.StatusFound {
					w.Header().Set("Location", "/accounts/login/")
				}
				reply(w, tt.status, tt.body)
			})
			result, err := client.SubmitForm(ctx, "d", form)
			require.Nil(t, result)
			var httpErr *commcare.HTTPError
			require.ErrorAs(t, err, &httpErr)
			require.Equal(t, tt.status, httpErr.StatusCode)
			require.Equal(t, http.MethodPost, httpErr.Method)
			require.Equal(t, server.URL+"/a/d/receiver/", httpErr.URL)
			require.Equal(t, tt.permanent, commcare.IsPermanent(err))
			require.Equal(t, tt.status == http.StatusTooManyRequests, errors.Is(err, commcare.ErrRateLimited))
			require.NotContains(t, err.Error(), "test-api-key")
			if tt.check != nil {
				tt.check(t, err)
			}
			require.Len(t, server.Requests(), 1, "a POST is never retried")
		})
	}

	t.Run("TransportError", func(t *testing.T) {
		t.Parallel()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		addr := ln.Addr().String()
		require.NoError(t, ln.Close())
		client, err := commcare.NewClient(commcare.ClientConfig{BaseURL: "http://" + addr, Credentials: testCredentials})
		require.NoError(t, err)
		_, err = client.SubmitForm(ctx, "d", form)
		var opErr *net.OpError
		require.ErrorAs(t, err, &opErr)
		require.True(t, strings.HasPrefix(err.Error(), `commcare: Post "http://`+addr+`/a/d/receiver/"`), err.Error())
		require.NotContains(t, err.Error(), "test-api-key")
		require.False(t, commcare.IsPermanent(err))
	})

	t.Run("MissingArguments", func(t *testing.T) {
		t.Parallel()
		client, server := startHQ(t, commcare.ClientConfig{}, func(w http.ResponseWriter, _ *http.Request, _ int) {
			reply(w, http.StatusCreated, submitSuccess)
		})
		_, err := client.SubmitForm(ctx, "", form)
		require.EqualError(t, err, "commcare: submitting a form: no domain")
		_, err = client.SubmitForm(ctx, "d", nil)
		require.EqualError(t, err, "commcare: submitting a form: the form is empty")
		require.Empty(t, server.Requests())
	})
}

func fipsOf(counties []countylist.County) []string {
	out := make([]string, len(counties))
	for i, c := range counties {
		out[i] = c.FIPS
	}
	return out
}
