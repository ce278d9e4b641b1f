//go:build bench

package e5

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/viaduct-nys/viaduct/pkg/casedb"
	"github.com/viaduct-nys/viaduct/pkg/commcare"
	"github.com/viaduct-nys/viaduct/pkg/commcare/commcaretest"
	"github.com/viaduct-nys/viaduct/pkg/countylist"
	"github.com/viaduct-nys/viaduct/pkg/pgtest"
)

// TestBenchE5 is `make bench-e5`: 100,000 patient cases, each with one or two lab results, changed in ten county
// domains of the fake CommCare, which answers every request after 10 ms. It times two full rounds at 100 cases a
// page and prints cases per second for each: a cold one (no marks yet, every case new to Viaduct) and one after
// every case was edited in CommCare (every case known, so each is an update). VIADUCT_BENCH_E5_CASES sets the
// number of cases; VIADUCT_BENCH_E5_DOMAINS how many domains are read at once (default: the engine's).
func TestBenchE5(t *testing.T) {
	ctx := context.Background()
	cases := envInt(t, "VIADUCT_BENCH_E5_CASES", 100_000)
	domainsAtOnce := envInt(t, "VIADUCT_BENCH_E5_DOMAINS", 0)
	const (
		countyDomains = 10
		latency       = 10 * time.Millisecond
		pageSize      = 100
		target        = 60 * time.Second
	)

	db := pgtest.New(t)
	counties := benchCounties(countyDomains)
	fake := commcaretest.StartTest(t, commcaretest.Options{Latency: latency, Counties: counties})
	list, err := countylist.NewList(counties)
	require.NoError(t, err)
	_, err = countylist.Seed(ctx, db.Pool, list)
	require.NoError(t, err)
	var domains []string
	for _, c := range list.Participating() {
		if !c.Statewide {
			domains = append(domains, c.Domain)
		}
	}
	require.Len(t, domains, countyDomains)

	seedStart := time.Now()
	labs := 0
	for i := range cases {
		c := benchCase(i)
		labs += len(c.ChildCases)
		fake.PutCase(domains[i%len(domains)], c)
	}
	t.Logf("seeded the fake CommCare with %d cases and %d lab results in %s", cases, labs,
		time.Since(seedStart).Round(time.Millisecond))

	client, err := commcare.NewClient(fake.ClientConfig())
	require.NoError(t, err)
	config := Config{PageSize: pageSize, Domains: domainsAtOnce, OwnUserIDs: []string{"viaduct-bench"}, UntilIdle: true}
	e, err := New(config, Deps{Pool: db.Pool, CommCare: client, Counties: staticCounties{list}, Logger: zap.NewNop()})
	require.NoError(t, err)

	count := func(query string, args ...any) int {
		t.Helper()
		var n int
		require.NoError(t, db.Pool.QueryRow(ctx, query, args...).Scan(&n))
		return n
	}
	round := func() (time.Duration, int) {
		t.Helper()
		before := len(fake.Requests())
		start := time.Now()
		require.NoError(t, e.Round(ctx))
		elapsed := time.Since(start)
		pages := 0
		for _, r := range fake.Requests()[before:] {
			if r.Method == http.MethodGet && strings.HasSuffix(r.Path, "/api/v0.5/case/") {
				pages++
			}
		}
		require.Zero(t, count(`SELECT count(*) FROM commcare_sync_marks WHERE last_error IS NOT NULL OR high_water IS NULL`),
			"every domain completed its round")
		return elapsed, pages
	}

	coldElapsed, coldPages := round()
	require.Equal(t, cases, count(`SELECT count(*) FROM index_cases`), "every case was created")
	require.Equal(t, labs, count(`SELECT count(*) FROM lab_results`), "with its lab results")
	require.Equal(t, cases, count(`SELECT count(*) FROM events WHERE type = $1`, casedb.EventRetrievedFromCommCare))
	people := count(`SELECT count(*) FROM people`)

	// Every case edited by a contact tracer since the first round: the second round reads each once more, as an update.
	editStart := time.Now()
	for i := range cases {
		require.NoError(t, fake.UpdateCase(domains[i%len(domains)], benchCaseID(i),
			map[string]string{"interviewed": "yes", "contact_tracer": "tracer-" + strconv.Itoa(i%50)}, "tracer"))
	}
	t.Logf("edited the %d cases in the fake CommCare in %s", cases, time.Since(editStart).Round(time.Millisecond))
	updateElapsed, updatePages := round()
	require.Equal(t, cases, count(`SELECT count(*) FROM index_cases WHERE data->>'interviewed' = 'yes'`),
		"every case took CommCare's change")
	require.Equal(t, cases, count(`SELECT count(*) FROM events WHERE type = $1`, casedb.EventUpdatedFromCommCare))

	fmt.Printf("\nbench-e5: %d cases (%d lab results) in %d county domains of the fake CommCare (and the empty "+
		"statewide one), %s per request, %d a page, %d domains at once\n", cases, labs, len(domains), latency, pageSize,
		e.config.Domains)
	for _, r := range []struct {
		name    string
		elapsed time.Duration
		pages   int
	}{
		{fmt.Sprintf("cold round (created, %d people)", people), coldElapsed, coldPages},
		{"update round (every case known)", updateElapsed, updatePages},
	} {
		verdict := "met"
		if r.elapsed > target {
			verdict = "MISSED"
		}
		fmt.Printf("  %-36s %6d cases  %5d pages  %7.2f s  %8.1f cases/s   target <= %.0f s: %s\n", r.name, cases, r.pages,
			r.elapsed.Seconds(), float64(cases)/r.elapsed.Seconds(), target.Seconds(), verdict)
	}
}

