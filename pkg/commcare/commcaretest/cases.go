package commcaretest

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/viaduct-nys/viaduct/pkg/commcare"
)

const (
	// serverTimeLayout is how CommCare writes server_date_modified, date_modified and the like: UTC, microseconds.
	serverTimeLayout = "2006-01-02T15:04:05.000000Z"
	// indexedOnLayout is how CommCare writes indexed_on: the same, without the zone.
	indexedOnLayout = "2006-01-02T15:04:05.000000"

	// defaultPageSize and maxPageSize are CommCare's (tastypie's) defaults for the case list.
	defaultPageSize = 20
	maxPageSize     = 5000
)

// PutCase stores c in domain as if CommCare held it already, replacing any case with its id (in any domain), so a
// test can seed what Engine 4 finds or Engine 5 pulls, fixtures included. It sets Domain and ID, fills empty server
// dates with the server clock (indexed_on and server_date_opened follow server_date_modified) and copies a
// top-level CaseType into properties.case_type when that is missing. Child cases in c.ChildCases are stored as cases
// of their own, given a "parent" index to c when they name none, so a fixture seeds as it is served. The case is
// only served when domain is one the server knows (the root domain or a county list domain). It panics when c has
// no case id: that is a mistake in the test.
func (s *Server) PutCase(domain string, c commcare.Case) {
	if c.CaseID == "" {
		panic("commcaretest: PutCase needs a case id")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.putCase(domain, c)
}

func (s *Server) putCase(domain string, c commcare.Case) {
	children := c.ChildCases
	stored := copyCase(c)
	stored.ChildCases = nil
	stored.Domain = domain
	stored.ID = stored.CaseID
	if stored.ServerDateModified == "" {
		stored.ServerDateModified = s.stamp().Format(serverTimeLayout)
	}
	if stored.IndexedOn == "" {
		stored.IndexedOn = stored.ServerDateModified
		if t, err := commcare.ParseTime(stored.ServerDateModified); err == nil {
			stored.IndexedOn = t.Format(indexedOnLayout)
		}
	}
	if stored.ServerDateOpened == "" {
		stored.ServerDateOpened = stored.ServerDateModified
	}
	if _, ok := stored.Properties["case_type"]; !ok && stored.CaseType != "" {
		stored.Properties["case_type"] = stored.CaseType
	}
	s.storeCase(domain, &stored)

	for _, id := range slices.Sorted(maps.Keys(children)) {
		child := children[id]
		if child.CaseID == "" {
			child.CaseID = id
		}
		if !slices.ContainsFunc(slices.Collect(maps.Values(child.Indices)),
			func(ix commcare.CaseIndex) bool { return ix.CaseID == c.CaseID }) {
			child.Indices = maps.Clone(child.Indices)
			if child.Indices == nil {
				child.Indices = make(map[string]commcare.CaseIndex)
			}
			child.Indices["parent"] = commcare.CaseIndex{CaseID: c.CaseID, CaseType: stored.Type(), Relationship: "child"}
		}
		s.putCase(domain, child)
	}
}

// storeCase puts c into domain's cases, taking its id away from any other domain. Stored cases are never changed
// in place: every change stores a new copy through here.
func (s *Server) storeCase(domain string, c *commcare.Case) {
	if old, ok := s.caseDomain[c.CaseID]; ok {
		s.unindexChild(old, s.cases[old][c.CaseID])
		delete(s.listed, old)
		if old != domain {
			delete(s.cases[old], c.CaseID)
			if len(s.cases[old]) == 0 {
				delete(s.cases, old)
			}
		}
	}
	if s.cases[domain] == nil {
		s.cases[domain] = make(map[string]*commcare.Case)
	}
	s.cases[domain][c.CaseID] = c
	s.caseDomain[c.CaseID] = domain
	s.indexChild(domain, c)
	delete(s.listed, domain)
}

// indexChild records in domain's child index that c indexes each case its indices name.
func (s *Server) indexChild(domain string, c *commcare.Case) {
	for _, ix := range c.Indices {
		if ix.CaseID == "" {
			continue
		}
		if s.children[domain] == nil {
			s.children[domain] = make(map[string][]string)
		}
		ids := s.children[domain][ix.CaseID]
		if i, found := slices.BinarySearch(ids, c.CaseID); !found {
			s.children[domain][ix.CaseID] = slices.Insert(ids, i, c.CaseID)
		}
	}
}

// unindexChild takes c, as stored in domain, out of domain's child index.
func (s *Server) unindexChild(domain string, c *commcare.Case) {
	for _, ix := range c.Indices {
		ids := s.children[domain][ix.CaseID]
		if i, found := slices.BinarySearch(ids, c.CaseID); found {
			if ids = slices.Delete(ids, i, i+1); len(ids) == 0 {
				delete(s.children[domain], ix.CaseID)
			} else {
				s.children[domain][ix.CaseID] = ids
			}
		}
	}
	if len(s.children[domain]) == 0 {
		delete(s.children, domain)
	}
}

// Cases returns domain's cases sorted by case id, without child_cases; changing them does not change the server's.
func (s *Server) Cases(domain string) []commcare.Case {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := slices.Sorted(maps.Keys(s.cases[domain]))
	out := make([]commcare.Case, 0, len(ids))
	for _, id := range ids {
		out = append(out, copyCase(*s.cases[domain][id]))
	}
	return out
}

// Case returns the case as GET /a/<domain>/api/v0.5/case/<id>/?child_cases__full=true would, and whether domain
// has it.
func (s *Server) Case(domain, caseID string) (commcare.Case, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.cases[domain][caseID]
	if !ok {
		return commcare.Case{}, false
	}
	return s.withChildren(domain, *c), true
}

// Domains returns the domains that hold cases, sorted.
func (s *Server) Domains() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Sorted(maps.Keys(s.cases))
}

