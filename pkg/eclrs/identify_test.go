package eclrs_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/viaduct-nys/viaduct/pkg/eclrs"
	"github.com/viaduct-nys/viaduct/pkg/eclrs/eclrsgen"
)

func TestIdentify(t *testing.T) {
	t.Parallel()

	t.Run("AgreesWithParseLine", func(t *testing.T) {
		t.Parallel()
		for _, version := range []eclrs.Version{eclrs.V1, eclrs.V2, eclrs.V3} {
			var buf bytes.Buffer
			require.NoError(t, eclrsgen.Write(&buf, eclrsgen.Options{Rows: 3000, Seed: 7, Version: version}))
			lines := bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n"))
			identified := 0
			for i, line := range lines[1:] {
				sum, county, ok := version.Identify(line)
				if !ok {
					continue
				}
				identified++
				rec, err := version.ParseLine(line, i+2)
				require.NoError(t, err, "a line Identify accepts parses")
				require.Equal(t, rec.Checksum, sum, "%s line %d", version, i+2)
				require.Equal(t, rec.CountyID, county, "%s line %d", version, i+2)
			}
			require.Greater(t, identified, len(lines)*9/10, "plain lines, the usual case, are identified without the parser")
		}
	})

	for _, tc := range []struct {
		name string
		line string
	}{
		{"Empty", ""},
		{"Quoted", `"A"` + strings.Repeat("|", 64)},
		{"TooFewFields", strings.Repeat("|", 63)},
		{"TooManyFields", strings.Repeat("|", 65)},
		{"BadCounty", strings.Repeat("|", 9) + "7a" + strings.Repeat("|", 55)},
		{"EmptyCounty", strings.Repeat("|", 64)},
	} {
		t.Run("NeedsTheParser"+tc.name, func(t *testing.T) {
			t.Parallel()
			_, _, ok := eclrs.V3.Identify([]byte(tc.line))
			require.False(t, ok)
		})
	}
}

func BenchmarkIdentify(b *testing.B) {
	var buf bytes.Buffer
	require.NoError(b, eclrsgen.Write(&buf, eclrsgen.Options{Rows: 1000, Seed: 7}))
	lines := bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n"))[1:]
	b.ReportAllocs()
	b.SetBytes(int64(buf.Len() / len(lines)))
	for i := 0; b.Loop(); i++ {
		eclrs.V3.Identify(lines[i%len(lines)])
	}
}
