package commcaretest_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/viaduct-nys/viaduct/pkg/commcare"
	"github.com/viaduct-nys/viaduct/pkg/commcare/commcaretest"
)

const successBody = `<OpenRosaResponse xmlns="http://openrosa.org/http/response">` +
	`<message nature="submit_success">   √   </message></OpenRosaResponse>`

// requireSuccess checks a receiver response is CommCare's success.
func requireSuccess(t *testing.T, resp *http.Response, body string) {
	t.Helper()
	require.Equal(t, http.StatusCreated, resp.StatusCode, body)
	require.Equal(t, "text/xml", resp.Header.Get("Content-Type"))
	require.Equal(t, successBody, body)
}

// requireSubmitError checks a receiver response is a processing failure mentioning want.
func requireSubmitError(t *testing.T, resp *http.Response, body, want string) {
	t.Helper()
	require.Equal(t, http.StatusCreated, resp.StatusCode, body)
	require.Contains(t, body, `nature="submit_error"`)
	require.NotContains(t, body, "submit_success")
	require.Contains(t, body, want)
}

func TestReceiver(t *testing.T) {
	t.Parallel()

	t.Run("CreatePatientAndLabResult", func(t *testing.T) {
		t.Parallel()
		s, _ := startTest(t, commcaretest.Options{})
		resp, body := submit(t, s, midsomer, specForm("lab-case-id", "instance-1"))
		requireSuccess(t, resp, body)

		patient, ok := s.Case(midsomer, "index-case-id")
		require.True(t, ok)
		require.Equal(t, commcare.Case{
			CaseID:             "index-case-id",
			ID:                 "index-case-id",
			Domain:             midsomer,
			DateModified:       "2020-06-10T01:02:03.000000Z",
			ServerDateModified: "2020-06-10T01:02:03.000000Z",
			ServerDateOpened:   "2020-06-10T01:02:03.000000Z",
			IndexedOn:          "2020-06-10T01:02:03.000000",
			OpenedBy:           "test-user-id",
			UserID:             "test-user-id",
			XFormIDs:           []string{"instance-1"},
			Indices:            map[string]commcare.CaseIndex{},
			Properties: map[string]any{
				"case_type":                    "patient",
				"case_name":                    "index-case-full-name",
				"owner_id":                     "COUNTY_LOCATION_ID",
				"date_opened":                  "2020-06-10T01:02:03.000000Z",
				"field1":                       "value1",
				"full_name":                    "index-case-full-name",
				"new_lab_result_received_date": "2020-06-10",
				"new_lab_result_specimen_collection_date": "2020-06-10",
			},
			ChildCases: patient.ChildCases,
		}, patient)

		require.Equal(t, []string{"lab-case-id"}, keys(patient.ChildCases))
		lab := patient.ChildCases["lab-case-id"]
		require.Equal(t, map[string]commcare.CaseIndex{
			"parent": {CaseID: "index-case-id", CaseType: "patient", Relationship: "extension"},
		}, lab.Indices)
		require.Equal(t, map[string]any{
			"case_type": "lab_result", "case_name": "", "owner_id": "-", "date_opened": "2020-06-10T01:02:03.000000Z",
			"accession_number": "lab_result_accession_number", "field1": "value1", "field2": "value2",
		}, lab.Properties)
		require.Equal(t, "2020-06-10T01:02:03.000000Z", lab.DateModified, "from meta/timeEnd")
		require.Equal(t, "test-user-id", lab.UserID, "from meta/userID")

		// The API serves what Case returns.
		require.Equal(t, patient, getCase(t, s, midsomer, "index-case-id"))
		require.Equal(t, []string{"index-case-id", "lab-case-id"}, ids(s.Cases(midsomer)))

		require.Equal(t, 1, s.Submissions(midsomer))
		require.Zero(t, s.Submissions(yggdrasil))
		forms := s.Forms(midsomer)
		require.Len(t, forms, 1)
		f := forms[0]
		require.Equal(t, "http://geometer.io/viaduct-nys", f.XMLNS)
		require.Equal(t, "Register a New Case", f.Name)
		require.Equal(t, "instance-1", f.InstanceID)
		require.Equal(t, "test-username", f.Username)
		require.Equal(t, "Formplayer", f.DeviceID)
		require.Equal(t, midsomer, f.Domain)
		require.Equal(t, base, f.ReceivedOn)
		require.Equal(t, specForm("lab-case-id", "instance-1"), string(f.Body))
		require.Len(t, f.Cases, 2)
		require.Equal(t, &commcaretest.CaseCreate{CaseType: "lab_result", OwnerID: "-"}, f.Cases[1].Create)
	})

	t.Run("UpdateOverwrites", func(t *testing.T) {
		t.Parallel()
		s, clk := startTest(t, commcaretest.Options{})
		mustSubmit(t, s, midsomer, specForm("lab-1", "instance-1"))
		clk.Set(base.Add(time.Minute))
		update := strings.NewReplacer(
			"<n0:field1>value1</n0:field1>\n      <n0:full_name>", "<n0:field1>value2</n0:field1>\n      <n0:full_name>",
			"<n0:case_name>index-case-full-name</n0:case_name>", "<n0:case_name>Renamed</n0:case_name>",
			`date_modified="2020-06-10T01:02:03Z" user_id="test-user-id"`, `date_modified="2020-06-10T01:03:03Z" user_id="other-user"`,
		).Replace(specForm("lab-2", "instance-2"))
		mustSubmit(t, s, midsomer, update)

		patient, _ := s.Case(midsomer, "index-case-id")
		require.Equal(t, "value2", patient.Property("field1"))
		require.Equal(t, "Renamed", patient.Property("case_name"))
		require.Equal(t, "index-case-full-name", patient.Property("full_name"))
		require.Equal(t, "2020-06-10T01:03:03.000000Z", patient.DateModified)
		require.Equal(t, "2020-06-10T01:03:03.000000Z", patient.ServerDateModified)
		require.Equal(t, "2020-06-10T01:02:03.000000Z", patient.ServerDateOpened, "opened once")
		require.Equal(t, "test-user-id", patient.OpenedBy)
		require.Equal(t, "other-user", patient.UserID)
		require.Equal(t, []string{"instance-1", "instance-2"}, patient.XFormIDs)
		require.ElementsMatch(t, []string{"lab-1", "lab-2"}, keys(patient.ChildCases))
		require.Equal(t, 2, s.Submissions(midsomer))
	})

	t.Run("CreateKeepsWhatItLeavesOut", func(t *testing.T) {
		t.Parallel()
		s, _ := startTest(t, commcaretest.Options{})
		mustSubmit(t, s, midsomer, form("i1",
			`<n0:case case_id="c"><n0:create><n0:case_type>patient</n0:case_type><n0:case_name>N</n0:case_name></n0:create></n0:case>`))
		c, _ := s.Case(midsomer, "c")
		require.Equal(t, "form-user", c.Property("owner_id"), "CommCare gives an unowned case to its submitter")
		mustSubmit(t, s, midsomer, form("i2",
			`<n0:case case_id="c"><n0:create><n0:case_type>patient</n0:case_type><n0:owner_id>o</n0:owner_id></n0:create></n0:case>`))
		c, _ = s.Case(midsomer, "c")
		require.Equal(t, "N", c.Property("case_name"))
		require.Equal(t, "o", c.Property("owner_id"))
	})

	t.Run("IndexMakesChild", func(t *testing.T) {
		t.Parallel()
		s, _ := startTest(t, commcaretest.Options{})
		mustSubmit(t, s, midsomer, form("i1",
			`<n0:case case_id="parent"><n0:create><n0:case_type>patient</n0:case_type></n0:create></n0:case>`,
			`<n0:case case_id="child"><n0:create><n0:case_type>contact</n0:case_type></n0:create></n0:case>`))
		parent, _ := s.Case(midsomer, "parent")
		require.Empty(t, parent.ChildCases)

		mustSubmit(t, s, midsomer, form("i2",
			`<n0:case case_id="child"><n0:index><n0:parent case_type="patient">parent</n0:parent></n0:index></n0:case>`))
		parent = getCase(t, s, midsomer, "parent")
		require.Equal(t, []string{"child"}, keys(parent.ChildCases))
		require.Equal(t, commcare.CaseIndex{CaseID: "parent", CaseType: "patient", Relationship: "child"},
			parent.ChildCases["child"].Indices["parent"], "relationship defaults to child")

		mustSubmit(t, s, midsomer, form("i3",
			`<n0:case case_id="child"><n0:index><n0:parent case_type="patient"/></n0:index></n0:case>`))
		parent = getCase(t, s, midsomer, "parent")
		require.Empty(t, parent.ChildCases, "an empty index removes it")
	})

	t.Run("Close", func(t *testing.T) {
		t.Parallel()
		s, _ := startTest(t, commcaretest.Options{})
		mustSubmit(t, s, midsomer, specForm("lab", "i1"))
		mustSubmit(t, s, midsomer, form("i2",
			`<n0:case case_id="lab" date_modified="2020-06-11T00:00:00.5Z"><n0:close/></n0:case>`))
		lab := getCase(t, s, midsomer, "lab")
		require.True(t, lab.Closed)
		require.Equal(t, "2020-06-11T00:00:00.500000Z", *lab.DateClosed)
		patient, _ := s.Case(midsomer, "index-case-id")
		require.False(t, patient.Closed)
	})

	t.Run("RejectedFormsChangeNothing", func(t *testing.T) {
		t.Parallel()
		created := `<n0:case case_id="new"><n0:create><n0:case_type>patient</n0:case_type></n0:create></n0:case>`
		for name, tc := range map[string]struct{ block, want string }{
			"MissingCaseID": {`<n0:case><n0:update><n0:x>1</n0:x></n0:update></n0:case>`, "no case_id"},
			"UnknownCase":   {`<n0:case case_id="nobody"><n0:update><n0:x>1</n0:x></n0:update></n0:case>`, "does not exist"},
			"DanglingIndex": {`<n0:case case_id="new"><n0:index><n0:parent case_type="patient">nobody</n0:parent></n0:index></n0:case>`, "InvalidCaseIndex"},
			"OtherDomain":   {`<n0:case case_id="elsewhere"><n0:update><n0:x>1</n0:x></n0:update></n0:case>`, "IllegalCaseId"},
			"BadDate":       {`<n0:case case_id="new" date_modified="yesterday"/>`, "PhoneDateValueError"},
			"LongName":      {`<n0:case case_id="new"><n0:update><n0:case_name>` + strings.Repeat("x", 256) + `</n0:case_name></n0:update></n0:case>`, "CaseValueError"},
			"ChangesExisting": {`<n0:case case_id="existing"><n0:update><n0:x>2</n0:x></n0:update></n0:case>` +
				`<n0:case case_id="nobody"><n0:close/></n0:case>`, "nobody"},
		} {
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				s, _ := startTest(t, commcaretest.Options{})
				s.PutCase(yggdrasil, commcare.Case{CaseID: "elsewhere"})
				s.PutCase(midsomer, commcare.Case{CaseID: "existing", Properties: map[string]any{"x": "1"}})
				before := s.Cases(midsomer)
				resp, body := submit(t, s, midsomer, form("instance", created, tc.block))
				requireSubmitError(t, resp, body, tc.want)
				require.Equal(t, before, s.Cases(midsomer), "a form is applied whole or not at all")
				require.Zero(t, s.Submissions(midsomer))

				// Resubmitted once fixed, the same instance is processed, not taken for a duplicate.
				mustSubmit(t, s, midsomer, form("instance", created))
				require.Zero(t, s.DuplicateSubmissions())
			})
		}
	})

	t.Run("SubmitErrorStatus", func(t *testing.T) {
		t.Parallel()
		s, _ := startTest(t, commcaretest.Options{SubmitErrorStatus: http.StatusUnprocessableEntity})
		resp, body := submit(t, s, midsomer, form("i", `<n0:case/>`))
		require.Equal(t, http.StatusUnprocessableEntity, resp.StatusCode)
		require.Contains(t, body, "submit_error")
	})

	t.Run("Malformed", func(t *testing.T) {
		t.Parallel()
		s, _ := startTest(t, commcaretest.Options{})
		for _, body := range []string{
			"",
			"not xml",
			"<data>",
			"<data></data><data></data>",
			`<data><n0:case case_id="x"></data>`,
			`<?xml version="1.0" encoding="ISO-8859-1"?><data/>`,
			specForm("lab", "i")[:400],
		} {
			resp, text := submit(t, s, midsomer, body)
			require.Equal(t, http.StatusBadRequest, resp.StatusCode, body)
			require.NotContains(t, text, "submit_success")
		}
		require.Empty(t, s.Cases(midsomer))
	})

	t.Run("UnknownDomain", func(t *testing.T) {
		t.Parallel()
		s, _ := startTest(t, commcaretest.Options{})
		resp, _ := submit(t, s, "ny-albany-cdcms", specForm("lab", "i"))
		require.Equal(t, http.StatusNotFound, resp.StatusCode)
		require.Empty(t, s.Domains())
	})

	t.Run("DuplicateInstanceAppliedOnce", func(t *testing.T) {
		t.Parallel()
		s, clk := startTest(t, commcaretest.Options{})
		mustSubmit(t, s, midsomer, specForm("lab", "same"))
		clk.Set(base.Add(time.Hour))
		mustSubmit(t, s, midsomer, specForm("lab", "same"))
		require.Equal(t, 1, s.Submissions(midsomer))
		require.Equal(t, 1, s.DuplicateSubmissions())
		patient, _ := s.Case(midsomer, "index-case-id")
		require.Equal(t, []string{"same"}, patient.XFormIDs)
		require.Equal(t, "2020-06-10T01:02:03.000000Z", patient.ServerDateModified, "not applied again")

		// Instance ids are per domain.
		mustSubmit(t, s, yggdrasil, form("same",
			`<n0:case case_id="y"><n0:create><n0:case_type>patient</n0:case_type></n0:create></n0:case>`))
		require.Equal(t, 1, s.Submissions(yggdrasil))
		require.Equal(t, 1, s.DuplicateSubmissions())
	})

	t.Run("RequiresAPIKey", func(t *testing.T) {
		t.Parallel()
		s, _ := startTest(t, commcaretest.Options{})
		resp, body := send(t, s, http.MethodPost, "/a/"+midsomer+"/receiver/", specForm("lab", "i"))
		requireSuccess(t, resp, body)
		for _, auth := range []string{"", "Basic " + commcaretest.DefaultCredentials, "ApiKey x:y"} {
			resp, body := send(t, s, http.MethodPost, "/a/"+yggdrasil+"/receiver/", specForm("lab2", "i2"), auth)
			require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
			require.Contains(t, body, `"error"`)
		}
		require.Empty(t, s.Cases(yggdrasil))
	})

	t.Run("OnlyPost", func(t *testing.T) {
		t.Parallel()
		s, _ := startTest(t, commcaretest.Options{})
		resp, _ := send(t, s, http.MethodGet, "/a/"+midsomer+"/receiver/", "")
		require.Equal(t, http.StatusNotFound, resp.StatusCode)
	})
}

