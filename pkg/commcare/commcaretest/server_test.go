package commcaretest_test

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/viaduct-nys/viaduct/pkg/commcare"
	"github.com/viaduct-nys/viaduct/pkg/commcare/commcaretest"
	"github.com/viaduct-nys/viaduct/pkg/countylist"
)

const countyListURL = "/a/ny-statewide-cdcms/api/v0.5/fixture/?fixture_type=county_list"

// call sends a request to the server with the default credentials unless auth says otherwise, and returns the status
// and body.
func call(t *testing.T, s *commcaretest.Server, method, target, auth, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), method, s.URL()+target, strings.NewReader(body))
	require.NoError(t, err)
	if auth == "" {
		auth = "ApiKey " + commcaretest.DefaultCredentials
	}
	req.Header.Set("Authorization", auth)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(data)
}

func TestServer(t *testing.T) {
	t.Parallel()

	t.Run("RequiresAPIKey", func(t *testing.T) {
		t.Parallel()
		s := commcaretest.StartTest(t, commcaretest.Options{})
		for _, auth := range []string{
			"ApiKey someone@example.org:other-key",
			"Basic " + commcaretest.DefaultCredentials,
			"ApiKey",
		} {
			status, body := call(t, s, http.MethodGet, countyListURL, auth, "")
			require.Equal(t, http.StatusUnauthorized, status, auth)
			var payload map[string]string
			require.NoError(t, json.Unmarshal([]byte(body), &payload))
			require.NotEmpty(t, payload["error"])
			require.NotContains(t, body, "test-api-key")
		}
		status, _ := call(t, s, http.MethodGet, countyListURL, "", "")
		require.Equal(t, http.StatusOK, status)
	})

	t.Run("CustomCredentialsAndRootDomain", func(t *testing.T) {
		t.Parallel()
		s := commcaretest.StartTest(t, commcaretest.Options{Credentials: "u@example.org:k", RootDomain: "ny-test-cdcms"})
		require.Equal(t, "u@example.org:k", s.Credentials())
		require.Equal(t, "ny-test-cdcms", s.RootDomain())
		require.Equal(t, commcare.ClientConfig{BaseURL: s.URL(), Credentials: "u@example.org:k", RootDomain: "ny-test-cdcms"},
			s.ClientConfig())
		status, _ := call(t, s, http.MethodGet, "/a/ny-test-cdcms/api/v0.5/fixture/?fixture_type=county_list",
			"ApiKey u@example.org:k", "")
		require.Equal(t, http.StatusOK, status)
	})

	t.Run("CountyListShape", func(t *testing.T) {
		t.Parallel()
		s := commcaretest.StartTest(t, commcaretest.Options{Counties: commcaretest.TestCounties()})
		status, body := call(t, s, http.MethodGet, countyListURL, "", "")
		require.Equal(t, http.StatusOK, status)
		var response struct {
			Meta    map[string]any   `json:"meta"`
			Objects []map[string]any `json:"objects"`
		}
		require.NoError(t, json.Unmarshal([]byte(body), &response))
		require.Equal(t, map[string]any{"limit": 1000.0, "next": nil, "offset": 0.0, "previous": nil, "total_count": 4.0},
			response.Meta)
		require.Len(t, response.Objects, 4)
		midsomer := response.Objects[0]
		require.Equal(t, "county_list", midsomer["fixture_type"])
		require.Equal(t, "", midsomer["resource_uri"])
		require.Regexp(t, "^[0-9a-f]{32}$", midsomer["id"])
		fields := midsomer["fields"].(map[string]any)
		require.Regexp(t, "^[0-9a-f]{32}$", fields["traveler_location_id"])
		delete(fields, "traveler_location_id")
		require.Equal(t, map[string]any{
			"analysis_date": "", "county_display": "Midsomer", "county_name": "midsomer", "county_sort": "midsomer",
			"domain": "uk-midsomer-cdcms", "fips": "1111", "gaz": "ms-gaz", "is_state_domain": "",
			"location_id": "a1a1a1a1a1", "participating": "yes",
		}, fields)
		wilkes := response.Objects[2]["fields"].(map[string]any)
		require.Equal(t, "no", wilkes["participating"])
		require.Equal(t, "", wilkes["traveler_location_id"])
		statewide := response.Objects[3]["fields"].(map[string]any)
		require.Equal(t, "yes", statewide["is_state_domain"])
	})

	t.Run("NotFound", func(t *testing.T) {
		t.Parallel()
		s := commcaretest.StartTest(t, commcaretest.Options{})
		for _, target := range []string{
			"/",
			"/a/ny-statewide-cdcms/api/v0.5/fixture?fixture_type=county_list",
			"/a/ny-other-cdcms/api/v0.5/fixture/?fixture_type=county_list",
			"/a/ny-statewide-cdcms/api/v0.5/fixture/?fixture_type=other",
			"/a/ny-statewide-cdcms/api/v0.5/fixture/",
			"/a/ny%2Fstatewide-cdcms/api/v0.5/fixture/?fixture_type=county_list",
			"/a//api/v0.5/fixture/?fixture_type=county_list",
		} {
			status, body := call(t, s, http.MethodGet, target, "", "")
			require.Equal(t, http.StatusNotFound, status, target)
			require.Contains(t, body, `"error"`, target)
		}
		status, _ := call(t, s, http.MethodPost, countyListURL, "", "")
		require.Equal(t, http.StatusNotFound, status)
	})

	t.Run("RecordsRequests", func(t *testing.T) {
		t.Parallel()
		s := commcaretest.StartTest(t, commcaretest.Options{})
		call(t, s, http.MethodPost, "/a/some%20domain/receiver/?x=1&y=a%20b", "ApiKey nope:nope", "<data/>")
		call(t, s, http.MethodGet, countyListURL, "", "")
		requests := s.Requests()
		require.Len(t, requests, 2)
		require.Equal(t, http.MethodPost, requests[0].Method)
		require.Equal(t, "/a/some%20domain/receiver/", requests[0].Path)
		require.Equal(t, "x=1&y=a%20b", requests[0].RawQuery)
		require.Equal(t, "a b", requests[0].Query().Get("y"))
		require.Equal(t, "<data/>", string(requests[0].Body))
		require.Equal(t, "ApiKey nope:nope", requests[0].Header.Get("Authorization"))
		require.Equal(t, "/a/ny-statewide-cdcms/api/v0.5/fixture/", requests[1].Path)
	})

	t.Run("Faults", func(t *testing.T) {
		t.Parallel()
		s := commcaretest.StartTest(t, commcaretest.Options{})
		path := "/a/ny-statewide-cdcms/api/v0.5/fixture/"
		s.Fail(http.MethodPost, path, commcaretest.Fault{Status: http.StatusTeapot})                   // other method
		s.Fail("", "/a/ny-statewide-cdcms/", commcaretest.Fault{Status: http.StatusTeapot})            // other path
		s.Fail(http.MethodGet, path, commcaretest.Fault{Status: http.StatusTooManyRequests, Times: 2}) // first match
		s.Fail("", path, commcaretest.Fault{Status: http.StatusInternalServerError, Body: `{"detail": "boom"}`})

		var statuses []int
		for range 4 {
			status, _ := call(t, s, http.MethodGet, countyListURL, "", "")
			statuses = append(statuses, status)
		}
		require.Equal(t, []int{429, 429, 500, 500}, statuses, "the one-shot fault runs out, the sticky one stays")
		status, body := call(t, s, http.MethodGet, countyListURL, "ApiKey wrong:wrong", "")
		require.Equal(t, http.StatusInternalServerError, status, "faults apply before authentication")
		require.Equal(t, `{"detail": "boom"}`, body)

		s.ClearFaults()
		status, _ = call(t, s, http.MethodGet, countyListURL, "", "")
		require.Equal(t, http.StatusOK, status)
	})

	t.Run("DelayOnly", func(t *testing.T) {
		t.Parallel()
		s := commcaretest.StartTest(t, commcaretest.Options{})
		s.Fail("", "/a/ny-statewide-cdcms/api/v0.5/fixture/", commcaretest.Fault{Delay: time.Millisecond, Times: 1})
		status, _ := call(t, s, http.MethodGet, countyListURL, "", "")
		require.Equal(t, http.StatusOK, status, "a fault without a status only delays")
	})

	t.Run("SetCounties", func(t *testing.T) {
		t.Parallel()
		s := commcaretest.StartTest(t, commcaretest.Options{})
		s.SetCounties(commcaretest.TestCounties()[:1])
		_, body := call(t, s, http.MethodGet, countyListURL, "", "")
		list, err := countylist.ParseList(strings.NewReader(body))
		require.NoError(t, err)
		require.Equal(t, 3, list.Len())
	})

	t.Run("ServeStopsWithPendingDelay", func(t *testing.T) {
		t.Parallel()
		s := commcaretest.NewServer(commcaretest.Options{})
		require.Empty(t, s.URL())
		s.Fail("", "/a/ny-statewide-cdcms/api/v0.5/fixture/", commcaretest.Fault{Delay: time.Hour})
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		accepted := &signallingListener{Listener: ln, accepted: make(chan struct{}, 1)}
		ctx, cancel := context.WithCancel(context.Background())
		served := make(chan error, 1)
		go func() { served <- s.Serve(ctx, accepted) }()

		go func() {
			resp, err := http.Get("http://" + ln.Addr().String() + countyListURL)
			if err == nil {
				resp.Body.Close()
			}
		}()
		<-accepted.accepted
		cancel()
		require.NoError(t, <-served, "a request stalled by a fault does not hold up stopping")
		require.Equal(t, "http://"+ln.Addr().String(), s.URL())
	})
}

