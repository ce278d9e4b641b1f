package cli

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestOptionsUnknownFlags: every flag the set does not define is found, as typed and without its value, and the
// rest of the arguments are kept for the flag package, which would stop at the first unknown one.
func TestOptionsUnknownFlags(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name           string
		args           []string
		unknown, known []string
	}{
		{"None", []string{"--level", "x", "--on", "file"}, nil, []string{"--level", "x", "--on", "file"}},
		{"ValueAfterEquals", []string{"-pasword=s3cret", "--level=x"}, []string{"-pasword"}, []string{"--level=x"}},
		{"ValueAsNextArgument", []string{"--databse-url", "postgres://u:s3cret@h/db", "--on"},
			[]string{"--databse-url"}, []string{"--on"}},
		{"Several", []string{"--e9", "--on", "--nope", "--level", "x", "-z"}, []string{"--e9", "--nope", "-z"},
			[]string{"--on", "--level", "x"}},
		{"BoolTakesNoValue", []string{"--on", "file", "--nope"}, nil, []string{"--on", "file", "--nope"}},
		{"StopsAtFirstPositional", []string{"file", "--nope"}, nil, []string{"file", "--nope"}},
		{"StopsAtDoubleDash", []string{"--", "--nope"}, nil, []string{"--", "--nope"}},
		{"BoolWithValue", []string{"--on=false", "--nope=1"}, []string{"--nope"}, []string{"--on=false"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := NewOptionSet("test", "", "", func(string) string { return "" })
			var level string
			var on bool
			s.String(&level, "level", "", "", "")
			s.Bool(&on, "on", "", false, "")
			unknown, known := s.unknownFlags(tc.args)
			require.Equal(t, tc.unknown, unknown)
			require.Equal(t, tc.known, known)
		})
	}
}
