package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"html"
	"image"
	"image/png"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/viaduct-nys/viaduct/pkg/casedb"
	"github.com/viaduct-nys/viaduct/pkg/commcare"
	"github.com/viaduct-nys/viaduct/pkg/eclrs"
	"github.com/viaduct-nys/viaduct/pkg/pgtest"
	"github.com/viaduct-nys/viaduct/pkg/status/report"
)

// seedStatus puts one of each thing the status page reports into pool, with the reasons the engines really write:
// files importing, imported and failed (one for want of a header, its first line a patient's row), malformed rows,
// a failed test result, posts failed, rate limited and given up (the newest with its River job), Engine 5 domains,
// one current, one failing and one no longer read, and two daemons, one live and running every engine. Each engine
// also has something older than the windows, which must not be counted. Every time is relative to the database's
// clock when seeding, which it returns. Engines 1, 2, 4 and 5 are red, Engine 3 amber (its case waits 20 minutes).
func seedStatus(t *testing.T, pool *pgxpool.Pool) time.Time {
	t.Helper()
	headerless := (&eclrs.HeaderError{Got: "DOE|JANE|1980-02-03|12 ELM ST|5185550100"}).Error()
	rejected := func(caseID string) string {
		return (&commcare.HTTPError{Method: http.MethodPost, StatusCode: http.StatusBadRequest, Body: "Jane Doe is invalid",
			URL: "https://hq.example/a/ny-bronx-cdcms/api/v0.5/case/" + caseID + "/?external_id=" + caseID}).Error()
	}
	// The simple protocol takes several statements with arguments.
	_, err := pool.Exec(t.Context(), `
		INSERT INTO files (filename, key, status, failure_reason, processing_started_at, processing_completed_at,
		                   updated_at, inserted_at) VALUES
		  ('s3://b/importing.txt', 'importing.txt', 'importing', NULL, now() - interval '1 minute', NULL,
		   now(), now() - interval '7 minutes'),
		  ('s3://b/new.txt', 'new.txt', 'imported', NULL, now() - interval '3 minutes', now() - interval '2 minutes',
		   now() - interval '2 minutes', now() - interval '3 minutes'),
		  ('s3://b/old.txt', 'old.txt', 'imported', NULL, now() - interval '3 hours', now() - interval '3 hours',
		   now() - interval '3 hours', now() - interval '3 hours'),
		  ('s3://b/bad.txt', 'bad.txt', 'failed', $7, now() - interval '5 minutes',
		   now() - interval '5 minutes', now() - interval '5 minutes', now() - interval '5 minutes'),
		  -- Failed three days ago and announced again just now, which touches updated_at.
		  ('s3://b/ancient.txt', 'ancient.txt', 'failed', 'an ancient failure', now() - interval '3 days',
		   now() - interval '3 days', now(), now() - interval '3 days');
		INSERT INTO file_row_errors (file_id, line_number, field, reason, raw_data)
		SELECT id, n, 'PATIENT_DOB', 'not a date: "19x"', 'raw' FROM files, generate_series(2, 3) n
		 WHERE key = 'new.txt';
		INSERT INTO events (type, data, inserted_at) VALUES
		  ($1, '{"reason": "request_accession_number is empty"}', now() - interval '10 minutes'),
		  ($1, '{"reason": "request_accession_number is empty"}', now() - interval '2 hours'),
		  ($2, '{"status": 500, "response": "<html>oops</html>"}', now() - interval '1 minute'),
		  ($2, '{"status": 429, "response": "rate_limited", "snoozed": "7s"}', now() - interval '2 minutes'),
		  ($3, jsonb_build_object('status', 400, 'response', 'Jane Doe is invalid', 'reason', $8::text, 'job_id', 31),
		   now() - interval '4 minutes'),
		  ($3, jsonb_build_object('status', 400, 'response', 'Jane Doe is invalid', 'reason', $9::text),
		   now() - interval '3 hours');
		INSERT INTO commcare_sync_marks (domain, high_water, round_started_at, round_completed_at, last_error,
		                                 failing_since) VALUES
		  ('ny-albany-cdcms', now() - interval '6 minutes', now() - interval '6 minutes', now() - interval '5 minutes',
		   NULL, NULL),
		  ('ny-bronx-cdcms', now() - interval '2 hours', now() - interval '1 minute', now() - interval '2 hours',
		   'listing cases: HTTP 403', date_trunc('second', now()) - interval '115 minutes'),
		  -- A domain that left: read last a week ago, and failing then.
		  ('ny-gone-cdcms', now() - interval '8 days', now() - interval '7 days', now() - interval '8 days',
		   'listing cases: HTTP 401', now() - interval '7 days');
		-- A daemon runs every engine (its last beat dated ahead, so that it is live however long a slow machine takes
		-- to read the status); another, gone silent a minute ago, ran Engine 1.
		INSERT INTO daemons (id, hostname, pid, version, engines, beat_at) VALUES
		  ('00000000-0000-4000-8000-000000000001', 'ops-1', 4242, 'v1.2.3', '{e1,e2,e3,e4,e5}',
		   now() + interval '1 hour');
		INSERT INTO daemons (id, hostname, pid, version, engines, started_at, beat_at) VALUES
		  ('00000000-0000-4000-8000-000000000002', 'ops-2', 77, 'v1.2.2', '{e1}', now() - interval '1 hour',
		   now() - interval '1 minute');
		-- The River job of the newest case given up on, which its event names.
		INSERT INTO river_job (id, args, kind, max_attempts, queue, state, finalized_at) VALUES
		  (31, '{"case_id": "0b7c9f1e-5d2a-4c3b-9e8f-1a2b3c4d5e6f", "county_id": 1}', 'commcare_case_loader', 20,
		   'commcare', 'cancelled', now() - interval '4 minutes');
		-- Case 1 changed after its hand-off 20 minutes ago, case 2 was created 5 minutes ago and never handed off,
		-- case 3 was handed off after its change: two wait, the oldest for 20 minutes.
		INSERT INTO counties (id) VALUES (1);
		INSERT INTO people (id, patient_keys) VALUES (1, '{status-test}');
		INSERT INTO index_cases (id, person_id, county_id, data) VALUES (1, 1, 1, '{}'), (2, 1, 1, '{}'), (3, 1, 1, '{}');
		INSERT INTO events (id, type, inserted_at) VALUES
		  (1001, $4, now() - interval '40 minutes'), (1002, $6, now() - interval '30 minutes'),
		  (1003, $5, now() - interval '20 minutes'), (1004, $5, now() - interval '10 minutes'),
		  (1005, $4, now() - interval '5 minutes'),
		  (1006, $4, now() - interval '50 minutes'), (1007, $6, now() - interval '45 minutes');
		INSERT INTO index_case_events (index_case_id, event_id) VALUES
		  (1, 1001), (1, 1002), (1, 1003), (1, 1004), (2, 1005), (3, 1006), (3, 1007);`,
		pgx.QueryExecModeSimpleProtocol,
		eclrs.EventProcessingFailed, casedb.EventSendToCommCareFailed, casedb.EventSendToCommCareDiscarded,
		casedb.EventIndexCaseCreated, casedb.EventIndexCaseUpdated, casedb.EventSendToCommCareEnqueued,
		headerless, rejected("0b7c9f1e-5d2a-4c3b-9e8f-1a2b3c4d5e6f"), rejected("9f8e7d6c-5b4a-4321-8fed-cba987654321"))
	require.NoError(t, err)
	// One transaction, so one now(): the importing file was first announced 7 minutes before it.
	var seeded time.Time
	require.NoError(t, pool.QueryRow(t.Context(), `SELECT inserted_at + interval '7 minutes' FROM files
		 WHERE key = 'importing.txt'`).Scan(&seeded))
	return seeded
}

