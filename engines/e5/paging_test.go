package e5

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/viaduct-nys/viaduct/pkg/commcare"
	"github.com/viaduct-nys/viaduct/pkg/commcare/commcaretest"
)

// queryTimeLayout is how the client writes server_date_modified_start.
const queryTimeLayout = "2006-01-02T15:04:05.000000"

// editing is a fake CommCare whose clock a test sets, with one domain's cases seeded an hour before the engine's
// round starts, and a record of the edits a test makes while the round reads them.
type editing struct {
	*fixture
	domain string

	mu    sync.Mutex
	clock time.Time
	edits map[string]int // by case id: how often a contact tracer edited it during the round
	lists []url.Values   // the queries of the domain's case list requests served
}

func newEditing(t *testing.T, domain string) *editing {
	t.Helper()
	base := time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)
	ed := &editing{domain: domain, clock: base, edits: map[string]int{}}
	ed.fixture = newFixture(t, commcaretest.Options{Now: ed.serverNow})
	// The round starts an hour after the cases were seeded; contact tracers edit them once it has.
	ed.now = base.Add(time.Hour)
	return ed
}

// serverNow is the fake CommCare's clock.
func (ed *editing) serverNow() time.Time {
	ed.mu.Lock()
	defer ed.mu.Unlock()
	return ed.clock
}

// seed stores n patient cases, case-000 on, stamped by the server one after the other, or all at stamp when it is
// not "" (as a bulk import stamps them).
func (ed *editing) seed(n int, stamp string) {
	for i := range n {
		c := patient(fmt.Sprintf("case-%03d", i), "First"+strconv.Itoa(i), "Last", "1990-01-01",
			map[string]any{"edits": "0"})
		c.ServerDateModified = stamp
		ed.cc.PutCase(ed.domain, c)
	}
	ed.mu.Lock()
	defer ed.mu.Unlock()
	ed.clock = ed.now.Add(time.Second)
}

// beforeEachPage calls edit, before the server reads each of the domain's case list pages, with the request's
// number (from 1), its query and the domain's cases in the order the server lists them.
func (ed *editing) beforeEachPage(t *testing.T, edit func(n int, query url.Values, listed []commcare.Case)) {
	ed.cc.BeforeCaseList(func(domain string, n int, query url.Values) {
		if domain != ed.domain {
			return
		}
		ed.mu.Lock()
		ed.lists = append(ed.lists, query)
		ed.mu.Unlock()
		listed := ed.cc.Cases(domain)
		slices.SortFunc(listed, func(a, b commcare.Case) int {
			return strings.Compare(a.ServerDateModified+a.CaseID, b.ServerDateModified+b.CaseID)
		})
		edit(n, query, listed)
	})
	t.Cleanup(func() { ed.cc.BeforeCaseList(nil) })
}

// edit changes a case as a contact tracer would: CommCare stamps it anew, so it lists last.
func (ed *editing) edit(t *testing.T, caseID string) {
	ed.mu.Lock()
	ed.edits[caseID]++
	n := ed.edits[caseID]
	ed.mu.Unlock()
	assert.NoError(t, ed.cc.UpdateCase(ed.domain, caseID, map[string]string{"edits": strconv.Itoa(n)}, "tracer"))
}

func (ed *editing) edited() int {
	ed.mu.Lock()
	defer ed.mu.Unlock()
	n := 0
	for _, k := range ed.edits {
		n += k
	}
	return n
}

func (ed *editing) queries() []url.Values {
	ed.mu.Lock()
	defer ed.mu.Unlock()
	return slices.Clone(ed.lists)
}

// requireEveryChangeMerged requires that every case of the domain was merged as CommCare now has it, after first
// requiring the weaker promise the mark makes: no change Viaduct has not merged is stamped before the domain's mark,
// where no later round would ask for it.
func (ed *editing) requireEveryChangeMerged(t *testing.T) {
	t.Helper()
	var mark time.Time
	require.NoError(t, ed.db.Pool.QueryRow(context.Background(),
		`SELECT high_water FROM commcare_sync_marks WHERE domain = $1`, ed.domain).Scan(&mark))
	merged := map[string]string{}
	rows, err := ed.db.Pool.Query(context.Background(), `SELECT case_id, data->>'edits' FROM index_cases`)
	require.NoError(t, err)
	for rows.Next() {
		var id, edits string
		require.NoError(t, rows.Scan(&id, &edits))
		merged[id] = edits
	}
	require.NoError(t, rows.Err())

	var unread, lost []string
	for _, c := range ed.cc.Cases(ed.domain) {
		if merged[c.CaseID] == c.Property("edits") {
			continue
		}
		unread = append(unread, c.CaseID)
		if stamp, err := commcare.ParseTime(c.ServerDateModified); err != nil || stamp.Before(mark) {
			lost = append(lost, c.CaseID)
		}
	}
	require.Empty(t, lost, "changes behind the mark, which no later round reads")
	require.Empty(t, unread, "changes the round did not merge")
}

