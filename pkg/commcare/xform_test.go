package commcare_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/viaduct-nys/viaduct/pkg/commcare"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata from the current output")

var formNow = time.Date(2020, 6, 10, 1, 2, 3, 0, time.UTC)

func ptr[T any](v T) *T { return &v }

// specForm is the form of the spec's XmlBuilder example (§5.11): a patient with one lab result, both dates derived
// from rows inserted on 2020-06-10.
func specForm() commcare.Form {
	return commcare.Form{
		Cases: []commcare.CaseBlock{
			{
				CaseID:       "index-case-id",
				DateModified: formNow,
				UserID:       "test-user-id",
				CaseType:     "patient",
				CaseName:     ptr("index-case-full-name"),
				OwnerID:      "COUNTY_LOCATION_ID",
				Update: map[string]any{
					"field1":                       "value1",
					"full_name":                    "index-case-full-name",
					"new_lab_result_received_date": "2020-06-10",
					"new_lab_result_specimen_collection_date": "2020-06-10",
					"owner_id": "COUNTY_LOCATION_ID",
				},
			},
			{
				CaseID:   "5c6f2b7e-3f1d-4e0a-9b55-2d8c1f7a9e40",
				CaseType: "lab_result",
				OwnerID:  "-",
				Update: map[string]any{
					"accession_number": "lab_result_accession_number",
					"field1":           "value1",
					"field2":           "value2",
					"owner_id":         "-",
				},
				Parent: &commcare.CaseIndex{CaseID: "index-case-id", CaseType: "patient", Relationship: "extension"},
			},
		},
		Now:        formNow,
		Username:   "test-username",
		UserID:     "test-user-id",
		InstanceID: "0b9e3c4d-8a7f-4e21-b6d5-3c2a1f0e9d87",
	}
}

func TestFormXMLGolden(t *testing.T) {
	t.Parallel()
	got, err := specForm().XML()
	require.NoError(t, err)
	golden := filepath.Join("testdata", "form_patient_lab.xml")
	if *update {
		require.NoError(t, os.WriteFile(golden, got, 0o644))
	}
	want, err := os.ReadFile(golden)
	require.NoError(t, err)
	require.Equal(t, string(want), string(got))
	requireWellFormed(t, got)
}

