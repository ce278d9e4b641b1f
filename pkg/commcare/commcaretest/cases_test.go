package commcaretest_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/viaduct-nys/viaduct/pkg/commcare"
	"github.com/viaduct-nys/viaduct/pkg/commcare/commcaretest"
)

func TestGetCase(t *testing.T) {
	t.Parallel()

	seed := func(s *commcaretest.Server) {
		s.PutCase(midsomer, patientCase("patient-1", "ext-1", "2020-06-03T18:53:54.802833Z"))
		s.PutCase(midsomer, commcare.Case{
			CaseID:     "lab-1",
			Indices:    map[string]commcare.CaseIndex{"parent": {CaseID: "patient-1", CaseType: "patient", Relationship: "extension"}},
			Properties: map[string]any{"case_type": "lab_result", "owner_id": "-"},
		})
		s.PutCase(midsomer, commcare.Case{CaseID: "unrelated", Properties: map[string]any{"case_type": "patient"}})
	}

	t.Run("WithChildren", func(t *testing.T) {
		t.Parallel()
		s, _ := startTest(t, commcaretest.Options{})
		seed(s)
		c := getCase(t, s, midsomer, "patient-1")
		require.Equal(t, "patient-1", c.CaseID)
		require.Equal(t, "patient-1", c.ID)
		require.Equal(t, midsomer, c.Domain)
		require.Equal(t, "2020-06-03T18:53:54.802833Z", c.ServerDateModified)
		require.Equal(t, "2020-06-03T18:53:54.802833", c.IndexedOn)
		require.Equal(t, "ext-1", c.Property("external_id"))
		require.Equal(t, []string{"lab-1"}, keys(c.ChildCases))
		lab := c.ChildCases["lab-1"]
		require.Equal(t, "lab_result", lab.Type())
		require.Empty(t, lab.CaseType, "child objects carry their type in properties unless asked otherwise")
		require.Equal(t, commcare.CaseIndex{CaseID: "patient-1", CaseType: "patient", Relationship: "extension"},
			lab.Indices["parent"])

		stored, ok := s.Case(midsomer, "patient-1")
		require.True(t, ok)
		require.Equal(t, c, stored, "Case returns what the API serves")
	})

	t.Run("Shape", func(t *testing.T) {
		t.Parallel()
		s, _ := startTest(t, commcaretest.Options{})
		seed(s)
		resp, body := send(t, s, http.MethodGet, "/a/"+midsomer+"/api/v0.5/case/unrelated/?format=json", "")
		require.Equal(t, http.StatusOK, resp.StatusCode)
		var raw map[string]any
		require.NoError(t, json.Unmarshal([]byte(body), &raw))
		require.Nil(t, raw["date_closed"])
		require.Contains(t, raw, "date_closed")
		require.Equal(t, false, raw["closed"])
		require.Equal(t, map[string]any{}, raw["indices"])
		require.Equal(t, []any{}, raw["xform_ids"])
		require.Equal(t, "", raw["resource_uri"])
		require.NotContains(t, raw, "child_cases", "children only when child_cases__full=true")
	})

	t.Run("ChildCaseTypeField", func(t *testing.T) {
		t.Parallel()
		s, _ := startTest(t, commcaretest.Options{ChildCaseTypeField: true})
		seed(s)
		c := getCase(t, s, midsomer, "patient-1")
		require.Equal(t, "lab_result", c.ChildCases["lab-1"].CaseType)
		require.Empty(t, c.CaseType, "only child objects get the top-level case_type")
	})

	t.Run("NotFound", func(t *testing.T) {
		t.Parallel()
		s, _ := startTest(t, commcaretest.Options{})
		seed(s)
		for _, target := range []string{
			"/a/" + midsomer + "/api/v0.5/case/no-such-case/?format=json&child_cases__full=true",
			"/a/" + yggdrasil + "/api/v0.5/case/patient-1/?format=json&child_cases__full=true",
		} {
			resp, body := send(t, s, http.MethodGet, target, "")
			require.Equal(t, http.StatusNotFound, resp.StatusCode, target)
			require.Empty(t, body, target)
		}
		resp, _ := send(t, s, http.MethodGet, "/a/ny-albany-cdcms/api/v0.5/case/patient-1/", "")
		require.Equal(t, http.StatusNotFound, resp.StatusCode, "a domain the county list does not name")
	})

	t.Run("RedirectsWithoutSlash", func(t *testing.T) {
		t.Parallel()
		s, _ := startTest(t, commcaretest.Options{})
		seed(s)
		resp, body := send(t, s, http.MethodGet, "/a/"+midsomer+"/api/v0.5/case/patient-1?format=json&child_cases__full=true", "")
		require.Equal(t, http.StatusOK, resp.StatusCode, body)
		var c commcare.Case
		require.NoError(t, json.Unmarshal([]byte(body), &c))
		require.Len(t, c.ChildCases, 1, "the query survives the redirect")
		requests := s.Requests()
		require.Equal(t, "/a/"+midsomer+"/api/v0.5/case/patient-1/", requests[len(requests)-1].Path)
	})

	t.Run("RootDomain", func(t *testing.T) {
		t.Parallel()
		s, _ := startTest(t, commcaretest.Options{RootDomain: "uk-root-cdcms"})
		s.PutCase("uk-root-cdcms", patientCase("p", "", ""))
		require.Equal(t, "p", getCase(t, s, "uk-root-cdcms", "p").CaseID)
	})

	t.Run("RequiresAPIKey", func(t *testing.T) {
		t.Parallel()
		s, _ := startTest(t, commcaretest.Options{})
		seed(s)
		resp, body := send(t, s, http.MethodGet, "/a/"+midsomer+"/api/v0.5/case/patient-1/", "", "ApiKey x:y")
		require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
		require.Contains(t, body, `"error"`)
	})
}