// UpdateCase changes a case's properties as a CommCare user editing it would: through a form of its own, so
// server_date_modified moves on and user_id becomes userID. Engine 5 must tell such edits from Viaduct's own.
func (s *Server) UpdateCase(domain, caseID string, props map[string]string, userID string) error {
	return s.editCase(domain, caseID, userID, func(c *commcare.Case, _ string) {
		for k, v := range props {
			c.Properties[k] = v
		}
	})
}

// CloseCase closes a case as a CommCare user would, so tests can check closed cases are left alone.
func (s *Server) CloseCase(domain, caseID, userID string) error {
	return s.editCase(domain, caseID, userID, func(c *commcare.Case, modified string) {
		c.Closed = true
		c.DateClosed = &modified
	})
}

func (s *Server) editCase(domain, caseID, userID string, edit func(c *commcare.Case, modified string)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	stored, ok := s.cases[domain][caseID]
	if !ok {
		return fmt.Errorf("commcaretest: no case %s in %s", caseID, domain)
	}
	c := copyCase(*stored)
	stamp := s.stamp()
	modified := stamp.Format(serverTimeLayout)
	edit(&c, modified)
	c.UserID = userID
	c.DateModified = modified
	c.ServerDateModified = modified
	c.IndexedOn = stamp.Format(indexedOnLayout)
	c.XFormIDs = append(c.XFormIDs, newUUID())
	s.storeCase(domain, &c)
	s.forwardLocked(domain, caseID)
	return nil
}

// stamp returns the server clock's time, in CommCare's microsecond precision, strictly after the last stamp, so
// cases changed one after the other list in that order. The caller holds s.mu.
func (s *Server) stamp() time.Time {
	t := s.now().UTC().Truncate(time.Microsecond)
	if !t.After(s.lastStamp) {
		t = s.lastStamp.Add(time.Microsecond)
	}
	s.lastStamp = t
	return t
}

// withChildren returns a copy of c with child_cases filled in from the domain's child index, as CommCare does for
// child_cases__full: every case of the domain that indexes c (whatever the index is called), one level deep. The
// caller holds s.mu.
func (s *Server) withChildren(domain string, c commcare.Case) commcare.Case {
	out := copyCase(c)
	out.ChildCases = make(map[string]commcare.Case)
	for _, id := range s.children[domain][c.CaseID] {
		child := copyCase(*s.cases[domain][id])
		if s.childCaseTypeField {
			child.CaseType = child.Type()
		}
		out.ChildCases[id] = child
	}
	return out
}