func TestFormXML(t *testing.T) {
	t.Parallel()

	// render builds a form holding one lab-result-like block and returns its XML.
	render := func(t *testing.T, block commcare.CaseBlock) string {
		t.Helper()
		form := commcare.Form{Cases: []commcare.CaseBlock{block}, Now: formNow, InstanceID: "i"}
		got, err := form.XML()
		require.NoError(t, err)
		requireWellFormed(t, got)
		return string(got)
	}

	t.Run("BlankValuesAreLeftOut", func(t *testing.T) {
		t.Parallel()
		got := render(t, commcare.CaseBlock{CaseID: "c", CaseType: "lab_result", OwnerID: "-", Update: map[string]any{
			"nil": nil, "empty": "", "spaces": " \t\n ", "false": false, "list": []any{}, "map": map[string]any{},
			"true": true, "zero": 0.0, "text": " padded ", "number": 1.5, "int": 7,
		}})
		require.Contains(t, got, "    <n0:update>\n"+
			"      <n0:int>7</n0:int>\n"+
			"      <n0:number>1.5</n0:number>\n"+
			"      <n0:text> padded </n0:text>\n"+
			"      <n0:true>true</n0:true>\n"+
			"      <n0:zero>0</n0:zero>\n"+
			"    </n0:update>\n")
		for _, blank := range []string{"nil", "empty", "spaces", "false", "list", "map"} {
			require.NotContains(t, got, "<n0:"+blank+">")
		}
	})

	t.Run("NothingToUpdate", func(t *testing.T) {
		t.Parallel()
		got := render(t, commcare.CaseBlock{CaseID: "c", CaseType: "lab_result", OwnerID: "-",
			Update: map[string]any{"gone": nil}})
		require.Equal(t, `<?xml version="1.0" encoding="UTF-8"?>
<data name="Register a New Case" uiVersion="1" version="3" xmlns="http://geometer.io/viaduct-nys" xmlns:jrm="http://dev.commcarehq.org/jr/xforms">
  <n0:case case_id="c" xmlns:n0="http://commcarehq.org/case/transaction/v2">
    <n0:create>
      <n0:case_type>lab_result</n0:case_type>
      <n0:owner_id>-</n0:owner_id>
    </n0:create>
    <n0:update/>
  </n0:case>
  <n1:meta xmlns:n1="http://openrosa.org/jr/xforms">
    <n1:deviceID>Formplayer</n1:deviceID>
    <n1:timeStart>2020-06-10T01:02:03Z</n1:timeStart>
    <n1:timeEnd>2020-06-10T01:02:03Z</n1:timeEnd>
    <n1:username/>
    <n1:userID/>
    <n1:instanceID>i</n1:instanceID>
  </n1:meta>
</data>
`, got)
	})

	t.Run("Escaping", func(t *testing.T) {
		t.Parallel()
		nasty := `a<b>&c"d'e`
		got := render(t, commcare.CaseBlock{
			CaseID: nasty, UserID: nasty, CaseType: nasty, CaseName: &nasty, OwnerID: nasty,
			Update: map[string]any{"p": nasty + "\n</n0:update>"},
			Parent: &commcare.CaseIndex{CaseID: nasty, CaseType: nasty, Relationship: nasty},
		})
		const esc = `a&lt;b&gt;&amp;c&#34;d&#39;e`
		require.Contains(t, got, `<n0:case case_id="`+esc+`" user_id="`+esc+`" xmlns:n0=`)
		require.Contains(t, got, "<n0:case_name>"+esc+"</n0:case_name>")
		require.Contains(t, got, "<n0:case_type>"+esc+"</n0:case_type>")
		require.Contains(t, got, "<n0:owner_id>"+esc+"</n0:owner_id>")
		require.Contains(t, got, "<n0:p>"+esc+"&#xA;&lt;/n0:update&gt;</n0:p>")
		require.Contains(t, got, `<n0:parent case_type="`+esc+`" relationship="`+esc+`">`+esc+"</n0:parent>")
	})

	t.Run("CaseName", func(t *testing.T) {
		t.Parallel()
		block := commcare.CaseBlock{CaseID: "c", CaseType: "patient", OwnerID: "o"}
		require.NotContains(t, render(t, block), "case_name")
		block.CaseName = ptr("")
		require.Contains(t, render(t, block), "      <n0:case_name/>\n      <n0:case_type>patient</n0:case_type>\n")
		block.CaseName = ptr("Jo")
		require.Contains(t, render(t, block), "      <n0:case_name>Jo</n0:case_name>\n")
	})

	t.Run("OptionalAttributes", func(t *testing.T) {
		t.Parallel()
		block := commcare.CaseBlock{CaseID: "c", CaseType: "patient", OwnerID: "o",
			DateModified: time.Date(2021, 1, 2, 3, 4, 5, 999, time.FixedZone("EST", -5*3600)), UserID: "u",
			Parent: &commcare.CaseIndex{CaseID: "p", CaseType: "patient"}}
		got := render(t, block)
		require.Contains(t, got, `<n0:case case_id="c" date_modified="2021-01-02T08:04:05Z" user_id="u" xmlns:n0=`)
		require.Contains(t, got, `<n0:parent case_type="patient">p</n0:parent>`, "no relationship: a child index")
	})

	t.Run("Errors", func(t *testing.T) {
		t.Parallel()
		valid := commcare.CaseBlock{CaseID: "c", CaseType: "lab_result", OwnerID: "-"}
		tests := []struct {
			name    string
			mutate  func(*commcare.Form)
			wantErr string
		}{
			{"NoCaseID", func(f *commcare.Form) { f.Cases[1].CaseID = "" }, "commcare: case 1 of the form has no case id"},
			{"NoCaseType", func(f *commcare.Form) { f.Cases[0].CaseType = "" },
				`commcare: case "c" of the form has no case type`},
			{"IndexWithoutCase", func(f *commcare.Form) { f.Cases[0].Parent = &commcare.CaseIndex{CaseType: "patient"} },
				`commcare: the parent index of case "c" names no case`},
			{"BadPropertyName", func(f *commcare.Form) { f.Cases[0].Update = map[string]any{"ok": "1", "bad name": "x"} },
				`commcare: case "c": the property name "bad name" is not a valid XML element name`},
			{"NoTime", func(f *commcare.Form) { f.Now = time.Time{} }, "commcare: the form has no time"},
			{"NoInstanceID", func(f *commcare.Form) { f.InstanceID = "" }, "commcare: the form has no instance id"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				form := commcare.Form{Cases: []commcare.CaseBlock{valid, valid}, Now: formNow, InstanceID: "i"}
				tt.mutate(&form)
				got, err := form.XML()
				require.EqualError(t, err, tt.wantErr)
				require.Nil(t, got)
			})
		}
	})

	t.Run("PropertyNames", func(t *testing.T) {
		t.Parallel()
		for _, name := range []string{"a", "_a", "A1", "a-b", "a.b", "a_b", "x", "xm", "Xmz", "name_and_id"} {
			got := render(t, commcare.CaseBlock{CaseID: "c", CaseType: "t", Update: map[string]any{name: "v"}})
			require.Contains(t, got, "<n0:"+name+">v</n0:"+name+">")
		}
		for _, name := range []string{"", "1a", "-a", ".a", "xml", "XMLfoo", "xMl_a", "a:b", "a b", "a>b", "a/b",
			"é", "a\x00", "a\u00e9"} {
			form := commcare.Form{Now: formNow, InstanceID: "i", Cases: []commcare.CaseBlock{
				{CaseID: "c", CaseType: "t", Update: map[string]any{name: "v"}}}}
			_, err := form.XML()
			require.ErrorContains(t, err, "is not a valid XML element name", "%q", name)
		}
		// A blank value's name is never written, so it cannot break the form.
		got := render(t, commcare.CaseBlock{CaseID: "c", CaseType: "t", Update: map[string]any{"bad name": nil}})
		require.Contains(t, got, "<n0:update/>")
	})

	t.Run("InvalidCharactersAreReplaced", func(t *testing.T) {
		t.Parallel()
		got := render(t, commcare.CaseBlock{CaseID: "c", CaseType: "t",
			Update: map[string]any{"p": "a\x00b\x1bc\xffd"}})
		require.Contains(t, got, "<n0:p>a\uFFFDb\uFFFDc\uFFFDd</n0:p>")
	})

	t.Run("DoesNotChangeTheForm", func(t *testing.T) {
		t.Parallel()
		form := specForm()
		_, err := form.Fingerprint()
		require.NoError(t, err)
		require.Equal(t, specForm(), form)
	})
}