// statusWants are what the seeded database must read as, on the terminal and on the page alike.
var statusWants = []string{
	// Engine 1: the import waiting since its first announcement 7 minutes ago (its latest try started a minute ago).
	"1 file importing", "1 file imported", "1 file, 2 malformed rows",
	"1 test result",         // Engine 2 failed in the last hour (the one two hours ago is not)
	"2 changed index cases", // Engine 3: waiting since the first change after the hand-off
	"1 post, 1 given up (and 1 rate limited, waiting as asked)",
	"1 domain failing", // the domain that left counts for neither
	"unexpected header: 5 fields",
	"malformed rows: field PATIENT_DOB",
	"request_accession_number is empty",
	"will retry: CommCare answered HTTP 500",
	"will retry: CommCare answered HTTP 429",
	// Two posts rejected for the same reason, their case ids and queries aside, are one line.
	"given up: commcare: POST https://hq.example/a/ny-bronx-cdcms/api/v0.5/case/…/: 400 Bad Request",
	"ny-bronx-cdcms: listing cases: HTTP 403 (failing since ",
	// Why each engine is not ok.
	"1 file failed in the last hour",
	"1 test result failed in the last hour",
	"1 case given up in the last hour: CommCare rejected them",
	"retrying: 1 post failed in the last hour, each retried by its job",
	"retrying: 1 post rate limited in the last hour, each waiting as CommCare asks",
	"1 of 2 domains current",
	// Where the newest of each failure is: the file, the malformed row, the River job and its case.
	"file 4", "file 2, line 3", "River job 31; viaduct trace --case-id 0b7c9f1e-5d2a-4c3b-9e8f-1a2b3c4d5e6f",
	// The daemons.
	"ops-1 (pid 4242)", "ops-2 (pid 77)", "silent",
}