// TestACaseEditedWhileTheNextPageIsAskedForSkipsNone is issue 14's report: 250 cases in one domain, a case of the
// first page edited while the second page is asked for. Paging by offset, the edit moved case-000 to the end and
// case-100 up to the first page's last place, so the second page, from offset 100, began at case-101: case-100 was
// never read, and the mark, moved to the round's start, left it behind for good.
func TestACaseEditedWhileTheNextPageIsAskedForSkipsNone(t *testing.T) {
	t.Parallel()
	ed := newEditing(t, yggdrasil)
	ed.seed(250, "")
	ed.beforeEachPage(t, func(n int, _ url.Values, _ []commcare.Case) {
		if n == 2 {
			ed.edit(t, "case-000")
		}
	})
	require.NoError(t, ed.engine(t, func(c *Config) { c.PageSize = 100 }).Round(context.Background()))

	ed.requireEveryChangeMerged(t)
	require.Equal(t, 250.0, value(t, ed.metrics.cases.WithLabelValues("created")))
	require.Equal(t, 1.0, value(t, ed.metrics.cases.WithLabelValues("updated")), "case-000's edit, read last")
	require.Zero(t, value(t, ed.metrics.cases.WithLabelValues("unchanged")), "no case read twice is merged twice")
	require.Len(t, ed.queries(), 3)
}

// TestPagingNeverSkipsCasesEditedOnEveryPage edits, before every page the round asks for, a case of the first pages,
// the case the page starts at (the last the round read) and one the round has not read yet; a case can be edited
// again once it lists last. Every case is merged as it last stood. Paging by offset, each edit behind the offset
// would have moved an unread case behind it: about one case lost a page.
func TestPagingNeverSkipsCasesEditedOnEveryPage(t *testing.T) {
	t.Parallel()
	const pageSize = 10
	ed := newEditing(t, yggdrasil)
	ed.seed(250, "")
	ed.beforeEachPage(t, func(n int, query url.Values, listed []commcare.Case) {
		if n == 1 {
			return
		}
		start := query.Get("server_date_modified_start")
		var ahead string
		for i, c := range listed {
			stamp, _ := commcare.ParseTime(c.ServerDateModified)
			switch {
			case stamp.Format(queryTimeLayout) == start:
				ed.edit(t, c.CaseID)
			case ahead == "" && stamp.Format(queryTimeLayout) > start && i+2*pageSize < len(listed):
				ahead = listed[i+2*pageSize].CaseID
			}
		}
		if ahead != "" {
			ed.edit(t, ahead)
		}
		if n-2 < 250 {
			ed.edit(t, fmt.Sprintf("case-%03d", n-2))
		}
	})
	require.NoError(t, ed.engine(t, func(c *Config) { c.PageSize = pageSize }).Round(context.Background()))

	ed.requireEveryChangeMerged(t)
	queries := ed.queries()
	require.Greater(t, ed.edited(), 2*len(queries)-2, "at least two edits before every page but the first")
	for _, q := range queries {
		require.Empty(t, q.Get("offset"), "no instant holds more than one case")
	}
	require.Equal(t, 250.0, value(t, ed.metrics.cases.WithLabelValues("created")))
}