func TestFormFingerprint(t *testing.T) {
	t.Parallel()
	fingerprint := func(t *testing.T, f commcare.Form) [32]byte {
		t.Helper()
		sum, err := f.Fingerprint()
		require.NoError(t, err)
		return sum
	}
	base := fingerprint(t, specForm())

	t.Run("IgnoresWhatChangesOnEveryPost", func(t *testing.T) {
		t.Parallel()
		form := specForm()
		form.Now = formNow.Add(36 * time.Hour)
		form.InstanceID = commcare.NewInstanceID()
		form.Cases[0].DateModified = form.Now
		form.Cases[1].DateModified = form.Now
		require.Equal(t, base, fingerprint(t, form))

		form.Now, form.InstanceID = time.Time{}, ""
		require.Equal(t, base, fingerprint(t, form), "a form not yet timed or numbered has the same fingerprint")
	})

	t.Run("BlankValuesDoNotCount", func(t *testing.T) {
		t.Parallel()
		form := specForm()
		form.Cases[0].Update["new_blank"] = "  "
		require.Equal(t, base, fingerprint(t, form))
	})

	changes := map[string]func(*commcare.Form){
		"Value":       func(f *commcare.Form) { f.Cases[1].Update["field2"] = "value3" },
		"NewProperty": func(f *commcare.Form) { f.Cases[0].Update["field9"] = "x" },
		"CaseName":    func(f *commcare.Form) { f.Cases[0].CaseName = ptr("other") },
		"NoCaseName":  func(f *commcare.Form) { f.Cases[0].CaseName = nil },
		"Owner":       func(f *commcare.Form) { f.Cases[0].OwnerID = "OTHER" },
		"Parent":      func(f *commcare.Form) { f.Cases[1].Parent.CaseID = "other" },
		"LabResult":   func(f *commcare.Form) { f.Cases = f.Cases[:1] },
		"User":        func(f *commcare.Form) { f.UserID = "other" },
	}
	for name, change := range changes {
		t.Run("Changes"+name, func(t *testing.T) {
			t.Parallel()
			form := specForm()
			change(&form)
			require.NotEqual(t, base, fingerprint(t, form))
		})
	}

	t.Run("Invalid", func(t *testing.T) {
		t.Parallel()
		form := specForm()
		form.Cases[0].Update["a b"] = "x"
		form.Cases[0].Update["z z"] = "x"
		_, err := form.Fingerprint()
		require.ErrorContains(t, err, `the property name "a b" is not a valid XML element name`, "the first bad name")
	})

	// commcare_posts keeps fingerprints: the same content must keep its fingerprint from one version to the next,
	// or every case would be posted again once after an upgrade.
	t.Run("Stable", func(t *testing.T) {
		t.Parallel()
		require.Equal(t, "d381de415aab44752511680a13b2711af7b27fd31a18c7bec58f0997a29e162c", hex.EncodeToString(base[:]))
		form := specForm()
		form.Cases[1].Update["odd"] = "a\x00<>&\"'\t\r\n\xff\u00e9\U0001F600 ]]>"
		sum := fingerprint(t, form)
		require.Equal(t, "6a560a8eabe17021ea58eb6433b14727c57acb64e60eec1f5ac825d46774f367", hex.EncodeToString(sum[:]))
	})
}

