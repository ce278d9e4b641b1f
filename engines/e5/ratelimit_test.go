package e5

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/viaduct-nys/viaduct/pkg/commcare/commcaretest"
)

// rateLimited is a 429 Too Many Requests with Retry-After retryAfter ("" for none), times times (0: until cleared).
func rateLimited(retryAfter string, times int) commcaretest.Fault {
	f := commcaretest.Fault{Status: http.StatusTooManyRequests, Body: `{"error": "Too Many Requests"}`, Times: times}
	if retryAfter != "" {
		f.Header = http.Header{"Retry-After": {retryAfter}}
	}
	return f
}

// listQueries returns the queries of domain's case list requests, 429s included, oldest first.
func (f *fixture) listQueries(domain string) []url.Values {
	var out []url.Values
	for _, r := range f.cc.Requests() {
		if r.Method == http.MethodGet && r.Path == "/a/"+domain+"/api/v0.5/case/" {
			out = append(out, r.Query())
		}
	}
	return out
}

// fixedClock makes the fake CommCare stamp every change at base, one microsecond after the one before, and starts
// the engine's rounds an hour later.
func fixedClock(base time.Time) (commcaretest.Options, time.Time) {
	return commcaretest.Options{Now: func() time.Time { return base }}, base.Add(time.Hour)
}

func TestRateLimitsAreWaitedOut(t *testing.T) {
	t.Parallel()
	opts, start := fixedClock(time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC))
	f := newFixture(t, opts)
	f.now = start
	for i := range 25 {
		f.cc.PutCase(midsomer, patient(fmt.Sprintf("case-%02d", i), fmt.Sprintf("First%d", i), "Last", "1990-01-01", nil))
	}
	path := "/a/" + midsomer + "/api/v0.5/case/"
	f.cc.Fail(http.MethodGet, path, rateLimited("7", 1))
	f.cc.BeforeCaseList(func(domain string, n int, _ url.Values) {
		if domain == midsomer && n == 1 {
			// The second page is refused twice: without a Retry-After, then asking for an hour.
			f.cc.Fail(http.MethodGet, path, rateLimited("", 1))
			f.cc.Fail(http.MethodGet, path, rateLimited("3600", 1))
		}
	})

	require.NoError(t, f.engine(t, nil).Round(context.Background()))
	require.Equal(t, []time.Duration{7 * time.Second, rateLimitWait, maxRateLimitWait}, f.waits(),
		"as CommCare asked; the default without a Retry-After; an hour capped")
	queries := f.listQueries(midsomer)
	require.Len(t, queries, 6, "the first page asked twice, the second thrice, then the third")
	require.Equal(t, queries[0], queries[1])
	require.Equal(t, queries[2], queries[3])
	require.Equal(t, queries[2], queries[4])
	require.Equal(t, 25, f.count(t, `SELECT count(*) FROM index_cases`), "every case was merged")

	s, err := Summarize(context.Background(), f.db.Pool)
	require.NoError(t, err)
	require.Empty(t, s.Failures, "a rate limit is not a failure")
	for _, m := range s.Domains {
		require.Empty(t, m.LastError, m.Domain)
		require.NotNil(t, m.HighWater, m.Domain)
		require.True(t, start.Equal(*m.HighWater), "%s: the round completed", m.Domain)
	}
	require.Equal(t, 3.0, value(t, f.metrics.rateLimits.WithLabelValues(midsomer)))
	require.Zero(t, value(t, f.metrics.rateLimits.WithLabelValues(yggdrasil)))
	require.Equal(t, 1.0, value(t, f.metrics.rounds.WithLabelValues("ok")))
	require.Zero(t, value(t, f.metrics.domains.WithLabelValues("failed")))
	require.Zero(t, value(t, f.metrics.domains.WithLabelValues("rate_limited")))
	require.Positive(t, value(t, f.metrics.lastComplete), "the round read every domain")
}