// statusWantPatterns are what the seeded database must read as whose ages grow while the test runs: Engine 3's
// case (amber after 5 minutes) and the failing domain (red after an hour).
var statusWantPatterns = []*regexp.Regexp{
	regexp.MustCompile(`the oldest changed case has waited 2\dm(\d+s)? \(amber after 5m\)`),
	regexp.MustCompile(`ny-bronx-cdcms failing for 1h5\dm \(red after 1h\): listing cases: HTTP 403`),
}

// statusMustNot are what the page and the terminal must not show: failures older than a day, a domain no longer
// read, and patient data (a headerless file's first row, what CommCare answered to a rejected case).
var statusMustNot = []string{"an ancient failure", "ny-gone-cdcms: ", "Jane Doe", "oops", "19x", "DOE", "JANE",
	"1980-02-03", "12 ELM", "5185550100"}

// requireStatusText checks a rendering of the seeded database: everything in statusWants, nothing in
// statusMustNot, and the ages: the 7-minute-old import, Engine 3's case waiting for 20 minutes and Engine 5's
// changes since 2 hours, each read some time after seeding. How long after is what the test measured since it
// began seeding, so the check holds however slow the machine is.
func requireStatusText(t *testing.T, text string, elapsed time.Duration) {
	t.Helper()
	for _, want := range statusWants {
		require.Contains(t, text, want)
	}
	for _, want := range statusWantPatterns {
		require.Regexp(t, want, text)
	}
	for _, not := range statusMustNot {
		require.NotContains(t, text, not)
	}
	var ages []time.Duration
	for _, m := range regexp.MustCompile(`\b((?:\d+h)?(?:\d+m)?(?:\d+s)?) ago`).FindAllStringSubmatch(text, -1) {
		if d, err := time.ParseDuration(m[1]); err == nil {
			ages = append(ages, d)
		}
	}
	for _, age := range []struct {
		label      string
		base, unit time.Duration
	}{{"the importing file", 7 * time.Minute, time.Second}, {"Engine 3's oldest case", 20 * time.Minute, time.Second},
		{"Engine 5's changes", 2 * time.Hour, time.Minute}} {
		require.True(t, slices.ContainsFunc(ages, func(d time.Duration) bool {
			return d >= age.base && d <= age.base+elapsed+age.unit
		}), "%s: an age from %s to %s, rounded to the %s, in %v", age.label, age.base, age.base+elapsed, age.unit, ages)
	}
}

