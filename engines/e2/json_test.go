package e2

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestMarshalDataMatchesEncodingJSON(t *testing.T) {
	t.Parallel()
	for _, m := range []map[string]any{
		{},
		{"a": "b", "c": nil, "": ""},
		{"quote": `say "hi"`, "back": `a\b`, "ctl": "tab\tnew\nline\rbell\x07", "uni": "Zoë 東京 \u2028"},
		{"bad": "\xff\xfeok", "nested": map[string]any{"n": 1.5}, "list": []any{"x", nil}},
		{"num": 3.0, "bool": true},
	} {
		got, err := marshalData(m)
		require.NoError(t, err)
		var back, want map[string]any
		require.NoError(t, json.Unmarshal(got, &back), string(got))
		wantJSON, err := json.Marshal(m)
		require.NoError(t, err)
		require.NoError(t, json.Unmarshal(wantJSON, &want))
		require.Equal(t, want, back)
	}
}

func FuzzMarshalData(f *testing.F) {
	f.Add("key", "value")
	f.Add("", "\x00\"\\\xff")
	f.Fuzz(func(t *testing.T, k, v string) {
		got, err := marshalData(map[string]any{k: v, "null": nil})
		require.NoError(t, err)
		var back map[string]any
		require.NoError(t, json.Unmarshal(got, &back), "%q", got)
		wantJSON, _ := json.Marshal(map[string]any{k: v, "null": nil})
		var want map[string]any
		require.NoError(t, json.Unmarshal(wantJSON, &want))
		require.Equal(t, want, back)
	})
}