// TestRateLimitedPastTheBudget: when waiting out a domain's 429s would take longer than a round lasts, the domain's
// round ends without failing, keeping what it read: its mark moves to the last change read, so the next round goes
// on from there instead of asking for the same pages again.
func TestRateLimitedPastTheBudget(t *testing.T) {
	t.Parallel()
	base := time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)
	opts, start := fixedClock(base)
	f := newFixture(t, opts)
	f.now = start
	for i := range 25 {
		f.cc.PutCase(midsomer, patient(fmt.Sprintf("case-%02d", i), fmt.Sprintf("First%d", i), "Last", "1990-01-01", nil))
	}
	f.cc.PutCase(yggdrasil, patient("y-1", "Ada", "Two", "1990-01-01", nil))
	path := "/a/" + midsomer + "/api/v0.5/case/"
	f.cc.BeforeCaseList(func(domain string, n int, _ url.Values) {
		if domain == midsomer && n == 1 {
			f.cc.Fail(http.MethodGet, path, rateLimited("30", 0))
		}
	})
	minute := func(c *Config) { c.Interval = time.Minute }

	require.NoError(t, f.engine(t, minute).Round(context.Background()))
	require.Equal(t, []time.Duration{30 * time.Second, 30 * time.Second}, f.waits(),
		"a third wait would pass the round's minute")
	require.Len(t, f.listQueries(midsomer), 4)
	require.Equal(t, 10, f.count(t, `SELECT count(*) FROM index_cases WHERE case_id LIKE 'case-%'`), "the first page")
	require.Equal(t, 1, f.count(t, `SELECT count(*) FROM index_cases WHERE case_id = 'y-1'`), "other domains go on")

	var (
		highWater, completed *time.Time
		lastError            *string
	)
	require.NoError(t, f.db.Pool.QueryRow(context.Background(), `SELECT high_water, round_completed_at, last_error
		FROM commcare_sync_marks WHERE domain = $1`, midsomer).Scan(&highWater, &completed, &lastError))
	require.Nil(t, lastError, "not a failure")
	require.Nil(t, completed, "nor a complete round")
	require.NotNil(t, highWater)
	lastRead := base.Add(9 * time.Microsecond) // case-09's stamp
	require.True(t, lastRead.Equal(*highWater), "the mark is the last change read, %s", highWater)
	s, err := Summarize(context.Background(), f.db.Pool)
	require.NoError(t, err)
	require.Empty(t, s.Failures)
	require.Equal(t, 3.0, value(t, f.metrics.rateLimits.WithLabelValues(midsomer)))
	require.Equal(t, 1.0, value(t, f.metrics.rounds.WithLabelValues("rate_limited")))
	require.Equal(t, 1.0, value(t, f.metrics.domains.WithLabelValues("rate_limited")))
	require.Equal(t, 2.0, value(t, f.metrics.domains.WithLabelValues("ok")))
	require.Zero(t, value(t, f.metrics.domains.WithLabelValues("failed")))
	require.Zero(t, value(t, f.metrics.lastComplete), "not every domain was read")

	// CommCare relents: the next round reads from the mark less the overlap, to the end.
	f.cc.ClearFaults()
	f.now = start.Add(5 * time.Minute)
	before := len(f.listQueries(midsomer))
	require.NoError(t, f.engine(t, minute).Round(context.Background()))
	require.Equal(t, lastRead.Add(-2*time.Minute).Format(queryTimeLayout),
		f.listQueries(midsomer)[before].Get("server_date_modified_start"))
	require.Equal(t, 25, f.count(t, `SELECT count(*) FROM index_cases WHERE case_id LIKE 'case-%'`))
	require.NoError(t, f.db.Pool.QueryRow(context.Background(), `SELECT high_water FROM commcare_sync_marks
		WHERE domain = $1`, midsomer).Scan(&highWater))
	require.True(t, f.now.Equal(*highWater), "a complete round moves the mark to its start")
	require.Equal(t, 1.0, value(t, f.metrics.rounds.WithLabelValues("ok")))
	require.Positive(t, value(t, f.metrics.lastComplete))
}

// TestStopWhileWaitingOutARateLimit: a stop ends the wait, and is no failure of the domain.
func TestStopWhileWaitingOutARateLimit(t *testing.T) {
	t.Parallel()
	f := newFixture(t, commcaretest.Options{})
	f.cc.Fail(http.MethodGet, "/a/"+midsomer+"/api/v0.5/case/", rateLimited("30", 1))
	e := f.engine(t, nil)
	waiting := make(chan time.Duration, 1)
	e.deps.SleepFunc = func(ctx context.Context, d time.Duration) error {
		waiting <- d
		<-ctx.Done()
		return ctx.Err()
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Round(ctx) }()
	require.Equal(t, 30*time.Second, <-waiting)
	cancel()
	require.ErrorIs(t, <-done, context.Canceled)

	var (
		highWater *time.Time
		lastError *string
	)
	require.NoError(t, f.db.Pool.QueryRow(context.Background(),
		`SELECT high_water, last_error FROM commcare_sync_marks WHERE domain = $1`, midsomer).Scan(&highWater, &lastError))
	require.Nil(t, highWater)
	require.Nil(t, lastError)
	require.Equal(t, 1.0, value(t, f.metrics.rounds.WithLabelValues("interrupted")))
}