func (s *Server) serveCase(w http.ResponseWriter, r *http.Request, domain, caseID string) {
	s.mu.Lock()
	stored, ok := s.cases[domain][caseID]
	var c commcare.Case
	if ok {
		c = copyCase(*stored)
		if r.URL.Query().Get("child_cases__full") == "true" {
			c = s.withChildren(domain, c)
		}
	}
	s.mu.Unlock()
	if !ok {
		// CommCare answers an unknown case with an empty 404.
		w.WriteHeader(http.StatusNotFound)
		return
	}
	writeJSON(w, http.StatusOK, c)
}

// caseFilter is a parsed case list query.
type caseFilter struct {
	externalID, caseType, ownerID string
	serverModifiedStart           time.Time
	indexedOnStart                time.Time
	childCases                    bool
	limit, offset                 int
}

func parseCaseFilter(q url.Values) (caseFilter, error) {
	f := caseFilter{
		externalID: q.Get("external_id"),
		caseType:   q.Get("type"),
		ownerID:    q.Get("owner_id"),
		childCases: q.Get("child_cases__full") == "true",
		limit:      defaultPageSize,
	}
	var err error
	if v := q.Get("limit"); v != "" {
		if f.limit, err = strconv.Atoi(v); err != nil || f.limit < 0 {
			return f, fmt.Errorf("invalid limit %q: a whole number of cases is needed", v)
		}
		// Tastypie reads 0 as "as many as allowed" and caps anything larger without complaint.
		if f.limit == 0 || f.limit > maxPageSize {
			f.limit = maxPageSize
		}
	}
	if v := q.Get("offset"); v != "" {
		if f.offset, err = strconv.Atoi(v); err != nil || f.offset < 0 {
			return f, fmt.Errorf("invalid offset %q: a whole number of cases is needed", v)
		}
	}
	for _, start := range []struct {
		key string
		t   *time.Time
	}{{"server_date_modified_start", &f.serverModifiedStart}, {"indexed_on_start", &f.indexedOnStart}} {
		if v := q.Get(start.key); v != "" {
			if *start.t, err = commcare.ParseTime(v); err != nil {
				return f, fmt.Errorf("invalid %s %q: a date or date-time is needed", start.key, v)
			}
		}
	}
	return f, nil
}

func (f caseFilter) match(e listEntry) bool {
	c := e.c
	switch {
	case f.externalID != "" && commcare.PropertyText(c.Properties["external_id"]) != f.externalID,
		f.caseType != "" && e.caseType != f.caseType,
		f.ownerID != "" && commcare.PropertyText(c.Properties["owner_id"]) != f.ownerID:
		return false
	case !f.serverModifiedStart.IsZero() && e.serverModified.Before(f.serverModifiedStart),
		!f.indexedOnStart.IsZero() && e.indexedOn.Before(f.indexedOnStart):
		return false
	}
	return true
}

// listEntry is a stored case with its type and timestamps read once, for listing.
type listEntry struct {
	c                         *commcare.Case
	caseType                  string
	serverModified, indexedOn time.Time
}

// listOrder returns domain's cases in the order the case list serves them, so that pages neither skip nor repeat
// cases while nothing changes: by server_date_modified, then case id. The caller holds s.mu and only reads it.
func (s *Server) listOrder(domain string) []listEntry {
	if entries, ok := s.listed[domain]; ok {
		return entries
	}
	entries := make([]listEntry, 0, len(s.cases[domain]))
	for _, c := range s.cases[domain] {
		entries = append(entries, listEntry{c: c, caseType: c.Type(), serverModified: parsedTime(c.ServerDateModified),
			indexedOn: parsedTime(c.IndexedOn)})
	}
	slices.SortFunc(entries, func(a, b listEntry) int {
		if c := a.serverModified.Compare(b.serverModified); c != 0 {
			return c
		}
		return strings.Compare(a.c.CaseID, b.c.CaseID)
	})
	s.listed[domain] = entries
	return entries
}