func TestStatusPage(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	began := time.Now()
	seeded := seedStatus(t, db.Pool)
	srv := httptest.NewServer(newOpsHandler(db.Pool, prometheus.NewRegistry(), nil, report.Defaults()))
	t.Cleanup(srv.Close)

	t.Run("HTML", func(t *testing.T) {
		t.Parallel()
		resp, err := http.Get(srv.URL + "/status")
		require.NoError(t, err)
		defer resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Equal(t, "text/html; charset=utf-8", resp.Header.Get("Content-Type"))
		var body bytes.Buffer
		_, err = body.ReadFrom(resp.Body)
		require.NoError(t, err)
		page := html.UnescapeString(body.String())
		requireStatusText(t, page, time.Since(began))
		require.NotContains(t, page, "<script", "server-rendered, no JavaScript")
		require.Contains(t, page, `href="/metrics"`)
		require.Contains(t, page, "River UI: not served", "no River UI link when River UI is not served")
	})

	t.Run("TerminalShowsTheSameNumbers", func(t *testing.T) {
		t.Parallel()
		res := runCLI(t, map[string]string{"DATABASE_URL": db.URL}, "status")
		require.Equal(t, 0, res.code, "stderr:\n%s", res.stderr)
		requireStatusText(t, res.stdout, time.Since(began))
	})

	t.Run("JSON", func(t *testing.T) {
		t.Parallel()
		code, body := get(t, srv.URL+"/status?format=json")
		require.Equal(t, http.StatusOK, code)
		var got report.Status
		require.NoError(t, json.Unmarshal([]byte(body), &got), body)
		elapsed := time.Since(began)
		require.False(t, got.AsOf.Before(seeded), "read after seeding")
		require.False(t, got.AsOf.After(seeded.Add(elapsed)), "read within the %s since seeding began", elapsed)
		require.Equal(t, int64(1), got.E1.ImportedLastHour)
		require.Equal(t, int64(2), got.E3.Waiting)
		require.NotNil(t, got.E3.OldestWaiting)
		require.True(t, got.E3.OldestWaiting.Equal(seeded.Add(-20*time.Minute)), "waiting since the change after the hand-off")
		require.InDelta(t, got.AsOf.Sub(*got.E3.OldestWaiting).Seconds(), got.E3.OldestWaitingAge, 1e-6,
			"the age is taken on the snapshot's clock")
		require.Equal(t, int64(1), got.E2.FailedLastHour)
		require.Len(t, got.E2.Failures, 1)
		require.Equal(t, int64(2), got.E2.Failures[0].Count, "both within the day")
		require.Len(t, got.E5.Failures, 1)
		require.Equal(t, int64(1), got.E4.RateLimited)
		var rejected int64
		for _, f := range got.E4.Failures {
			if strings.HasPrefix(f.Reason, "given up: ") {
				rejected = f.Count
			}
		}
		require.Equal(t, int64(2), rejected, "two rejections, their case ids aside, are one reason")
	})

	t.Run("RootLeadsToStatus", func(t *testing.T) {
		t.Parallel()
		client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := client.Get(srv.URL + "/")
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusFound, resp.StatusCode)
		require.Equal(t, "/status", resp.Header.Get("Location"))
	})

	t.Run("HeadlessChromium", func(t *testing.T) {
		t.Parallel()
		browser := chromium(t)
		dom := headless(t, browser, "--dump-dom", srv.URL+"/status")
		page := html.UnescapeString(string(dom))
		requireStatusText(t, page, time.Since(began))
		rows := map[string]string{}
		for _, m := range regexp.MustCompile(`<tr class="(\w+)">\s*<td><b>(Engine \d)</b>`).FindAllStringSubmatch(page, -1) {
			rows[m[2]] = m[1]
		}
		require.Equal(t, map[string]string{"Engine 1": "red", "Engine 2": "red", "Engine 3": "amber",
			"Engine 4": "red", "Engine 5": "red"}, rows, "each engine's state is marked, in the browser's DOM")

		shot := filepath.Join(screenshotDir(t), "status.png")
		headless(t, browser, "--screenshot="+shot, "--window-size=1280,2200", srv.URL+"/status")
		px := screenshotColours(t, shot, 1280, 2200)
		require.Greater(t, px.red, 20_000, "red rows are red")
		require.Greater(t, px.amber, 2_000, "Engine 3's row is amber")
		require.Greater(t, px.ok, 1_000, "the live daemon is marked green")
		require.Greater(t, px.dark, 5_000, "the page has text")
	})
}

// chromium finds headless Chromium: VIADUCT_CHROMIUM, or chromium on the PATH. `make test` installs Debian's
// package (.ci/chromium.sh); a missing browser fails the test rather than hiding it.
func chromium(t *testing.T) string {
	t.Helper()
	if b := os.Getenv("VIADUCT_CHROMIUM"); b != "" {
		return b
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if path, err := exec.LookPath(name); err == nil {
			return path
		}
	}
	t.Fatal("headless Chromium not found: `make test` installs it (bash .ci/chromium.sh), or set VIADUCT_CHROMIUM")
	return ""
}

