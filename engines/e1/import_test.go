package e1

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"

	"github.com/viaduct-nys/viaduct/pkg/eclrs"
	"github.com/viaduct-nys/viaduct/pkg/eclrs/eclrsgen"
	"github.com/viaduct-nys/viaduct/pkg/pgtest"
)

func TestImporter(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	type testBundle struct {
		db       *pgtest.DB
		importer *Importer
	}
	setup := func(t *testing.T, cfg ImporterConfig) *testBundle {
		t.Helper()
		db := pgtest.New(t)
		return &testBundle{db: db, importer: NewImporter(cfg, db.Pool, zaptest.NewLogger(t), nil)}
	}
	// importFile imports testdata/name under the given ETag, so one fixture can stand for several S3 objects.
	importFile := func(t *testing.T, b *testBundle, name, etag string, eventTime time.Time) *Result {
		t.Helper()
		res, err := b.importer.Import(ctx, fixtureObject(name, etag, eventTime), fileOpener(filepath.Join("testdata", name)))
		require.NoError(t, err)
		return res
	}
	count := func(t *testing.T, b *testBundle, query string, args ...any) int64 {
		t.Helper()
		var n int64
		require.NoError(t, b.db.Pool.QueryRow(ctx, query, args...).Scan(&n))
		return n
	}

	t.Run("ImportsNewRowsWithConvertedFields", func(t *testing.T) {
		t.Parallel()
		b := setup(t, ImporterConfig{})

		res := importFile(t, b, "v3_three_rows.txt", "a", time.Time{})
		require.Equal(t, eclrs.FileImported, res.Status)
		require.Equal(t, 3, res.Version)
		require.Equal(t, int64(3), res.Rows)
		require.Equal(t, int64(3), res.New)
		require.Zero(t, res.Matched+res.Duplicate+res.Errors)

		f, err := eclrs.GetFile(ctx, b.db.Pool, res.FileID)
		require.NoError(t, err)
		require.Equal(t, eclrs.FileImported, f.Status)
		require.Equal(t, 3, *f.ECLRSVersion)
		require.NotNil(t, f.CompletedAt)
		require.Equal(t, map[int64]int64{111: 1, 1: 1, 71: 1}, f.Statistics.New.ByCounty)

		require.Equal(t, int64(3), count(t, b, `SELECT count(*) FROM test_results WHERE file_id = $1`, res.FileID))
		require.Equal(t, int64(3), count(t, b, `SELECT count(*) FROM abouts WHERE first_seen_file_id = $1 AND checksum_version = 3`, res.FileID))
		require.Equal(t, int64(3), count(t, b, `SELECT count(*) FROM counties WHERE id IN (1, 71, 111)`))
		requireReferencesHold(t, b.db)

		var (
			last, first, phoneNorm, key     string
			middle, employer, schoolPresent *string
			dob                             time.Time
			created, collected              time.Time
			line                            int
			keyID                           int64
		)
		require.NoError(t, b.db.Pool.QueryRow(ctx, `
			SELECT tr.patient_name_last, tr.patient_name_first, tr.patient_name_middle, tr.patient_dob,
			       tr.patient_phone_home_normalized, tr.patient_key, tr.eclrs_create_date, tr.request_collection_date,
			       tr.line_number, a.patient_key_id, tr.employer_name, tr.school_present
			  FROM test_results tr JOIN abouts a ON a.test_result_id = tr.id
			 WHERE tr.request_accession_number = 'ACC-0001'`).Scan(
			&last, &first, &middle, &dob, &phoneNorm, &key, &created, &collected, &line, &keyID, &employer, &schoolPresent))
		require.Equal(t, "QUILL", last)
		require.Equal(t, "ADA MAE", first, "names are stored as sent; upper-casing and splitting are Engine 2's")
		require.Nil(t, middle, "empty fields are NULL")
		require.Equal(t, "1961-02-14", dob.Format(time.DateOnly))
		require.Equal(t, "8455550142", phoneNorm)
		require.Equal(t, "30100000000001", key)
		require.Equal(t, int64(30100000000001), keyID)
		require.Equal(t, "2026-11-02T19:30:05.25Z", created.UTC().Format(time.RFC3339Nano), "New York wall clock, stored as UTC")
		require.Equal(t, "2026-11-01T14:15:00Z", collected.UTC().Format(time.RFC3339Nano))
		require.Equal(t, 2, line)
		require.Nil(t, employer)
		require.Nil(t, schoolPresent)

		var ambiguous time.Time
		require.NoError(t, b.db.Pool.QueryRow(ctx, `SELECT request_collection_date FROM test_results
			WHERE request_accession_number = 'ACC-0002'`).Scan(&ambiguous))
		require.Equal(t, "2021-11-07T06:19:00Z", ambiguous.UTC().Format(time.RFC3339), "the repeated hour resolves to the later instant")
	})

	t.Run("SameObjectTwiceImportsOnce", func(t *testing.T) {
		t.Parallel()
		b := setup(t, ImporterConfig{})

		first := importFile(t, b, "v3_three_rows.txt", "same", time.Time{})
		again := importFile(t, b, "v3_three_rows.txt", "same", time.Time{})
		require.Equal(t, first.FileID, again.FileID)
		require.True(t, again.Already)
		require.Equal(t, eclrs.FileImported, again.Status)
		require.Equal(t, int64(3), again.New, "the result reports what the first import did")
		require.Equal(t, int64(3), count(t, b, `SELECT count(*) FROM test_results`))
		require.Equal(t, int64(1), count(t, b, `SELECT count(*) FROM files`))
	})

	t.Run("RowsSeenInAnEarlierFileAreMatched", func(t *testing.T) {
		t.Parallel()
		b := setup(t, ImporterConfig{})

		importFile(t, b, "v3_three_rows.txt", "monday", time.Time{})
		res := importFile(t, b, "v3_three_rows.txt", "tuesday", time.Time{})
		require.Equal(t, int64(3), res.Matched)
		require.Zero(t, res.New)
		require.Equal(t, int64(3), count(t, b, `SELECT count(*) FROM test_results`))
	})

	t.Run("OlderLayoutOfTheSameResultIsSeen", func(t *testing.T) {
		t.Parallel()
		b := setup(t, ImporterConfig{})

		importFile(t, b, "v3_three_rows.txt", "v3", time.Time{})
		// In v1, the first result is identical; the other two lose their employer and school values, which makes
		// them different results.
		v1 := importFile(t, b, "v1_three_rows.txt", "v1", time.Time{})
		require.Equal(t, 1, v1.Version)
		require.Equal(t, int64(1), v1.Matched)
		require.Equal(t, int64(2), v1.New)

		v2 := importFile(t, b, "v2_three_rows.txt", "v2", time.Time{})
		require.Equal(t, 2, v2.Version)
		require.Equal(t, int64(3), v2.Matched, "v2 carries employer and school values, and no AOE answers: all three are the v3 rows")
	})

	t.Run("NewAnswersMakeANewResult", func(t *testing.T) {
		t.Parallel()
		b := setup(t, ImporterConfig{})

		importFile(t, b, "v3_three_rows.txt", "before", time.Time{})
		res := importFile(t, b, "v3_with_aoe_answers.txt", "after", time.Time{})
		require.Equal(t, int64(1), res.New)
		require.Equal(t, int64(2), res.Matched)
		require.Equal(t, int64(2), count(t, b, `SELECT count(*) FROM test_results WHERE request_accession_number = 'ACC-0001'`))
	})

	t.Run("DuplicateRowsWithinAFileAcrossBatches", func(t *testing.T) {
		t.Parallel()
		// Batches of 2 put the second copies in later batches than the first ones.
		b := setup(t, ImporterConfig{BatchRows: 2, ChunkLines: 1})

		res := importFile(t, b, "duplicate_rows.txt", "d", time.Time{})
		require.Equal(t, int64(5), res.Rows)
		require.Equal(t, int64(3), res.New)
		require.Equal(t, int64(2), res.Duplicate)
		require.Zero(t, res.Matched)
		require.Equal(t, int64(3), count(t, b, `SELECT count(*) FROM test_results`))
		require.Equal(t, []int64{2, 3, 5}, lineNumbers(t, b.db, res.FileID), "the first copy of each row is the one kept")
		requireReferencesHold(t, b.db)
	})

	t.Run("MalformedRowsAreRecordedAndTheRestImports", func(t *testing.T) {
		t.Parallel()
		b := setup(t, ImporterConfig{})

		res := importFile(t, b, "malformed_rows.txt", "m", time.Time{})
		require.Equal(t, eclrs.FileImported, res.Status)
		require.Equal(t, int64(6), res.Rows)
		require.Equal(t, int64(2), res.New)
		require.Equal(t, int64(4), res.Errors)

		rows, err := b.db.Pool.Query(ctx, `SELECT line_number, field, reason, raw_data FROM file_row_errors
			WHERE file_id = $1 ORDER BY line_number`, res.FileID)
		require.NoError(t, err)
		type rowErr struct {
			line        int
			field       string
			reason, raw string
		}
		var got []rowErr
		for rows.Next() {
			var e rowErr
			require.NoError(t, rows.Scan(&e.line, &e.field, &e.reason, &e.raw))
			require.NotEmpty(t, e.reason)
			require.NotEmpty(t, e.raw)
			got = append(got, e)
		}
		require.NoError(t, rows.Err())
		require.Len(t, got, 4)
		require.Equal(t, []int{3, 4, 5, 6}, []int{got[0].line, got[1].line, got[2].line, got[3].line})
		require.Equal(t, "PIDCOUNTYCODE", got[2].field)
		require.Equal(t, "PIDEMPLOYERNAME", got[3].field)
		require.Equal(t, []int64{2, 7}, lineNumbers(t, b.db, res.FileID))
	})

	t.Run("BadHeaderFailsTheFileCleanly", func(t *testing.T) {
		t.Parallel()
		b := setup(t, ImporterConfig{})

		res := importFile(t, b, "bad_header.txt", "h", time.Time{})
		require.Equal(t, eclrs.FileFailed, res.Status)
		require.Contains(t, res.Reason, "unexpected header")
		require.Zero(t, count(t, b, `SELECT count(*) FROM test_results`))
		f, err := eclrs.GetFile(ctx, b.db.Pool, res.FileID)
		require.NoError(t, err)
		require.Equal(t, eclrs.FileFailed, f.Status)
		require.Equal(t, res.Reason, f.FailureReason)

		again := importFile(t, b, "bad_header.txt", "h", time.Time{})
		require.True(t, again.Already, "a failed file is not retried forever")
		require.Equal(t, eclrs.FileFailed, again.Status)
	})

	t.Run("HeaderOnlyFileImportsNothing", func(t *testing.T) {
		t.Parallel()
		b := setup(t, ImporterConfig{})

		res := importFile(t, b, "header_only.txt", "empty", time.Time{})
		require.Equal(t, eclrs.FileImported, res.Status)
		require.Zero(t, res.Rows)
		f, err := eclrs.GetFile(ctx, b.db.Pool, res.FileID)
		require.NoError(t, err)
		require.NotNil(t, f.Statistics, "statistics are written even for a file without rows")
		require.NotNil(t, f.CompletedAt)
	})

	t.Run("CRLFAndQuotedValues", func(t *testing.T) {
		t.Parallel()
		b := setup(t, ImporterConfig{})

		crlf := importFile(t, b, "crlf_endings.txt", "crlf", time.Time{})
		require.Equal(t, int64(2), crlf.Rows)
		require.Equal(t, int64(2), crlf.Matched+crlf.New)
		quoted := importFile(t, b, "quoted_values.txt", "q", time.Time{})
		require.Equal(t, int64(1), quoted.New)
		var lab, addr2 string
		require.NoError(t, b.db.Pool.QueryRow(ctx, `SELECT lab_name, patient_address_2 FROM test_results WHERE file_id = $1`,
			quoted.FileID).Scan(&lab, &addr2))
		require.Equal(t, "HUDSON | VALLEY LAB", lab)
		require.Equal(t, `Apt "B"`, addr2)
	})

	t.Run("OlderExportIsSkipped", func(t *testing.T) {
		t.Parallel()
		b := setup(t, ImporterConfig{})
		noon := time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)

		importFile(t, b, "v3_three_rows.txt", "noon", noon)
		res := importFile(t, b, "v3_with_aoe_answers.txt", "morning", noon.Add(-3*time.Hour))
		require.Equal(t, eclrs.FileSkipped, res.Status)
		require.Contains(t, res.Reason, "already imported")
		require.Equal(t, int64(3), count(t, b, `SELECT count(*) FROM test_results`))

		later := importFile(t, b, "v3_with_aoe_answers.txt", "evening", noon.Add(3*time.Hour))
		require.Equal(t, eclrs.FileImported, later.Status)
	})

	// importBytes imports data as the object name.
	importBytes := func(t *testing.T, b *testBundle, name string, data []byte) *Result {
		t.Helper()
		res, err := b.importer.Import(ctx, fixtureObject(name, name, time.Time{}), func(context.Context) (io.ReadCloser, error) {
			return io.NopCloser(bytes.NewReader(data)), nil
		})
		require.NoError(t, err)
		return res
	}

	t.Run("TruncatedExportSaysTheFileEndsMidRow", func(t *testing.T) {
		t.Parallel()
		b := setup(t, ImporterConfig{})
		var export bytes.Buffer
		require.NoError(t, eclrsgen.Write(&export, eclrsgen.Options{Rows: 3, Seed: 9}))
		cut := export.Bytes()[:export.Len()-300] // the transfer stopped in the middle of the last row

		res := importBytes(t, b, "cut.txt", cut)
		require.Equal(t, eclrs.FileImported, res.Status, "the complete rows import")
		require.EqualValues(t, 2, res.New)
		var reason string
		require.NoError(t, b.db.Pool.QueryRow(ctx, `SELECT reason FROM file_row_errors WHERE file_id = $1 AND line_number = 4`,
			res.FileID).Scan(&reason))
		require.Contains(t, reason, "the file ends in the middle of this row (no line ending after it)")

		// A complete last row without a line ending is just a row.
		whole := bytes.TrimRight(export.Bytes(), "\n")
		res = importBytes(t, b, "whole.txt", whole)
		require.Zero(t, res.Errors)
	})

	t.Run("CompressedExportIsNamedAsSuch", func(t *testing.T) {
		t.Parallel()
		b := setup(t, ImporterConfig{})
		var export, zipped bytes.Buffer
		require.NoError(t, eclrsgen.Write(&export, eclrsgen.Options{Rows: 3, Seed: 9}))
		zw := gzip.NewWriter(&zipped)
		_, err := zw.Write(export.Bytes())
		require.NoError(t, err)
		require.NoError(t, zw.Close())

		res := importBytes(t, b, "export.txt.gz", zipped.Bytes())
		require.Equal(t, eclrs.FileFailed, res.Status)
		require.Contains(t, res.Reason, "is gzip-compressed, not a text export")
		require.NotContains(t, res.Reason, "header")
	})

	t.Run("MissingObjectFailsPermanently", func(t *testing.T) {
		t.Parallel()
		b := setup(t, ImporterConfig{})

		res, err := b.importer.Import(ctx, fixtureObject("gone.txt", "x", time.Time{}), func(context.Context) (io.ReadCloser, error) {
			return nil, &PermanentError{Err: errors.New("NoSuchKey")}
		})
		require.NoError(t, err)
		require.Equal(t, eclrs.FileFailed, res.Status)
		require.Contains(t, res.Reason, "NoSuchKey")
	})

	t.Run("ReadFailureRollsBackAndTheRetryIsComplete", func(t *testing.T) {
		t.Parallel()
		b := setup(t, ImporterConfig{BatchRows: 1, ChunkLines: 1})
		path := filepath.Join("testdata", "duplicate_rows.txt")
		data, err := os.ReadFile(path)
		require.NoError(t, err)
		obj := fixtureObject("duplicate_rows.txt", "flaky", time.Time{})

		// The connection drops after three rows have been written.
		cut := bytes.Index(data, []byte("\n"))
		for range 4 {
			cut += bytes.Index(data[cut+1:], []byte("\n")) + 1
		}
		_, err = b.importer.Import(ctx, obj, func(context.Context) (io.ReadCloser, error) {
			return io.NopCloser(io.MultiReader(bytes.NewReader(data[:cut+1]), errReader{})), nil
		})
		require.ErrorContains(t, err, "connection reset")
		require.Zero(t, count(t, b, `SELECT count(*) FROM test_results`), "nothing of a failed attempt remains")

		res := importFile(t, b, "duplicate_rows.txt", "flaky", time.Time{})
		require.Equal(t, eclrs.FileImported, res.Status)
		require.Equal(t, int64(3), res.New)
		require.Equal(t, int64(2), res.Duplicate)
		f, err := eclrs.GetFile(ctx, b.db.Pool, res.FileID)
		require.NoError(t, err)
		require.Equal(t, 2, f.Attempts)
	})
}

