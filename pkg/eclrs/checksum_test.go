package eclrs

import (
	"crypto/sha256"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestChecksum(t *testing.T) {
	t.Parallel()

	// Expected values are the spec's "v3" column (§2.3), recomputed there from the
	// original's tests.
	tests := []struct {
		name    string
		version Version
		line    string
		want    string
	}{
		{"LastnameV1", V1, lastnameV1, "RTUA3m3vajNkf9VHtXDIEkK/WZRmH5y1qizhGDx2l/4="},
		{"LastnameV2", V2, lastnameV2, "RTUA3m3vajNkf9VHtXDIEkK/WZRmH5y1qizhGDx2l/4="},
		{"LastnameV3", V3, lastnameV3, "RTUA3m3vajNkf9VHtXDIEkK/WZRmH5y1qizhGDx2l/4="},
		{"SmithV1", V1, smithV1, "RdcbYg0gWgHS56YNHxkKDIL1u737MUI2VPNMCXrXcRk="},
		{"SmithV2WithEmployer", V2, smithV2, "VGWpa4/LeQ+wvWzFMAhd1y15msKC/Z83P7wiuU/1pJQ="},
		{"SmithV3WithEmployer", V3, smithV3, "VGWpa4/LeQ+wvWzFMAhd1y15msKC/Z83P7wiuU/1pJQ="},
		{"GoodeV3WithAOE", V3, goodeV3AOE, "j4t6aZHgMawC1oJJFM9mjGH+QIlGQlWRIOy8CeN826o="},
		{"PipesV2", V2, pipesV2, "PbBjImztb5YbRNa4d3MtdMrSH/ISXHVgBKuYI7gQNkA="},
		{"QuotesV2", V2, quotesV2, "zXSOLxWoZsdzNS1YGP718Iebb9/936hDxdxYzG7l7Xg="},
		// Checksums are over values, not bytes: needless quotes change nothing.
		{"NeedlessQuotes", V1, withColumn(lastnameV1, FieldLabName, `"ACME LABORATORIES INC"`), "RTUA3m3vajNkf9VHtXDIEkK/WZRmH5y1qizhGDx2l/4="},
		{"NeedlessQuotesOnLast", V3, withColumn(lastnameV3, 64, `"POSITIVE"`), "RTUA3m3vajNkf9VHtXDIEkK/WZRmH5y1qizhGDx2l/4="},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			r, err := tt.version.ParseLine([]byte(tt.line), 2)
			require.NoError(t, err)
			require.Equal(t, tt.want, r.ChecksumBase64())
			require.Equal(t, checksumFields(&r.Fields), r.Checksum, "fast path and canonical form agree")
		})
	}
}

func TestChecksumSerialisation(t *testing.T) {
	t.Parallel()

	// padded returns the v3 serialisation of lastnameV1 with its PIDCITY replaced.
	padded := func(city string) string {
		return withColumn(lastnameV3, FieldPatientCity, city)
	}
	tests := []struct {
		name    string
		version Version
		line    string
		hashed  string
	}{
		{"PlainV1IsPaddedLine", V1, lastnameV1, lastnameV3},
		{"PlainV2IsPaddedLine", V2, lastnameV2, lastnameV3},
		// The original's serialiser quotes on "\r\n" and "\n" but not on a lone "\r".
		{"LoneCarriageReturnUnquoted", V1, withColumn(lastnameV1, FieldPatientCity, "A\rB"), padded("A\rB")},
		{"NewlineQuoted", V1, withColumn(lastnameV1, FieldPatientCity, "A\nB"), padded("\"A\nB\"")},
		{"QuoteDoubled", V1, withColumn(lastnameV1, FieldPatientCity, `"say ""hi"""`), padded(`"say ""hi"""`)},
		{"PipeQuoted", V1, withColumn(lastnameV1, FieldPatientCity, `"A|B"`), padded(`"A|B"`)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			r, err := tt.version.ParseLine([]byte(tt.line), 2)
			require.NoError(t, err)
			require.Equal(t, sha256.Sum256([]byte(tt.hashed)), r.Checksum)
		})
	}
}

func TestAppendCanonical(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name   string
		fields []string
		want   string
	}{
		{"Plain", []string{"a", "", "b"}, "a||b"},
		{"Quote", []string{`5" TALL`}, `"5"" TALL"`},
		{"OnlyQuotes", []string{`""`}, `""""""`},
		{"Pipe", []string{"a|b", "c"}, `"a|b"|c`},
		{"Newline", []string{"a\nb"}, "\"a\nb\""},
		{"CRLF", []string{"a\r\nb"}, "\"a\r\nb\""},
		{"CarriageReturn", []string{"a\rb"}, "a\rb"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.want, string(appendCanonical(nil, tt.fields)))
		})
	}
}

func TestChecksumLongLine(t *testing.T) {
	t.Parallel()

	// Longer than the stack buffer: the padded copy moves to the heap, same result.
	long := strings.Repeat("A", 3000)
	r, err := V1.ParseLine([]byte(withColumn(lastnameV1, FieldPatientAddress1, long)), 2)
	require.NoError(t, err)
	require.Equal(t, sha256.Sum256([]byte(withColumn(lastnameV3, FieldPatientAddress1, long))), r.Checksum)
}

func BenchmarkChecksum(b *testing.B) {
	benchmarks := []struct {
		name    string
		version Version
		line    string
	}{
		{"V1Padded", V1, lastnameV1},
		{"V3", V3, goodeV3AOE},
		{"V2Quoted", V2, pipesV2},
	}
	for _, bm := range benchmarks {
		b.Run(bm.name, func(b *testing.B) {
			r, err := bm.version.ParseLine([]byte(bm.line), 2)
			if err != nil {
				b.Fatal(err)
			}
			line := []byte(r.Raw)
			quoted := strings.IndexByte(r.Raw, '"') >= 0
			b.ReportAllocs()
			b.SetBytes(int64(len(line)))
			for b.Loop() {
				if quoted {
					r.Checksum = checksumFields(&r.Fields)
				} else {
					r.Checksum = bm.version.checksumPlain(line)
				}
			}
		})
	}
}
