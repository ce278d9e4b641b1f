package commcare

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
)

// FuzzDecodeCase checks that no response body makes GetCase's or ListCases's decoding panic, and that what they
// accept is a case with an id (a page of cases) that survives re-encoding.
func FuzzDecodeCase(f *testing.F) {
	f.Add([]byte(`{"case_id": "c1", "properties": {"case_type": "patient", "age": 12, "x": null, "l": [1, {}]},
		"child_cases": {"l1": {"case_id": "l1", "indices": {"parent": {"case_id": "c1", "case_type": "patient"}}}}}`))
	f.Add([]byte(`{"meta": {"next": "?offset=100", "limit": 100}, "objects": [{"case_id": "a"}, {}]}`))
	f.Add([]byte(`{"case_id": "c", "child_cases": {"x": {"child_cases": {"y": {"case_id": 1}}}}}`))
	f.Add([]byte(`{"case_id": "c", "date_closed": 5, "closed": "no"}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`{"case_id": "c"} trailing`))
	f.Add([]byte("\xff\xfe{"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cs, err := decodeCase(data)
		if err != nil {
			require.Nil(t, cs)
		} else {
			require.NotEmpty(t, cs.CaseID)
			_ = cs.Type()
			_ = cs.Property("external_id")
			again, err := json.Marshal(cs)
			require.NoError(t, err)
			back, err := decodeCase(again)
			require.NoError(t, err)
			require.Equal(t, cs.CaseID, back.CaseID)
		}

		page, err := decodeCasePage(data)
		if err != nil {
			require.Nil(t, page)
			return
		}
		for i := range page.Objects {
			_ = page.Objects[i].Type()
		}
		_, err = json.Marshal(page)
		require.NoError(t, err)
	})
}