// TestPagingWithinOneInstant: a bulk import stamped 250 cases alike, more than a page. The round reads the instant
// by offset, each request overlapping the one before by half a page; before each of its first pages two cases of
// the instant it read already, and the instant's last, are edited, moving the rest up two places behind the round,
// fewer than the overlap. Paging by offset from the start of the list, as before, two cases were lost a page.
func TestPagingWithinOneInstant(t *testing.T) {
	t.Parallel()
	const pageSize, editedPages = 10, 20
	ed := newEditing(t, midsomer)
	bulk := time.Date(2026, 11, 20, 11, 0, 0, 0, time.UTC)
	ed.seed(250, bulk.Format("2006-01-02T15:04:05.000000Z"))
	ed.beforeEachPage(t, func(n int, _ url.Values, listed []commcare.Case) {
		if n < 2 || n > editedPages {
			return
		}
		var instant []string
		for _, c := range listed {
			if stamp, _ := commcare.ParseTime(c.ServerDateModified); stamp.Equal(bulk) {
				instant = append(instant, c.CaseID)
			}
		}
		for _, id := range []string{instant[0], instant[1], instant[len(instant)-1]} {
			ed.edit(t, id)
		}
	})
	require.NoError(t, ed.engine(t, func(c *Config) { c.PageSize = pageSize }).Round(context.Background()))

	ed.requireEveryChangeMerged(t)
	require.Equal(t, 3*(editedPages-1), ed.edited())
	require.Equal(t, 250.0, value(t, ed.metrics.cases.WithLabelValues("created")))
	var offsets []string
	for _, q := range ed.queries() {
		if q.Get("server_date_modified_start") == bulk.Format(queryTimeLayout) {
			offsets = append(offsets, q.Get("offset"))
		}
	}
	require.Greater(t, len(offsets), editedPages, "the instant took more pages than were edited")
	for i, offset := range offsets {
		require.Equal(t, strconv.Itoa((i+1)*pageSize/2), offset, "each page overlaps the one before by half")
	}
}

func TestCaseListAdvance(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)
	at := func(us int) time.Time { return t0.Add(time.Duration(us) * time.Microsecond) }
	// page makes a page of cases, "id@us": stamped us microseconds after t0; "id@bad": an unreadable stamp.
	page := func(cases ...string) []commcare.Case {
		var out []commcare.Case
		for _, c := range cases {
			id, stamp, _ := strings.Cut(c, "@")
			if us, err := strconv.Atoi(stamp); err == nil {
				stamp = at(us).Format("2006-01-02T15:04:05.000000Z")
			}
			out = append(out, commcare.Case{CaseID: id, ServerDateModified: stamp})
		}
		return out
	}
	for _, tc := range []struct {
		name       string
		from       caseList
		page       []commcare.Case
		want       caseList
		reason     string
		seenBefore bool
	}{
		{"OneCaseAnInstant", caseList{key: t0, seen: map[string]bool{}}, page("a@1", "b@2", "c@3"),
			caseList{key: at(3), seen: map[string]bool{"c": true}}, "the next page starts at c, listed again", false},
		{"InstantsEndingThePage", caseList{key: t0, seen: map[string]bool{}}, page("a@1", "b@2", "c@2", "d@2"),
			caseList{key: at(2), seen: map[string]bool{"b": true, "c": true, "d": true}, offset: 1},
			"half a page before the end of what was read of the instant", false},
		{"APageOfOneInstant", caseList{key: t0, seen: map[string]bool{}}, page("a@1", "b@1", "c@1", "d@1"),
			caseList{key: at(1), seen: map[string]bool{"a": true, "b": true, "c": true, "d": true}, offset: 2}, "", false},
		{"WithinTheInstant", caseList{key: at(1), seen: map[string]bool{"a": true, "b": true}, offset: 2},
			page("b@1", "c@1", "d@1", "e@1"),
			caseList{key: at(1), seen: map[string]bool{"a": true, "b": true, "c": true, "d": true, "e": true}, offset: 4},
			"half a page on", true},
		{"WithinTheInstantOddPage", caseList{key: at(1), seen: map[string]bool{}, offset: 2}, page("a@1", "b@1", "c@1"),
			caseList{key: at(1), seen: map[string]bool{"a": true, "b": true, "c": true}, offset: 4}, "", false},
		{"PagesOfOne", caseList{key: at(1), seen: map[string]bool{"a": true}}, page("a@1"),
			caseList{key: at(1), seen: map[string]bool{"a": true}, offset: 1}, "still onwards", true},
		{"UnreadableStampMovesNothing", caseList{key: t0, seen: map[string]bool{}}, page("a@1", "b@bad"),
			caseList{key: at(1), seen: map[string]bool{"a": true}}, "", false},
		{"OnlyUnreadableStamps", caseList{key: t0, seen: map[string]bool{}}, page("a@bad", "b@bad"),
			caseList{key: t0, seen: map[string]bool{}, offset: 1}, "the offset still grows", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := tc.from
			require.Equal(t, tc.seenBefore, l.read(&tc.page[0]))
			l.advance(tc.page)
			require.Equal(t, tc.want, l, tc.reason)
		})
	}

	l := caseList{key: at(1), seen: map[string]bool{"a": true, "b": true}}
	for _, tc := range []struct {
		c    string
		read bool
	}{{"a@1", true}, {"a@2", false}, {"c@1", false}, {"b@bad", false}} {
		require.Equal(t, tc.read, l.read(&page(tc.c)[0]), "%s: only a case read at key, as stamped then, is passed over", tc.c)
	}
}
