package commcaretest_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/viaduct-nys/viaduct/pkg/commcare"
	"github.com/viaduct-nys/viaduct/pkg/commcare/commcaretest"
)

const (
	midsomer  = "uk-midsomer-cdcms"
	yggdrasil = "sw-yggdrasil-cdcms"
)

// base is the fake clock's start: the spec's example form was filled in at 2020-06-10T01:02:03Z.
var base = time.Date(2020, 6, 10, 1, 2, 3, 0, time.UTC)

// clock is a settable clock for Options.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// startTest starts a server with the test counties and a clock at base.
func startTest(t *testing.T, opts commcaretest.Options) (*commcaretest.Server, *clock) {
	t.Helper()
	c := &clock{t: base}
	if opts.Counties == nil {
		opts.Counties = commcaretest.TestCounties()
	}
	if opts.Now == nil {
		opts.Now = c.Now
	}
	return commcaretest.StartTest(t, opts), c
}

// send sends a request with the default credentials unless auth is given, and returns the response with its body
// read.
func send(t *testing.T, s *commcaretest.Server, method, target, body string, auth ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), method, s.URL()+target, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Authorization", "ApiKey "+commcaretest.DefaultCredentials)
	if len(auth) > 0 {
		req.Header.Set("Authorization", auth[0])
	}
	if method == http.MethodPost {
		req.Header.Set("Content-Type", "text/xml")
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, string(data)
}

// getCase fetches a case as Engine 4 does and decodes it.
func getCase(t *testing.T, s *commcaretest.Server, domain, caseID string) commcare.Case {
	t.Helper()
	resp, body := send(t, s, http.MethodGet,
		"/a/"+domain+"/api/v0.5/case/"+caseID+"/?format=json&child_cases__full=true", "")
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	var c commcare.Case
	require.NoError(t, json.Unmarshal([]byte(body), &c))
	return c
}

// listCases fetches a case list page and decodes it.
func listCases(t *testing.T, s *commcaretest.Server, domain, query string) commcare.CasePage {
	t.Helper()
	resp, body := send(t, s, http.MethodGet, "/a/"+domain+"/api/v0.5/case/"+query, "")
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	var page commcare.CasePage
	require.NoError(t, json.Unmarshal([]byte(body), &page))
	return page
}

// submit posts an XForm to domain's receiver.
func submit(t *testing.T, s *commcaretest.Server, domain, form string) (*http.Response, string) {
	t.Helper()
	return send(t, s, http.MethodPost, "/a/"+domain+"/receiver/", form)
}

// specForm is the example of the spec's section 5.11, as Viaduct's XmlBuilder writes it, with the lab case id and
// instance id filled in.
func specForm(labCaseID, instanceID string) string {
	return strings.NewReplacer("<lab uuid>", labCaseID, "<random uuid>", instanceID).Replace(
		`<?xml version="1.0" encoding="UTF-8"?>
<data name="Register a New Case" uiVersion="1" version="3" xmlns="http://geometer.io/viaduct-nys" xmlns:jrm="http://dev.commcarehq.org/jr/xforms">
  <n0:case case_id="index-case-id" date_modified="2020-06-10T01:02:03Z" user_id="test-user-id" xmlns:n0="http://commcarehq.org/case/transaction/v2">
    <n0:create>
      <n0:case_name>index-case-full-name</n0:case_name>
      <n0:case_type>patient</n0:case_type>
      <n0:owner_id>COUNTY_LOCATION_ID</n0:owner_id>
    </n0:create>
    <n0:update>
      <n0:field1>value1</n0:field1>
      <n0:full_name>index-case-full-name</n0:full_name>
      <n0:new_lab_result_received_date>2020-06-10</n0:new_lab_result_received_date>
      <n0:new_lab_result_specimen_collection_date>2020-06-10</n0:new_lab_result_specimen_collection_date>
      <n0:owner_id>COUNTY_LOCATION_ID</n0:owner_id>
    </n0:update>
  </n0:case>
  <n0:case case_id="<lab uuid>" xmlns:n0="http://commcarehq.org/case/transaction/v2">
    <n0:create>
      <n0:case_type>lab_result</n0:case_type>
      <n0:owner_id>-</n0:owner_id>
    </n0:create>
    <n0:update>
      <n0:accession_number>lab_result_accession_number</n0:accession_number>
      <n0:field1>value1</n0:field1>
      <n0:field2>value2</n0:field2>
      <n0:owner_id>-</n0:owner_id>
    </n0:update>
    <n0:index>
      <n0:parent case_type="patient" relationship="extension">index-case-id</n0:parent>
    </n0:index>
  </n0:case>
  <n1:meta xmlns:n1="http://openrosa.org/jr/xforms">
    <n1:deviceID>Formplayer</n1:deviceID>
    <n1:timeStart>2020-06-10T01:02:03Z</n1:timeStart>
    <n1:timeEnd>2020-06-10T01:02:03Z</n1:timeEnd>
    <n1:username>test-username</n1:username>
    <n1:userID>test-user-id</n1:userID>
    <n1:instanceID><random uuid></n1:instanceID>
  </n1:meta>
</data>
`)
}

// form wraps case blocks (written with the n0 prefix) in a form with instanceID, as a smaller hand-made submission.
func form(instanceID string, blocks ...string) string {
	return `<?xml version="1.0" encoding="UTF-8"?>
<data xmlns="http://geometer.io/viaduct-nys" xmlns:n0="http://commcarehq.org/case/transaction/v2">` +
		strings.Join(blocks, "") +
		`<n1:meta xmlns:n1="http://openrosa.org/jr/xforms"><n1:userID>form-user</n1:userID>` +
		`<n1:instanceID>` + instanceID + `</n1:instanceID></n1:meta></data>`
}

// patientCase is a seeded patient case.
func patientCase(id, externalID, modified string) commcare.Case {
	return commcare.Case{
		CaseID:             id,
		ServerDateModified: modified,
		Properties: map[string]any{
			"case_type": "patient", "case_name": "Patient " + id, "owner_id": "owner-1", "external_id": externalID,
		},
	}
}