// mustSubmit posts form and requires CommCare's success.
func mustSubmit(t *testing.T, s *commcaretest.Server, domain, form string) {
	t.Helper()
	resp, body := submit(t, s, domain, form)
	requireSuccess(t, resp, body)
}

func TestParseForm(t *testing.T) {
	t.Parallel()
	f, err := commcaretest.ParseForm([]byte(specForm("lab", "instance")))
	require.NoError(t, err)
	require.Equal(t, "instance", f.InstanceID)
	require.Equal(t, "test-user-id", f.UserID)
	require.Equal(t, "2020-06-10T01:02:03Z", f.TimeStart)
	require.Equal(t, "2020-06-10T01:02:03Z", f.TimeEnd)
	require.Equal(t, []commcaretest.CaseBlock{
		{
			CaseID: "index-case-id", DateModified: "2020-06-10T01:02:03Z", UserID: "test-user-id",
			Create: &commcaretest.CaseCreate{CaseType: "patient", CaseName: "index-case-full-name", OwnerID: "COUNTY_LOCATION_ID"},
			Update: map[string]string{
				"field1": "value1", "full_name": "index-case-full-name", "new_lab_result_received_date": "2020-06-10",
				"new_lab_result_specimen_collection_date": "2020-06-10", "owner_id": "COUNTY_LOCATION_ID",
			},
		},
		{
			CaseID: "lab",
			Create: &commcaretest.CaseCreate{CaseType: "lab_result", OwnerID: "-"},
			Update: map[string]string{
				"accession_number": "lab_result_accession_number", "field1": "value1", "field2": "value2", "owner_id": "-",
			},
			Index: map[string]commcare.CaseIndex{"parent": {CaseID: "index-case-id", CaseType: "patient", Relationship: "extension"}},
		},
	}, f.Cases)

	// Case blocks are found by namespace wherever they are, whatever their prefix; others are not case blocks.
	f, err = commcaretest.ParseForm([]byte(`<data xmlns="x"><group><case xmlns="http://commcarehq.org/case/transaction/v2" case_id="a">` +
		`<update><v>&lt;1&amp;2&gt;</v></update></case></group><case case_id="not-v2"/>` +
		`<meta xmlns="http://openrosa.org/jr/xforms"><instanceID> spaced </instanceID></meta></data>`))
	require.NoError(t, err)
	require.Equal(t, []commcaretest.CaseBlock{{CaseID: "a", Update: map[string]string{"v": "<1&2>"}}}, f.Cases)
	require.Equal(t, "spaced", f.InstanceID)
}