func TestPutCase(t *testing.T) {
	t.Parallel()

	t.Run("Defaults", func(t *testing.T) {
		t.Parallel()
		s, _ := startTest(t, commcaretest.Options{})
		s.PutCase(midsomer, commcare.Case{CaseID: "c", CaseType: "patient"})
		c, ok := s.Case(midsomer, "c")
		require.True(t, ok)
		require.Equal(t, "2020-06-10T01:02:03.000000Z", c.ServerDateModified)
		require.Equal(t, "2020-06-10T01:02:03.000000", c.IndexedOn)
		require.Equal(t, c.ServerDateModified, c.ServerDateOpened)
		require.Equal(t, "patient", c.Property("case_type"))
		require.Equal(t, []string{midsomer}, s.Domains())
	})

	t.Run("ChildCasesAndMoves", func(t *testing.T) {
		t.Parallel()
		s, _ := startTest(t, commcaretest.Options{})
		parent := patientCase("p", "", "2020-06-03T18:53:54.802833Z")
		parent.ChildCases = map[string]commcare.Case{
			"contact": {CaseID: "contact", Properties: map[string]any{"case_type": "contact"}},
		}
		s.PutCase(yggdrasil, parent)
		require.Equal(t, []string{"contact", "p"}, ids(s.Cases(yggdrasil)))
		c, _ := s.Case(yggdrasil, "p")
		require.Equal(t, commcare.CaseIndex{CaseID: "p", CaseType: "patient", Relationship: "child"},
			c.ChildCases["contact"].Indices["parent"])

		s.PutCase(midsomer, patientCase("p", "", ""))
		require.Equal(t, []string{"contact"}, ids(s.Cases(yggdrasil)), "a case id lives in one domain")
		require.Equal(t, []string{"p"}, ids(s.Cases(midsomer)))
		require.Equal(t, []string{yggdrasil, midsomer}, s.Domains(), "sorted")
	})

	t.Run("Copies", func(t *testing.T) {
		t.Parallel()
		s, _ := startTest(t, commcaretest.Options{})
		c := patientCase("p", "", "")
		s.PutCase(midsomer, c)
		c.Properties["case_name"] = "changed"
		got := s.Cases(midsomer)
		require.Equal(t, "Patient p", got[0].Property("case_name"))
		got[0].Properties["case_name"] = "changed"
		got[0].XFormIDs = append(got[0].XFormIDs, "x")
		stored, _ := s.Case(midsomer, "p")
		require.Equal(t, "Patient p", stored.Property("case_name"))
		require.Empty(t, stored.XFormIDs)
	})

	t.Run("UpdateCase", func(t *testing.T) {
		t.Parallel()
		s, clk := startTest(t, commcaretest.Options{})
		s.PutCase(midsomer, patientCase("p", "", "2020-06-03T18:53:54.802833Z"))
		clk.Set(base.Add(time.Hour))
		require.NoError(t, s.UpdateCase(midsomer, "p", map[string]string{"full_name": "Updated Full Name"}, "worker"))
		c, _ := s.Case(midsomer, "p")
		require.Equal(t, "Updated Full Name", c.Property("full_name"))
		require.Equal(t, "Patient p", c.Property("case_name"), "other properties stay")
		require.Equal(t, "worker", c.UserID)
		require.Equal(t, "2020-06-10T02:02:03.000000Z", c.ServerDateModified)
		require.Equal(t, "2020-06-10T02:02:03.000000", c.IndexedOn)
		require.Equal(t, c.ServerDateModified, c.DateModified)
		require.Len(t, c.XFormIDs, 1)

		require.NoError(t, s.UpdateCase(midsomer, "p", nil, "worker"))
		again, _ := s.Case(midsomer, "p")
		require.Equal(t, "2020-06-10T02:02:03.000001Z", again.ServerDateModified, "stamps never repeat")

		require.NoError(t, s.CloseCase(midsomer, "p", "worker"))
		closed, _ := s.Case(midsomer, "p")
		require.True(t, closed.Closed)
		require.Equal(t, closed.ServerDateModified, *closed.DateClosed)

		require.Error(t, s.UpdateCase(yggdrasil, "p", nil, "worker"))
		require.Error(t, s.CloseCase(midsomer, "nope", "worker"))
	})
}