// signallingListener tells when it has accepted a connection.
type signallingListener struct {
	net.Listener
	accepted chan struct{}
}

func (l *signallingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		select {
		case l.accepted <- struct{}{}:
		default:
		}
	}
	return c, err
}

func TestNewYorkCounties(t *testing.T) {
	t.Parallel()
	counties := commcaretest.NewYorkCounties()
	require.Len(t, counties, 65)

	var fips []string
	for i := 1; i <= 127; i += 2 {
		fips = append(fips, strconv.Itoa(i))
	}
	got := make([]string, len(counties))
	locations := make(map[string]bool)
	for i, c := range counties {
		got[i] = c.FIPS
		if c.LocationID != "" {
			require.False(t, locations[c.LocationID], "location ids are unique")
			locations[c.LocationID] = true
		}
	}
	require.Equal(t, append(fips, "900"), got)

	byFIPS := func(f string) countylist.County {
		return counties[slices.IndexFunc(counties, func(c countylist.County) bool { return c.FIPS == f })]
	}
	require.Equal(t, "Albany", byFIPS("1").Display)
	require.Equal(t, "ny-albany-cdcms", byFIPS("1").Domain)
	require.Equal(t, "Broome", byFIPS("7").Display)
	require.Equal(t, "ny-st-lawrence-cdcms", byFIPS("89").Domain)
	require.Empty(t, byFIPS("61").Domain, "Manhattan is not participating")
	require.Equal(t, "Yates", byFIPS("123").Display)
	require.Equal(t, "ny-yates-cdcms", byFIPS("123").Domain)
	require.Equal(t, "Out of State/Country", byFIPS("125").Display)
	require.Equal(t, "Unknown", byFIPS("127").Display)
	statewide := byFIPS("900")
	require.True(t, statewide.Statewide)
	require.Equal(t, "ny-statewide-cdcms", statewide.Domain)

	list, err := countylist.NewList(counties)
	require.NoError(t, err)
	require.Len(t, list.Participating(), 58)
}

func TestTestCounties(t *testing.T) {
	t.Parallel()
	list, err := countylist.NewList(commcaretest.TestCounties())
	require.NoError(t, err)
	var domains []string
	for _, c := range list.Participating() {
		domains = append(domains, c.Domain)
	}
	require.Equal(t, []string{"uk-midsomer-cdcms", "sw-yggdrasil-cdcms", "uk-statewide-cdcms"}, domains)
	wilkes, ok := list.ByFIPS("5678")
	require.True(t, ok)
	require.False(t, wilkes.Participating)
	require.Equal(t, "aq-wilkes-cdcms", wilkes.Domain)
}