// FuzzParseForm feeds the parser and the receiver arbitrary bodies: neither may panic, and the receiver answers
// every body with success, a processing failure or 400.
func FuzzParseForm(f *testing.F) {
	f.Add([]byte(specForm("lab", "instance")))
	f.Add([]byte(form("i", `<n0:case case_id="a"><n0:create><n0:case_type>t</n0:case_type></n0:create>`+
		`<n0:index><n0:parent>a</n0:parent></n0:index><n0:close/></n0:case>`)))
	f.Add([]byte(`<data><n0:case xmlns:n0="http://commcarehq.org/case/transaction/v2"/></data>`))
	f.Add([]byte("<a><b></a>"))
	f.Add([]byte(""))
	counties := commcaretest.TestCounties()
	f.Fuzz(func(t *testing.T, data []byte) {
		handler := commcaretest.NewServer(commcaretest.Options{Counties: counties}).Handler()
		parsed, err := commcaretest.ParseForm(data)
		if err == nil && parsed.Body == nil && len(data) > 0 {
			t.Fatalf("a parsed form keeps its body")
		}
		req := httptest.NewRequest(http.MethodPost, "/a/"+midsomer+"/receiver/", strings.NewReader(string(data)))
		req.Header.Set("Authorization", "ApiKey "+commcaretest.DefaultCredentials)
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, req)
		switch rec.Code {
		case http.StatusBadRequest:
			if err == nil {
				t.Fatalf("the receiver refused a form that parses: %s", rec.Body)
			}
		case http.StatusCreated:
			if err != nil {
				t.Fatalf("the receiver took a form that does not parse (%v)", err)
			}
		default:
			t.Fatalf("status %d", rec.Code)
		}
	})
}