func TestCaseList(t *testing.T) {
	t.Parallel()

	// seed stores n patient cases a second apart from 2020-06-01, with ids case-00…, alternating owners.
	seed := func(s *commcaretest.Server, n int) {
		for i := range n {
			c := patientCase(fmt.Sprintf("case-%02d", i), fmt.Sprintf("ext-%d", i%3),
				time.Date(2020, 6, 1, 0, 0, i, 0, time.UTC).Format("2006-01-02T15:04:05.000000Z"))
			c.Properties["owner_id"] = fmt.Sprintf("owner-%d", i%2)
			s.PutCase(midsomer, c)
		}
	}

	t.Run("Filters", func(t *testing.T) {
		t.Parallel()
		s, _ := startTest(t, commcaretest.Options{})
		seed(s, 6)
		s.PutCase(midsomer, commcare.Case{CaseID: "lab", ServerDateModified: "2020-06-01T00:00:00Z",
			Indices:    map[string]commcare.CaseIndex{"parent": {CaseID: "case-00", CaseType: "patient"}},
			Properties: map[string]any{"case_type": "lab_result", "external_id": "ext-0"}})
		s.PutCase(yggdrasil, patientCase("elsewhere", "ext-0", ""))

		require.Equal(t, []string{"case-00", "lab", "case-03"}, ids(listCases(t, s, midsomer, "?external_id=ext-0").Objects))
		require.Equal(t, []string{"case-00", "case-03"},
			ids(listCases(t, s, midsomer, "?external_id=ext-0&type=patient").Objects))
		require.Equal(t, []string{"case-01", "case-03", "case-05"},
			ids(listCases(t, s, midsomer, "?owner_id=owner-1&type=patient").Objects))
		require.Equal(t, []string{"lab"}, ids(listCases(t, s, midsomer, "?type=lab_result").Objects))

		page := listCases(t, s, midsomer, "?external_id=ext-0&type=patient&child_cases__full=true")
		require.Equal(t, []string{"lab"}, keys(page.Objects[0].ChildCases))
		require.Empty(t, page.Objects[1].ChildCases)
		require.Nil(t, listCases(t, s, midsomer, "?external_id=ext-0&type=patient").Objects[0].ChildCases)
	})

	t.Run("Empty", func(t *testing.T) {
		t.Parallel()
		s, _ := startTest(t, commcaretest.Options{})
		seed(s, 2)
		for _, domain := range []string{midsomer, yggdrasil} {
			resp, body := send(t, s, http.MethodGet, "/a/"+domain+"/api/v0.5/case/?external_id=nobody", "")
			require.Equal(t, http.StatusOK, resp.StatusCode)
			require.JSONEq(t, `{"meta": {"limit": 20, "offset": 0, "total_count": 0, "next": null, "previous": null},
				"objects": []}`, body)
		}
	})

	t.Run("Pagination", func(t *testing.T) {
		t.Parallel()
		s, _ := startTest(t, commcaretest.Options{})
		seed(s, 45)
		// Two cases modified at the same instant are ordered by id.
		s.PutCase(midsomer, patientCase("case-aa", "", "2020-06-01T00:00:10Z"))

		var got []string
		query := "?type=patient&limit=20"
		var metas []commcare.CasePageMeta
		for range 10 {
			page := listCases(t, s, midsomer, query)
			metas = append(metas, page.Meta)
			got = append(got, ids(page.Objects)...)
			if page.Meta.Next == nil {
				break
			}
			query = *page.Meta.Next
		}
		require.Len(t, metas, 3)
		require.Equal(t, "?type=patient&limit=20&offset=20", *metas[0].Next, "filters are kept, in request order")
		require.Nil(t, metas[0].Previous)
		require.Equal(t, "?type=patient&limit=20&offset=0", *metas[1].Previous)
		require.Equal(t, commcare.CasePageMeta{Limit: 20, Offset: 40, TotalCount: 46, Previous: metas[2].Previous},
			metas[2])

		var want []string
		for i := range 45 {
			want = append(want, fmt.Sprintf("case-%02d", i))
			if i == 10 {
				want = append(want, "case-aa")
			}
		}
		require.Equal(t, want, got)
	})

	t.Run("LimitAndOffset", func(t *testing.T) {
		t.Parallel()
		s, _ := startTest(t, commcaretest.Options{})
		seed(s, 25)
		page := listCases(t, s, midsomer, "")
		require.Len(t, page.Objects, 20, "CommCare's default page")
		require.Equal(t, "?limit=20&offset=20", *page.Meta.Next)
		page = listCases(t, s, midsomer, "?limit=100000")
		require.Equal(t, 5000, page.Meta.Limit, "capped at CommCare's maximum")
		require.Len(t, page.Objects, 25)
		require.Nil(t, page.Meta.Next)
		page = listCases(t, s, midsomer, "?offset=24&limit=5")
		require.Equal(t, []string{"case-24"}, ids(page.Objects))
		require.Equal(t, "?limit=5&offset=19", *page.Meta.Previous)
		page = listCases(t, s, midsomer, "?offset=100")
		require.Empty(t, page.Objects)
		require.Equal(t, 25, page.Meta.TotalCount)
		require.Nil(t, page.Meta.Next)
	})

	t.Run("ModifiedSince", func(t *testing.T) {
		t.Parallel()
		s, _ := startTest(t, commcaretest.Options{})
		seed(s, 5)
		s.PutCase(midsomer, patientCase("day-before", "", "2020-05-31T23:59:59.999999Z"))
		require.Equal(t, []string{"case-02", "case-03", "case-04"},
			ids(listCases(t, s, midsomer, "?server_date_modified_start=2020-06-01T00:00:02").Objects),
			"the boundary is inclusive")
		require.Equal(t, []string{"case-03", "case-04"},
			ids(listCases(t, s, midsomer, "?server_date_modified_start=2020-06-01T00:00:02.000001Z").Objects))
		require.Equal(t, []string{"case-00", "case-01", "case-02", "case-03", "case-04"},
			ids(listCases(t, s, midsomer, "?server_date_modified_start=2020-06-01").Objects),
			"a date is its midnight, UTC")
		require.Equal(t, []string{"case-04"},
			ids(listCases(t, s, midsomer, "?"+commcare.CaseQuery{
				ServerModifiedSince: time.Date(2020, 6, 1, 0, 0, 4, 0, time.UTC),
			}.Values().Encode()).Objects), "the client's own rendering")
		require.Equal(t, []string{"case-03", "case-04"},
			ids(listCases(t, s, midsomer, "?indexed_on_start=2020-06-01T00:00:03&type=patient").Objects))
	})

	t.Run("FollowsChanges", func(t *testing.T) {
		t.Parallel()
		s, _ := startTest(t, commcaretest.Options{})
		seed(s, 3)
		lab := commcare.Case{CaseID: "lab", Properties: map[string]any{"case_type": "lab_result"},
			Indices: map[string]commcare.CaseIndex{"parent": {CaseID: "case-00", CaseType: "patient"}}}
		s.PutCase(midsomer, lab)
		page := listCases(t, s, midsomer, "?type=patient&child_cases__full=true")
		require.Equal(t, []string{"case-00", "case-01", "case-02"}, ids(page.Objects))
		require.Equal(t, []string{"lab"}, keys(page.Objects[0].ChildCases))

		// An edited case lists last; a child given another parent is listed with that one only.
		require.NoError(t, s.UpdateCase(midsomer, "case-00", map[string]string{"interviewed": "yes"}, "worker"))
		lab.Indices = map[string]commcare.CaseIndex{"parent": {CaseID: "case-01", CaseType: "patient"}}
		s.PutCase(midsomer, lab)
		page = listCases(t, s, midsomer, "?type=patient&child_cases__full=true")
		require.Equal(t, []string{"case-01", "case-02", "case-00"}, ids(page.Objects))
		require.Equal(t, []string{"lab"}, keys(page.Objects[0].ChildCases))
		require.Empty(t, page.Objects[2].ChildCases)
		require.Equal(t, "yes", page.Objects[2].Property("interviewed"))

		// A child moved to another domain leaves its parent's child cases.
		s.PutCase(yggdrasil, lab)
		page = listCases(t, s, midsomer, "?type=patient&child_cases__full=true")
		require.Empty(t, page.Objects[0].ChildCases)
		require.Equal(t, 3, page.Meta.TotalCount)
	})

	t.Run("ServerClockOrder", func(t *testing.T) {
		t.Parallel()
		s, clk := startTest(t, commcaretest.Options{})
		// Seeded in reverse id order at one clock reading: the server's stamps still put them in seeding order.
		for _, id := range []string{"c", "b", "a"} {
			s.PutCase(midsomer, commcare.Case{CaseID: id})
		}
		clk.Set(base.Add(-time.Hour)) // a clock going backwards does not reorder anything either
		s.PutCase(midsomer, commcare.Case{CaseID: "0"})
		require.Equal(t, []string{"c", "b", "a", "0"}, ids(listCases(t, s, midsomer, "").Objects))
	})

	t.Run("BeforeCaseList", func(t *testing.T) {
		t.Parallel()
		s, _ := startTest(t, commcaretest.Options{})
		seed(s, 5)
		type call struct {
			domain string
			n      int
			offset string
		}
		var (
			mu    sync.Mutex
			calls []call
		)
		s.BeforeCaseList(func(domain string, n int, query url.Values) {
			mu.Lock()
			calls = append(calls, call{domain, n, query.Get("offset")})
			mu.Unlock()
			if domain == midsomer && n == 2 {
				// A contact tracer edits a case of the first page while the second is asked for.
				assert.NoError(t, s.UpdateCase(domain, "case-00", map[string]string{"interviewed": "yes"}, "tracer"))
			}
		})
		require.Equal(t, []string{"case-00", "case-01"}, ids(listCases(t, s, midsomer, "?limit=2").Objects))
		s.Fail(http.MethodGet, "/a/"+midsomer+"/api/v0.5/case/", commcaretest.Fault{Status: http.StatusTooManyRequests, Times: 1})
		resp, _ := send(t, s, http.MethodGet, "/a/"+midsomer+"/api/v0.5/case/?limit=2&offset=2", "")
		require.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
		// The edit lands before the page is read: everything behind case-00 moved up one place, so paging by offset
		// now passes over case-02, as it did in issue 14.
		require.Equal(t, []string{"case-03", "case-04"}, ids(listCases(t, s, midsomer, "?limit=2&offset=2").Objects))
		require.Equal(t, []string{"case-00"}, ids(listCases(t, s, midsomer, "?limit=2&offset=4").Objects))
		listCases(t, s, yggdrasil, "")
		s.BeforeCaseList(nil)
		listCases(t, s, midsomer, "")
		mu.Lock()
		defer mu.Unlock()
		require.Equal(t, []call{{midsomer, 1, ""}, {midsomer, 2, "2"}, {midsomer, 3, "4"}, {yggdrasil, 1, ""}}, calls,
			"counted per domain; the rate-limited request never reached the list")
	})

	t.Run("BadQuery", func(t *testing.T) {
		t.Parallel()
		s, _ := startTest(t, commcaretest.Options{})
		for _, query := range []string{
			"?limit=x", "?limit=-1", "?offset=-5", "?offset=1.5",
			"?server_date_modified_start=yesterday", "?indexed_on_start=2020-13-01",
		} {
			resp, body := send(t, s, http.MethodGet, "/a/"+midsomer+"/api/v0.5/case/"+query, "")
			require.Equal(t, http.StatusBadRequest, resp.StatusCode, query)
			require.Contains(t, body, `"error"`, query)
		}
	})

	t.Run("UnknownDomain", func(t *testing.T) {
		t.Parallel()
		s, _ := startTest(t, commcaretest.Options{})
		resp, _ := send(t, s, http.MethodGet, "/a/nowhere/api/v0.5/case/?type=patient", "")
		require.Equal(t, http.StatusNotFound, resp.StatusCode)
	})
}

func ids(cases []commcare.Case) []string {
	out := []string{}
	for _, c := range cases {
		out = append(out, c.CaseID)
	}
	return out
}

func keys(m map[string]commcare.Case) []string {
	out := []string{}
	for k := range m {
		out = append(out, k)
	}
	return out
}