// headless runs browser headless with args and returns what it printed on stdout. Its own profile keeps parallel
// runs apart; --no-sandbox because CI runs as root; sRGB so the screenshot's colours are the stylesheet's.
func headless(t *testing.T, browser string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
		"--hide-scrollbars", "--force-color-profile=srgb", "--user-data-dir=" + t.TempDir()}
	cmd := exec.CommandContext(ctx, browser, append(base, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	require.NoError(t, cmd.Run(), "%s %s\nstderr:\n%s", browser, strings.Join(args, " "), stderr.String())
	return stdout.Bytes()
}

// screenshotDir is where the screenshot goes: VIADUCT_SCREENSHOT_DIR when set, so CI or a person can look at it,
// else the test's own directory.
func screenshotDir(t *testing.T) string {
	t.Helper()
	if dir := os.Getenv("VIADUCT_SCREENSHOT_DIR"); dir != "" {
		require.NoError(t, os.MkdirAll(dir, 0o755))
		return dir
	}
	return t.TempDir()
}

// Colours of the stylesheet, as the screenshot has them (sRGB).
var (
	redRow   = [3]uint32{0xfd, 0xe2, 0xe1}
	amberRow = [3]uint32{0xff, 0xf0, 0xc2}
	okMark   = [3]uint32{0xe6, 0xf4, 0xea}
)

// pixels counts a screenshot's pixels by colour: red, amber and green rows, and text (dark); last is the lowest
// row with anything but white on it.
type pixels struct {
	red, amber, ok, dark, last int
}

// screenshotColours reads the screenshot at path, checks it has the size asked for, and counts its colours.
func screenshotColours(t *testing.T, path string, width, height int) pixels {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	img, err := png.Decode(f)
	require.NoError(t, err)
	require.Equal(t, image.Rect(0, 0, width, height), img.Bounds())
	var px pixels
	for y := img.Bounds().Min.Y; y < img.Bounds().Max.Y; y++ {
		for x := img.Bounds().Min.X; x < img.Bounds().Max.X; x++ {
			r, g, b, _ := img.At(x, y).RGBA()
			c := [3]uint32{r >> 8, g >> 8, b >> 8}
			switch {
			case c == redRow:
				px.red++
			case c == amberRow:
				px.amber++
			case c == okMark:
				px.ok++
			case c[0] < 0x60 && c[1] < 0x60 && c[2] < 0x60:
				px.dark++
			}
			if c != [3]uint32{0xff, 0xff, 0xff} {
				px.last = y
			}
		}
	}
	t.Logf("screenshot %s: %d red, %d amber, %d green and %d text pixels; the lowest drawn row is %d", path, px.red,
		px.amber, px.ok, px.dark, px.last)
	return px
}

// TestStatusPageAtScale renders, in headless Chromium, a system in good order but for one post retried: 58 county
// domains all current are one line ("58 of 58 domains current") over a table that stays collapsed, Engine 4 is amber
// and not red ("retrying"), and the other engines are green.
func TestStatusPageAtScale(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	execSQL(t, db.Pool, liveDaemon+recentImport+`
		INSERT INTO commcare_sync_marks (domain, high_water, round_started_at, round_completed_at)
		SELECT 'ny-county-' || n || '-cdcms', now() - interval '3 minutes', now() - interval '3 minutes',
		       now() - interval '2 minutes' FROM generate_series(1, 58) n;
		INSERT INTO river_job (id, args, kind, max_attempts, queue, state, attempt, scheduled_at) VALUES
		  (77, '{"case_id": "5d0c1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b", "county_id": 1}', 'commcare_case_loader', 20,
		   'commcare', 'retryable', 1, now() + interval '15 seconds');
		INSERT INTO events (type, data) VALUES ('send_to_commcare_failed', '{"status": 500, "job_id": 77}');`)
	srv := httptest.NewServer(newOpsHandler(db.Pool, prometheus.NewRegistry(), http.NotFoundHandler(), report.Defaults()))
	t.Cleanup(srv.Close)

	code, body := get(t, srv.URL+"/status")
	require.Equal(t, http.StatusOK, code)
	page := html.UnescapeString(body)
	require.Contains(t, page, "58 of 58 domains current")
	require.Contains(t, page, `<details id="all-domains">`, "every domain's table is collapsed")
	require.NotContains(t, page, `id="domains-not-current"`)
	require.Contains(t, page, "retrying: 1 post failed in the last hour, each retried by its job")
	require.Contains(t, page, `<a href="/riverui/jobs/77">River job 77; viaduct trace --case-id 5d0c1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b</a>`,
		"the failure links to its job in River UI")

	browser := chromium(t)
	dom := html.UnescapeString(string(headless(t, browser, "--dump-dom", srv.URL+"/status")))
	rows := map[string]string{}
	for _, m := range regexp.MustCompile(`<tr class="(\w+)">\s*<td><b>(Engine \d)</b>`).FindAllStringSubmatch(dom, -1) {
		rows[m[2]] = m[1]
	}
	require.Equal(t, map[string]string{"Engine 1": "ok", "Engine 2": "ok", "Engine 3": "ok", "Engine 4": "amber",
		"Engine 5": "ok"}, rows)

	shot := filepath.Join(screenshotDir(t), "status-at-scale.png")
	headless(t, browser, "--screenshot="+shot, "--window-size=1280,4000", srv.URL+"/status")
	px := screenshotColours(t, shot, 1280, 4000)
	require.Zero(t, px.red, "nothing is red")
	require.Greater(t, px.amber, 2_000, "Engine 4 and its retried post are amber")
	require.Greater(t, px.ok, 4*1_000, "the healthy engines are marked green")
	// Open, the 58 domains' table would take some 2,000 pixels more: the page ends well before that.
	require.Less(t, px.last, 2_600, "the domains' table is collapsed")
}
