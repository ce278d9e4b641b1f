package commcare_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/viaduct-nys/viaduct/pkg/commcare"
	"github.com/viaduct-nys/viaduct/pkg/commcare/commcaretest"
)

// The client is the county source the daemon uses in production.
var _ commcare.CountySource = (*commcare.Client)(nil)

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
		client, err := commcare.NewClient(server.ClientConfig())
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
		require.True(t, strings.HasPrefix(err.Error(),
			"commcare: GET "+httpErr.URL+`: 401 Unauthorized: "{\"error\":`), err.Error())
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
			BaseURL: "http://" + addr, Credentials: commcaretest.DefaultCredentials, RootDomain: "d",
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
	require.Equal(t, `commcare: POST https://hq.example/a/d/receiver/: 202 Accepted: "queued"`, err.Error())
	require.False(t, errors.Is(err, commcare.ErrRateLimited))
	err = &commcare.HTTPError{Method: "GET", URL: "u", StatusCode: 599}
	require.Equal(t, "commcare: GET u: 599", err.Error())
}