// benchCounties is New York's county list with only its first n county domains (and the statewide project, which a
// county list needs) participating.
func benchCounties(n int) []countylist.County {
	counties := commcaretest.NewYorkCounties()
	for i := range counties {
		if counties[i].Participating && !counties[i].Statewide {
			if n > 0 {
				n--
			} else {
				counties[i].Participating = false
			}
		}
	}
	return counties
}

func benchCaseID(i int) string {
	return fmt.Sprintf("bench-case-%06d", i)
}

// benchCase is patient case i as a contact tracer would find it: a person of its own (every tenth shares one with
// the case before it), the properties Engine 4 posts, and one or two lab results.
func benchCase(i int) commcare.Case {
	person := i
	if i%10 == 9 {
		person--
	}
	id := benchCaseID(i)
	dob := time.Date(1950, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, person%20_000).Format(time.DateOnly)
	accessions := []string{"ACC-" + id + "-1"}
	if i%2 == 1 {
		accessions = append(accessions, "ACC-"+id+"-2")
	}
	c := patient(id, "First"+strconv.Itoa(person), "Last"+strconv.Itoa(person%997), dob, map[string]any{
		"phone_home": "5555550100", "address_street": strconv.Itoa(i) + " Main St", "address_city": "Albany",
		"address_state": "NY", "address_zip": "12207", "gender": "female", "race": "other", "ethnicity": "unknown",
		"analysis_date": "2026-11-20", "case_import_date": "2026-11-20", "eclrs_create_date": "2026-11-19",
		"owner_id": "bench-owner", "interviewed": "no",
	}, accessions...)
	for _, child := range c.ChildCases {
		for k, v := range map[string]any{"specimen_collection_date": "2026-11-18", "test_type": "SARS-CoV-2 RNA",
			"laboratory": "Bench Lab", "ordering_facility_name": "Bench Clinic", "analysis_date": "2026-11-20"} {
			child.Properties[k] = v
		}
	}
	return c
}

// staticCounties is a county list that never changes.
type staticCounties struct{ list *countylist.List }

func (s staticCounties) Current() *countylist.List { return s.list }

func envInt(t *testing.T, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	require.NoError(t, err, "%s", name)
	return n
}
