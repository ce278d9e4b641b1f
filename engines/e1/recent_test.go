package e1

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"

	"github.com/viaduct-nys/viaduct/pkg/eclrs"
	"github.com/viaduct-nys/viaduct/pkg/eclrs/eclrsgen"
	"github.com/viaduct-nys/viaduct/pkg/pgtest"
)

func sumOf(i int) [32]byte { return sha256.Sum256([]byte(fmt.Sprint(i))) }

func TestLastFileSums(t *testing.T) {
	t.Parallel()
	var prefixes []sumPrefix
	for i := range 5000 {
		s := sumOf(i)
		prefixes = append(prefixes, prefixOf(&s))
	}
	l := newLastFileSums(7, append(prefixes, prefixes[:100]...)) // repeats are stored once
	for i := range 5000 {
		s := sumOf(i)
		require.True(t, l.contains(&s), "%d", i)
	}
	for i := 5000; i < 10_000; i++ {
		s := sumOf(i)
		require.False(t, l.contains(&s), "%d", i)
	}
	// Only the first 16 bytes count.
	s := sumOf(1)
	s[31] ^= 0xff
	require.True(t, l.contains(&s))

	// The zero prefix marks empty slots, so it is kept apart.
	var zero [32]byte
	require.False(t, l.contains(&zero))
	require.True(t, newLastFileSums(7, []sumPrefix{{}}).contains(&zero))
	require.False(t, newLastFileSums(7, nil).contains(&s))
	var none *lastFileSums
	require.False(t, none.contains(&s))
}

func TestStoreRemembersUpToMaxFileSums(t *testing.T) {
	t.Parallel()
	s := &store{}
	for i := range maxFileSums {
		sum := sumOf(i % 10)
		s.remember(&sum)
	}
	require.False(t, s.tooMany)
	require.Len(t, s.fileSums, maxFileSums)
	sum := sumOf(0)
	s.remember(&sum)
	require.True(t, s.tooMany, "one row more")
	require.Nil(t, s.fileSums, "the partial set is let go")
}

// TestImportRecognisesTheLastFilesRows: a rolling export's rows that were in the export before it are recognised
// from that file's set, and only the others are looked up in the index; the counts are what the index alone gives.
func TestImportRecognisesTheLastFilesRows(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.New(t)
	reg := prometheus.NewRegistry()
	metrics := NewMetrics(reg)
	im := NewImporter(ImporterConfig{BatchRows: 500}, db.Pool, zaptest.NewLogger(t), metrics)
	lookups := func(where string) int { return int(testutil.ToFloat64(metrics.lookups.WithLabelValues(where))) }
	export := func(first, rows int, extra string) []byte {
		var b bytes.Buffer
		require.NoError(t, eclrsgen.Write(&b, eclrsgen.Options{Rows: rows, FirstRow: first, Seed: 3}))
		return append(b.Bytes(), extra...)
	}
	importBytes := func(name string, data []byte) *Result {
		res, err := im.Import(ctx, fixtureObject(name, name, time.Time{}), func(context.Context) (io.ReadCloser, error) {
			return io.NopCloser(bytes.NewReader(data)), nil
		})
		require.NoError(t, err)
		require.Equal(t, eclrs.FileImported, res.Status)
		return res
	}
	stored := func() (fileID int64, rows int) {
		require.NoError(t, db.Pool.QueryRow(ctx, `SELECT file_id, octet_length(checksums) / 16 FROM file_checksums`).
			Scan(&fileID, &rows))
		return fileID, rows
	}

	// The first file has no set to go by; a malformed row is not part of the set it leaves.
	first := importBytes("a.txt", export(0, 2000, "NOT|A|ROW\n"))
	require.EqualValues(t, 2000, first.New)
	require.EqualValues(t, 1, first.Errors)
	require.Equal(t, 0, lookups("last_file"))
	require.Equal(t, 2000, lookups("index"))
	id, rows := stored()
	require.Equal(t, first.FileID, id)
	require.Equal(t, 2000, rows)

	// The next export drops 300 rows, adds 300 and repeats one of its own.
	second := importBytes("b.txt", export(300, 2000, string(bytes.SplitAfter(export(2299, 1, ""), []byte("\n"))[1])))
	require.EqualValues(t, 300, second.New)
	require.EqualValues(t, 1700, second.Matched)
	require.EqualValues(t, 1, second.Duplicate)
	require.Equal(t, 1700, lookups("last_file"))
	require.Equal(t, 2000+300+1, lookups("index"), "only the rows the last file lacked, the repeat among them")
	id, rows = stored()
	require.Equal(t, second.FileID, id, "only the newest set is kept")
	require.Equal(t, 2000, rows)

	// Rows of a file before the last are found in the index: the set narrows the lookups, never decides alone.
	third := importBytes("c.txt", export(0, 2600, ""))
	require.EqualValues(t, 300, third.New, "rows 2300 to 2599")
	require.EqualValues(t, 2300, third.Matched, "rows 0 to 299 from the first file, 300 to 2299 from the second")
	require.Equal(t, 1700+2000, lookups("last_file"))
	require.Equal(t, 2301+600, lookups("index"))
}