// parsedTime reads a stored timestamp; a seeded one CommCare could not have written sorts first.
func parsedTime(s string) time.Time {
	t, _ := commcare.ParseTime(s)
	return t
}

// BeforeCaseList makes the server call f before it reads the cases for each case list request it serves: n counts
// domain's served list requests from 1, and query is the request's. f can change cases (UpdateCase, PutCase) the
// way contact tracers do while a client pages through the list, which a test cannot otherwise time. It runs outside
// the server's lock, for several domains at once when the client asks in parallel; nil removes it. Requests a fault
// answers instead are neither counted nor passed to f.
func (s *Server) BeforeCaseList(f func(domain string, n int, query url.Values)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.beforeCaseList = f
}

func (s *Server) serveCaseList(w http.ResponseWriter, r *http.Request, domain string) {
	f, err := parseCaseFilter(r.URL.Query())
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}

	s.mu.Lock()
	if s.caseLists == nil {
		s.caseLists = make(map[string]int)
	}
	s.caseLists[domain]++
	n, before := s.caseLists[domain], s.beforeCaseList
	s.mu.Unlock()
	if before != nil {
		before(domain, n, r.URL.Query())
	}

	s.mu.Lock()
	entries := s.listOrder(domain)
	// Nothing before the first case modified at or after the start can match.
	entries = entries[sort.Search(len(entries), func(i int) bool {
		return !entries[i].serverModified.Before(f.serverModifiedStart)
	}):]
	var page []*commcare.Case
	matched := 0
	for _, e := range entries {
		if !f.match(e) {
			continue
		}
		if matched >= f.offset && matched-f.offset < f.limit {
			page = append(page, e.c)
		}
		matched++
	}
	objects := make([]commcare.Case, 0, len(page))
	for _, c := range page {
		if f.childCases {
			objects = append(objects, s.withChildren(domain, *c))
		} else {
			objects = append(objects, copyCase(*c))
		}
	}
	s.mu.Unlock()

	meta := commcare.CasePageMeta{Limit: f.limit, Offset: f.offset, TotalCount: matched}
	if f.offset+f.limit < matched {
		next := pageLink(r.URL.RawQuery, f.limit, f.offset+f.limit)
		meta.Next = &next
	}
	if f.offset > 0 {
		previous := pageLink(r.URL.RawQuery, f.limit, max(f.offset-f.limit, 0))
		meta.Previous = &previous
	}
	writeJSON(w, http.StatusOK, commcare.CasePage{Meta: meta, Objects: objects})
}

// pageLink is a next or previous link as CommCare writes it: a bare query string repeating the request's
// parameters, in their order, followed by limit and offset ("?owner_id=…&limit=20&offset=20").
func pageLink(rawQuery string, limit, offset int) string {
	var parts []string
	for part := range strings.SplitSeq(rawQuery, "&") {
		key, _, _ := strings.Cut(part, "=")
		if key, err := url.QueryUnescape(key); part == "" || err == nil && (key == "limit" || key == "offset") {
			continue
		}
		parts = append(parts, part)
	}
	parts = append(parts, "limit="+strconv.Itoa(limit), "offset="+strconv.Itoa(offset))
	return "?" + strings.Join(parts, "&")
}

// copyCase returns a copy of c that shares nothing changeable with it, with empty collections where CommCare sends
// empty objects rather than null.
func copyCase(c commcare.Case) commcare.Case {
	out := c
	if c.DateClosed != nil {
		closed := *c.DateClosed
		out.DateClosed = &closed
	}
	out.XFormIDs = append([]string{}, c.XFormIDs...)
	out.Indices = make(map[string]commcare.CaseIndex, len(c.Indices))
	maps.Copy(out.Indices, c.Indices)
	out.Properties = make(map[string]any, len(c.Properties))
	maps.Copy(out.Properties, c.Properties)
	out.ChildCases = nil
	if c.ChildCases != nil {
		out.ChildCases = make(map[string]commcare.Case, len(c.ChildCases))
		for id, child := range c.ChildCases {
			out.ChildCases[id] = copyCase(child)
		}
	}
	return out
}

// newUUID returns a random version 4 UUID, the form CommCare's form and case ids take.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "encoding the response: "+err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(data, '\n'))
}
