package eclrsgen

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/viaduct-nys/viaduct/pkg/eclrs"
)

// generate writes an export into memory and returns its lines, header first.
func generate(t testing.TB, o Options) []string {
	t.Helper()

	var buf bytes.Buffer
	require.NoError(t, Write(&buf, o))
	require.True(t, strings.HasSuffix(buf.String(), "\n"))
	return strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
}

func TestWrite(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name    string
		opts    Options
		version eclrs.Version
	}{
		{"DefaultsToV3", Options{Rows: 20000, Seed: 1}, eclrs.V3},
		{"V1", Options{Rows: 5000, Seed: 2, Version: eclrs.V1}, eclrs.V1},
		{"V2", Options{Rows: 5000, Seed: 3, Version: eclrs.V2}, eclrs.V2},
		{"Offset", Options{Rows: 5000, FirstRow: 1 << 40, Seed: -7}, eclrs.V3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			lines := generate(t, tt.opts)
			require.Len(t, lines, tt.opts.Rows+1)
			v, err := eclrs.DetectVersion([]byte(lines[0]))
			require.NoError(t, err)
			require.Equal(t, tt.version, v)

			type person struct{ last, first, dob, key string }
			people := map[person]int{}
			accessions := map[string]bool{}
			quoted, size := 0, 0
			for n, line := range lines[1:] {
				size += len(line) + 1
				r, err := v.ParseLine([]byte(line), n+2)
				require.NoError(t, err)
				require.Equal(t, line, r.Raw, "no stray whitespace")
				require.Equal(t, "POSITIVE", r.Fields[eclrs.FieldResult])
				_, ok := eclrs.ParseDOB(r.Fields[eclrs.FieldPatientDOB])
				require.True(t, ok, r.Fields[eclrs.FieldPatientDOB])
				for _, f := range []int{eclrs.FieldCollectionDate, eclrs.FieldCreateDate, eclrs.FieldResultObservationDate, eclrs.FieldResultAnalysisDate, eclrs.FieldPatientUpdatedAt} {
					_, ok := eclrs.ParseTimestamp(r.Fields[f])
					require.True(t, ok, "%s %q", eclrs.FieldName(f), r.Fields[f])
				}
				require.Len(t, r.Fields[eclrs.FieldPatientKey], 14)
				_, ok = eclrs.PatientKeyID(r.Fields[eclrs.FieldPatientKey])
				require.True(t, ok)
				require.Len(t, eclrs.NormalizePhone(r.Fields[eclrs.FieldPatientPhoneHome]), 10)
				acc := r.Fields[eclrs.FieldAccessionNumber]
				require.False(t, accessions[acc], "accession %s repeats", acc)
				accessions[acc] = true
				people[person{r.Fields[eclrs.FieldPatientNameLast], r.Fields[eclrs.FieldPatientNameFirst], r.Fields[eclrs.FieldPatientDOB], r.Fields[eclrs.FieldPatientKey]}]++
				if strings.Contains(line, `"`) {
					quoted++
				}
			}
			avg := float64(size) / float64(tt.opts.Rows)
			require.InDelta(t, 600, avg, 60, "average row size")
			// About a third of rows are about a person who has another row.
			repeats := tt.opts.Rows - len(people)
			require.InDelta(t, 1.0/3, float64(repeats)/float64(tt.opts.Rows), 0.06)
			require.NotZero(t, quoted, "some rows exercise the quoting rules")
		})
	}
}

func TestWriteOverlap(t *testing.T) {
	t.Parallel()

	a := generate(t, Options{Rows: 3000, Seed: 42})
	b := generate(t, Options{Rows: 3000, FirstRow: 500, Seed: 42})
	require.Equal(t, a[0], b[0])
	require.Equal(t, a[1+500:], b[1:1+2500], "rows 500..2999 are identical in both files")
	require.NotEqual(t, a[1+2999], b[1+2999-500+1], "rows differ from their neighbours")

	again := generate(t, Options{Rows: 3000, Seed: 42})
	require.Equal(t, a, again, "output is deterministic")

	other := generate(t, Options{Rows: 3000, Seed: 43})
	require.NotEqual(t, a[1], other[1], "the seed changes the data")
}

func TestWriteOptions(t *testing.T) {
	t.Parallel()

	counties := []int64{1111, 9999}
	now := time.Date(2022, 1, 15, 12, 0, 0, 0, time.UTC)
	lines := generate(t, Options{Rows: 1000, Seed: 5, Counties: counties, Now: now})
	for n, line := range lines[1:] {
		r, err := eclrs.V3.ParseLine([]byte(line), n+2)
		require.NoError(t, err)
		require.Contains(t, counties, r.CountyID)
		created, ok := eclrs.ParseTimestamp(r.Fields[eclrs.FieldCreateDate])
		require.True(t, ok)
		require.False(t, created.After(now), "created %v after %v", created, now)
		require.True(t, created.After(now.Add(-15*24*time.Hour)), "created %v long before %v", created, now)
	}

	tests := []struct {
		name string
		opts Options
	}{
		{"NegativeRows", Options{Rows: -1}},
		{"NegativeFirstRow", Options{Rows: 1, FirstRow: -1}},
		{"UnknownVersion", Options{Rows: 1, Version: 9}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.Error(t, Write(io.Discard, tt.opts))
		})
	}
}

func BenchmarkWrite(b *testing.B) {
	const rows = 10000
	var cw countingWriter
	b.ReportAllocs()
	for b.Loop() {
		if err := Write(&cw, Options{Rows: rows, Seed: 1}); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(cw.n / int64(b.N))
}

// BenchmarkImport measures the whole per-row pipeline of an import over a generated
// export: parse and checksum every row, then encode it for COPY.
func BenchmarkImport(b *testing.B) {
	const rows = 100000
	var buf bytes.Buffer
	if err := Write(&buf, Options{Rows: rows, Seed: 1}); err != nil {
		b.Fatal(err)
	}
	data := buf.Bytes()
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	out := make([]byte, 0, 1<<20)
	for b.Loop() {
		rest := data
		nl := bytes.IndexByte(rest, '\n')
		v, err := eclrs.DetectVersion(rest[:nl])
		if err != nil {
			b.Fatal(err)
		}
		rest = rest[nl+1:]
		for n := 2; len(rest) > 0; n++ {
			nl = bytes.IndexByte(rest, '\n')
			r, err := v.ParseLine(rest[:nl], n)
			if err != nil {
				b.Fatal(err)
			}
			out = eclrs.AppendTestResultRow(out[:0], int64(n), 1, &r)
			rest = rest[nl+1:]
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/rows, "ns/row")
}

type countingWriter struct{ n int64 }

func (w *countingWriter) Write(p []byte) (int, error) {
	w.n += int64(len(p))
	return len(p), nil
}