// requireReferencesHold checks what foreign keys would: test_results carries none, for speed, so the importer must
// have written every file and county a row points at.
func requireReferencesHold(t *testing.T, db *pgtest.DB) {
	t.Helper()
	var orphans int64
	require.NoError(t, db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM test_results tr
		WHERE NOT EXISTS (SELECT 1 FROM files f WHERE f.id = tr.file_id)
		   OR NOT EXISTS (SELECT 1 FROM counties c WHERE c.id = tr.county_id)`).Scan(&orphans))
	require.Zero(t, orphans)
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) {
	return 0, errors.New("read tcp: connection reset by peer")
}

func fixtureObject(name, etag string, eventTime time.Time) eclrs.Object {
	return eclrs.Object{Filename: "s3://fixtures/" + name, Bucket: "fixtures", Key: name, ETag: etag, EventTime: eventTime}
}

func fileOpener(path string) OpenFunc {
	return func(context.Context) (io.ReadCloser, error) { return os.Open(path) }
}

func lineNumbers(t *testing.T, db *pgtest.DB, fileID int64) []int64 {
	t.Helper()
	rows, err := db.Pool.Query(context.Background(), `SELECT line_number FROM test_results WHERE file_id = $1 ORDER BY line_number`, fileID)
	require.NoError(t, err)
	var out []int64
	for rows.Next() {
		var n int64
		require.NoError(t, rows.Scan(&n))
		out = append(out, n)
	}
	require.NoError(t, rows.Err())
	return out
}