func TestFormXMLFor(t *testing.T) {
	t.Parallel()
	for name, form := range map[string]commcare.Form{
		"Spec": specForm(),
		"Escaped": {Cases: []commcare.CaseBlock{{CaseID: `c"1'`, DateModified: formNow, UserID: "u&", CaseType: "t",
			Update: map[string]any{"p": "a\x00<b>\t\r\n\xff\u00e9"}}}, Now: formNow, Username: "<me>"},
		"NoCases": {Now: formNow, UserID: "u"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got, fp, err := form.XMLFor("ny-a-cdcms", 42)
			require.NoError(t, err)
			want, err := form.Fingerprint()
			require.NoError(t, err)
			require.Equal(t, want, fp, "the fingerprint Fingerprint gives")
			form.InstanceID = commcare.InstanceIDFor("ny-a-cdcms", fp, 42)
			xml, err := form.XML()
			require.NoError(t, err)
			require.Equal(t, string(xml), string(got), "the XML XML gives, with the instance id derived")
		})
	}

	t.Run("NoTime", func(t *testing.T) {
		t.Parallel()
		form := specForm()
		form.Now = time.Time{}
		_, _, err := form.XMLFor("ny-a-cdcms", 42)
		require.ErrorContains(t, err, "the form has no time")
	})

	t.Run("Invalid", func(t *testing.T) {
		t.Parallel()
		form := specForm()
		form.Cases[1].CaseType = ""
		got, _, err := form.XMLFor("ny-a-cdcms", 42)
		require.ErrorContains(t, err, "has no case type")
		require.Nil(t, got)
	})
}

