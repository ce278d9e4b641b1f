package e1

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"

	"github.com/viaduct-nys/viaduct/pkg/eclrs"
	"github.com/viaduct-nys/viaduct/pkg/eclrs/eclrsgen"
	"github.com/viaduct-nys/viaduct/pkg/pgtest"
)

// TestRawLine imports ordinary and awkward rows in every layout and checks that raw_line gives back every line
// exactly, and that raw_data is left NULL exactly where eclrs.Record.RawRebuildable says the columns rebuild it: the
// Go decision and the SQL rebuild (migrations/00007_storage.sql) must agree, or a line would be lost.
func TestRawLine(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.New(t)
	importer := NewImporter(ImporterConfig{}, db.Pool, zaptest.NewLogger(t), nil)

	// Awkward values, each put into an ordinary row, and whether the columns still rebuild the line. Positions are
	// v3 positions; those before PIDEMPLOYERNAME are the same in every layout.
	awkward := []struct {
		field     int
		value     string
		rebuilt   bool
		v3only    bool
		condition string
	}{
		{eclrs.FieldCollectionDate, "25mar2021:01:22:59.000000", false, false, "a month in lower case"},
		{eclrs.FieldCreateDate, "14MAR2021:02:30:00.000000", false, false, "a time inside the spring-forward gap"},
		{eclrs.FieldCreateDate, "07NOV2021:01:19:00.000000", true, false, "a time in the repeated hour"},
		{eclrs.FieldCreateDate, "25MAR2021:01:22:59.0000001", false, false, "a seventh fraction digit"},
		{eclrs.FieldCreateDate, "25MAR2021:01:22:59", false, false, "no fraction"},
		{eclrs.FieldResultAnalysisDate, "31DEC1969:23:00:00.000000", false, false, "a year before 1970"},
		{eclrs.FieldResultAnalysisDate, "31DEC2099:23:00:00.000000", true, false, "the year 2099"},
		{eclrs.FieldResultAnalysisDate, "01JAN2100:00:00:00.000000", false, false, "a year after 2099"},
		{eclrs.FieldPatientUpdatedAt, "31DEC2016:23:59:60.000000", false, false, "a leap second"},
		{eclrs.FieldPatientUpdatedAt, "N/A", false, false, "a timestamp that does not parse"},
		{eclrs.FieldResultObservationDate, "", true, false, "no timestamp"},
		{eclrs.FieldAOEDate, "29FEB2024:12:00:00.123456", true, true, "an AOE timestamp"},
		{eclrs.FieldSymptomOnsetDate, "03nov2024:01:30:00.000000", false, true, "an AOE timestamp in lower case"},
		{eclrs.FieldCountyCode, "0111", false, false, "a county code with a leading zero"},
		{eclrs.FieldCountyCode, "7", true, false, "a one-digit county code"},
		{eclrs.FieldPatientDOB, "01MAR1947", false, false, "a date of birth without a time"},
		{eclrs.FieldPatientDOB, "01mar1947:00:00:00.000000", false, false, "a date of birth in lower case"},
		{eclrs.FieldPatientDOB, "01MAR1947:12:00:00.000000", false, false, "a date of birth at noon"},
		{eclrs.FieldPatientDOB, "31FEB1947:00:00:00.000000", false, false, "a date of birth that does not exist"},
		{eclrs.FieldPatientDOB, "01MAR0999:00:00:00.000000", true, false, "a date of birth before the year 1000"},
		{eclrs.FieldPatientDOB, "", true, false, "no date of birth"},
		{eclrs.FieldPatientAddress2, `C:\temp` + "\t\\N\rx", true, false, "a backslash, a tab and a carriage return"},
		{eclrs.FieldPatientZip, "  ", true, false, "a value of spaces"},
		{eclrs.FieldPatientCity, "ZOË ✓", true, false, "letters beyond ASCII"},
		{eclrs.FieldPatientKey, "0042", true, false, "a patient key with a leading zero"},
		{eclrs.FieldLabName, `"ACME"`, false, false, "a needlessly quoted value"},
		{eclrs.FieldLabName, `"ACME | LABS"`, false, false, "a quoted value holding a pipe"},
	}

	for _, v := range []eclrs.Version{eclrs.V1, eclrs.V2, eclrs.V3} {
		t.Run(v.String(), func(t *testing.T) {
			var gen bytes.Buffer
			require.NoError(t, eclrsgen.Write(&gen, eclrsgen.Options{Rows: 1000, Seed: int64(10 + v), Version: v}))
			lines := strings.Split(strings.TrimSuffix(gen.String(), "\n"), "\n")

			// Row i+1 (after the header) gets awkward value i; the rest stay as generated.
			want := map[int]bool{} // line number → raw_data left NULL
			for i, a := range awkward {
				if a.v3only && v != eclrs.V3 {
					continue
				}
				n := i + 1
				require.NotContains(t, lines[n], `"`, "row %d of the generated export is quoted", n)
				fields := strings.Split(lines[n], "|")
				fields[a.field] = a.value
				lines[n] = strings.Join(fields, "|")
				want[n+1] = a.rebuilt
			}
			// Surrounding whitespace and a CRLF ending are trimmed away before anything else.
			lines[len(awkward)+1] = "  " + lines[len(awkward)+1] + " \r"

			path := filepath.Join(t.TempDir(), "export.txt")
			require.NoError(t, os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600))
			res, err := importer.Import(ctx, fixtureObject("raw_line_"+v.String()+".txt", v.String(), time.Time{}), fileOpener(path))
			require.NoError(t, err)
			require.Equal(t, eclrs.FileImported, res.Status)
			require.Equal(t, int64(len(lines)-1), res.New, "every row is new and none is malformed")

			type stored struct {
				line           int
				raw, attribute string
				rawDataNull    bool
			}
			rows, err := db.Pool.Query(ctx, `SELECT line_number, raw_line(tr), tr.raw_line, raw_data IS NULL
				  FROM test_results tr WHERE file_id = $1 ORDER BY line_number`, res.FileID)
			require.NoError(t, err)
			got, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (stored, error) {
				var g stored
				err := row.Scan(&g.line, &g.raw, &g.attribute, &g.rawDataNull)
				return g, err
			})
			require.NoError(t, err)
			var seen, cleared int
			for _, g := range got {
				n := g.line
				trimmed := strings.TrimSpace(lines[n-1])
				require.Equal(t, trimmed, g.raw, "line %d", n)
				require.Equal(t, g.raw, g.attribute, "line %d", n)

				r, err := v.ParseLine([]byte(trimmed), n)
				require.NoError(t, err)
				require.Equal(t, r.RawRebuildable(), g.rawDataNull, "line %d", n)
				if rebuilt, ok := want[n]; ok {
					require.Equal(t, rebuilt, g.rawDataNull, "line %d: %s", n, awkward[n-2].condition)
				}
				seen++
				if g.rawDataNull {
					cleared++
				}
			}
			require.Equal(t, len(lines)-1, seen)
			// Only the awkward rows and the generator's few quoted ones keep their line.
			require.Greater(t, cleared, seen*9/10)
		})
	}
}