// BenchmarkFormXMLFor is the form Engine 4 builds for a patient with three lab results.
func BenchmarkFormXMLFor(b *testing.B) {
	form := specForm()
	for i := range 3 {
		lab := form.Cases[1]
		lab.CaseID = fmt.Sprintf("lab-%d", i)
		lab.Update = maps.Clone(lab.Update)
		lab.Update["test_type"], lab.Update["result"] = "SARS-CoV-2 RNA", "POSITIVE"
		form.Cases = append(form.Cases, lab)
	}
	form.Cases = slices.Delete(form.Cases, 1, 2)
	for _, k := range []string{"first_name", "last_name", "dob", "phone_home", "address_street", "address_city",
		"address_state", "address_zip", "gender", "race", "ethnicity", "analysis_date"} {
		form.Cases[0].Update[k] = "some value of " + k
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := form.XMLFor("ny-a-cdcms", 7); err != nil {
			b.Fatal(err)
		}
	}
}

func TestNewInstanceID(t *testing.T) {
	t.Parallel()
	a, b := commcare.NewInstanceID(), commcare.NewInstanceID()
	require.NotEqual(t, a, b)
	for _, id := range []string{a, b} {
		u, err := uuid.Parse(id)
		require.NoError(t, err)
		require.Equal(t, uuid.Version(4), u.Version())
		require.Equal(t, u.String(), id)
	}
}

// FuzzFormXML checks that any property name and value, case id and case name either make XML fail or give a
// well-formed document that reads back to the same values (with characters XML cannot carry replaced).
func FuzzFormXML(f *testing.F) {
	f.Add("field1", "value1", "index-case-id", "Jo")
	f.Add("a-b.c", `<>&"'`, `id"with'quotes`, "")
	f.Add("bad name", "x", "c", "n")
	f.Add("xmlns", "x", "c", "n")
	f.Add("p", "line\r\nbreak\ttab", "c\x00", "\xff")
	f.Add("p", "  ", "c", "n")
	f.Add("", "x", "", "n")
	f.Add("n0:x", "]]>", "c", "<![CDATA[x]]>")
	f.Fuzz(func(t *testing.T, name, value, caseID, caseName string) {
		update := map[string]any{"fixed": "v"}
		if name != "fixed" {
			update[name] = value
		}
		form := commcare.Form{
			Cases: []commcare.CaseBlock{{
				CaseID: caseID, CaseType: "patient", CaseName: &caseName, OwnerID: value, UserID: value,
				Update: update,
				Parent: &commcare.CaseIndex{CaseID: "p", CaseType: "patient", Relationship: value},
			}},
			Now: formNow, Username: value, UserID: "u", InstanceID: "i",
		}
		got, err := form.XML()
		gotFor, fp, errFor := form.XMLFor("d", 1)
		require.Equal(t, err, errFor, "XMLFor fails as XML does")
		if err != nil {
			require.Nil(t, got)
			require.True(t, caseID == "" || !commcare.Blank(value) && !validName(name), "unexpected error: %v", err)
			return
		}
		require.NotEmpty(t, caseID)
		want, err := form.Fingerprint()
		require.NoError(t, err)
		require.Equal(t, want, fp)
		form.InstanceID = commcare.InstanceIDFor("d", fp, 1)
		withID, err := form.XML()
		require.NoError(t, err)
		require.Equal(t, withID, gotFor)
		read := readForm(t, got)
		require.Equal(t, xmlSafe(caseID), read.attrs["case:case_id"])
		require.Equal(t, xmlSafe(value), read.attrs["case:user_id"])
		require.Equal(t, xmlSafe(value), read.text["create/owner_id"])
		require.Equal(t, xmlSafe(caseName), read.text["create/case_name"])
		require.Equal(t, xmlSafe(value), read.text["meta/username"])
		require.Equal(t, "v", read.text["update/fixed"])
		if commcare.Blank(value) || name == "fixed" {
			require.Equal(t, []string{"fixed"}, read.update)
		} else {
			require.Equal(t, xmlSafe(value), read.text["update/"+name])
			require.Len(t, read.update, 2)
		}
	})
}

// validName is the rule property names follow, written independently of the package's.
func validName(name string) bool {
	if name == "" || strings.HasPrefix(strings.ToLower(name), "xml") {
		return false
	}
	for i, r := range name {
		letter := r < utf8.RuneSelf && (r == '_' || 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z')
		other := r < utf8.RuneSelf && (r == '-' || r == '.' || '0' <= r && r <= '9')
		if !letter && (!other || i == 0) {
			return false
		}
	}
	return true
}

// xmlSafe is s as it reads back from the form: characters XML 1.0 cannot carry, and bytes that are not UTF-8, turn
// into U+FFFD.
func xmlSafe(s string) string {
	var b strings.Builder
	for _, r := range s { // a byte that is not UTF-8 comes out as U+FFFD
		if r == 0x09 || r == 0x0A || r == 0x0D || r >= 0x20 && r <= 0xD7FF || r >= 0xE000 && r <= 0xFFFD ||
			r >= 0x10000 && r <= 0x10FFFF {
			b.WriteRune(r)
		} else {
			b.WriteRune('\uFFFD')
		}
	}
	return b.String()
}

// readBack is what readForm found in a one-case form.
type readBack struct {
	attrs  map[string]string // "case:<attribute>" of the n0:case element
	text   map[string]string // "<parent local name>/<local name>" of leaf elements
	update []string          // the update element's children, by local name
}

// readForm parses a form with encoding/xml, which must accept it, and checks the namespaces.
func readForm(t *testing.T, data []byte) readBack {
	t.Helper()
	read := readBack{attrs: map[string]string{}, text: map[string]string{}}
	dec := xml.NewDecoder(bytes.NewReader(data))
	var stack []xml.StartElement
	var text strings.Builder
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err, "%s", data)
		switch tok := tok.(type) {
		case xml.StartElement:
			switch tok.Name.Local {
			case "data":
				require.Equal(t, "http://geometer.io/viaduct-nys", tok.Name.Space)
			case "case":
				require.Equal(t, "http://commcarehq.org/case/transaction/v2", tok.Name.Space)
				for _, a := range tok.Attr {
					if a.Name.Space == "" {
						read.attrs["case:"+a.Name.Local] = a.Value
					}
				}
			case "meta":
				require.Equal(t, "http://openrosa.org/jr/xforms", tok.Name.Space)
			}
			if len(stack) > 0 && stack[len(stack)-1].Name.Local == "update" && len(stack) == 3 {
				read.update = append(read.update, tok.Name.Local)
			}
			stack = append(stack, tok)
			text.Reset()
		case xml.CharData:
			text.Write(tok)
		case xml.EndElement:
			if len(stack) >= 2 {
				key := stack[len(stack)-2].Name.Local + "/" + tok.Name.Local
				if _, seen := read.text[key]; !seen {
					read.text[key] = text.String()
				}
			}
			stack = stack[:len(stack)-1]
			text.Reset()
		}
	}
	require.Empty(t, stack)
	return read
}

func requireWellFormed(t *testing.T, data []byte) {
	t.Helper()
	readForm(t, data)
}

func TestInstanceIDFor(t *testing.T) {
	t.Parallel()
	fp := sha256.Sum256([]byte("form"))
	id := commcare.InstanceIDFor("ny-a-cdcms", fp, 7)
	require.Equal(t, id, commcare.InstanceIDFor("ny-a-cdcms", fp, 7), "the same post, the same id")
	// A retry after an upgrade must still be recognised: the same post keeps its id from one version to the next.
	require.Equal(t, "31e8f68f-7801-5d6c-9594-d0594d59a735", id)
	require.Equal(t, "ef848f44-b601-58cc-ab38-ff01cde0d680", commcare.InstanceIDFor("", [32]byte{}, -1))
	_, err := uuid.Parse(id)
	require.NoError(t, err)
	for _, other := range []string{
		commcare.InstanceIDFor("ny-b-cdcms", fp, 7),
		commcare.InstanceIDFor("ny-a-cdcms", sha256.Sum256([]byte("other form")), 7),
		commcare.InstanceIDFor("ny-a-cdcms", fp, 8),
	} {
		require.NotEqual(t, id, other)
	}
}
