package countylist_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/viaduct-nys/viaduct/pkg/casedb"
	"github.com/viaduct-nys/viaduct/pkg/commcare"
	"github.com/viaduct-nys/viaduct/pkg/commcare/commcaretest"
	"github.com/viaduct-nys/viaduct/pkg/countylist"
	"github.com/viaduct-nys/viaduct/pkg/pgtest"
)

// extra905 and extra907 are the entries every list gets appended.
var (
	extra905 = countylist.County{
		FIPS:    "905",
		Name:    "DOH special 905 -- county assign, manual (address missing)",
		Display: "DOH special 905 -- county assign, manual (address missing)",
	}
	extra907 = countylist.County{
		FIPS:    "907",
		Name:    "DOH special 907 -- geocode (county assign, automatic)",
		Display: "DOH special 907 -- geocode (county assign, automatic)",
	}
)

func mustCountyList(t testing.TB, counties []countylist.County) *countylist.List {
	t.Helper()
	list, err := countylist.NewList(counties)
	require.NoError(t, err)
	return list
}

func fipsOf(counties []countylist.County) []string {
	out := make([]string, len(counties))
	for i, c := range counties {
		out[i] = c.FIPS
	}
	return out
}

func TestParseCountyList(t *testing.T) {
	t.Parallel()

	// The test list with its extras, as every accepted shape must yield it.
	want := append(commcaretest.TestCounties(), extra905, extra907)

	t.Run("Shapes", func(t *testing.T) {
		t.Parallel()
		midsomerFields := `{"county_display": "Midsomer", "county_name": "midsomer", "domain": "uk-midsomer-cdcms",
			"fips": "1111", "gaz": "ms-gaz", "is_state_domain": "", "location_id": "a1a1a1a1a1", "participating": "yes",
			"county_sort": "midsomer", "analysis_date": "", "traveler_location_id": "ignored", "other": 7}`
		statewideFields := `{"county_display": "UK Statewide", "county_name": "statewide", "domain": "uk-statewide-cdcms",
			"fips": "1234", "gaz": null, "is_state_domain": "yes", "location_id": "statewide-owner-id", "participating": "yes"}`
		short := []countylist.County{
			want[0],
			{
				FIPS: "1234", Name: "statewide", Display: "UK Statewide", Domain: "uk-statewide-cdcms",
				LocationID: "statewide-owner-id", Participating: true, Statewide: true,
			},
			extra905, extra907,
		}
		tests := []struct {
			name  string
			input string
			want  []countylist.County
		}{
			{"APIResponse", string(commcaretest.CountyListJSON(commcaretest.TestCounties())), want},
			{
				"APIResponseWithoutMeta",
				`{"objects": [{"fields": ` + midsomerFields + `}, {"fields": ` + statewideFields + `}]}`,
				short,
			},
			{
				"ObjectsArray",
				` [{"fields": ` + midsomerFields + `, "fixture_type": "county_list", "id": "x", "resource_uri": ""},
				   {"fields": ` + statewideFields + `}]`,
				short,
			},
			{"FieldsArray", "[" + midsomerFields + "," + statewideFields + "]\n", short},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				list, err := countylist.ParseList(strings.NewReader(tt.input))
				require.NoError(t, err)
				require.Equal(t, tt.want, list.All())
			})
		}
	})

	t.Run("ParticipatingIsAnythingButNo", func(t *testing.T) {
		t.Parallel()
		list, err := countylist.ParseList(strings.NewReader(`[
			{"fips": "1", "domain": "d1", "location_id": "l1", "participating": "yes"},
			{"fips": "2", "domain": "d2", "location_id": "l2"},
			{"fips": "3", "domain": "d3", "location_id": "l3", "participating": "No"},
			{"fips": "4", "participating": "no", "is_state_domain": "no"}
		]`))
		require.NoError(t, err)
		var participating []bool
		for _, c := range list.All()[:4] {
			participating = append(participating, c.Participating)
		}
		require.Equal(t, []bool{true, true, true, false}, participating)
		_, ok := list.Statewide()
		require.False(t, ok)
	})

	t.Run("ExtrasNotDuplicated", func(t *testing.T) {
		t.Parallel()
		list, err := countylist.ParseList(strings.NewReader(`[
			{"fips": "907", "county_name": "ours", "domain": "d", "location_id": "l", "participating": "yes"},
			{"fips": "1", "participating": "no"}
		]`))
		require.NoError(t, err)
		require.Equal(t, []string{"907", "1", "905"}, fipsOf(list.All()))
		c, ok := list.ByFIPS("907")
		require.True(t, ok)
		require.Equal(t, "ours", c.Name, "the list's own entry wins over the extra")
	})

	t.Run("Errors", func(t *testing.T) {
		t.Parallel()
		tests := []struct {
			name  string
			input string
			want  []string // each a line of the error
		}{
			{"Empty", "  \n", []string{"the county list is empty"}},
			{"NotJSON", "fips,county\n1,albany\n", []string{"the county list is neither a JSON object nor a JSON array"}},
			{"BadJSON", `{"objects": [`, []string{"decoding the county list: unexpected end of JSON input"}},
			{"TrailingGarbage", `[] []`, []string{"decoding the county list: invalid character '['"}},
			{"NoObjects", `{"meta": {}}`, []string{`the county list response has no "objects" array`}},
			{"NullObjects", `{"objects": null}`, []string{`the county list response has no "objects" array`}},
			{"ObjectsNotArray", `{"objects": {}}`, []string{"decoding the county list: json: cannot unmarshal object"}},
			{"NoEntries", `{"objects": []}`, []string{"the county list has no entries"}},
			{
				"EntriesNotObjects",
				`[{"fips": "1", "participating": "no"}, 7, null, {"fields": []}, {"fields": null}]`,
				[]string{
					"county list entry 1: not a JSON object",
					"county list entry 2: not a JSON object",
					`county list entry 3: "fields" is not a JSON object`,
					`county list entry 4: "fields" is not a JSON object`,
				},
			},
			{
				"FieldsNotStrings",
				`[{"fips": 7, "participating": true, "county_name": "x"}]`,
				[]string{
					"county list entry 0: fips is not a string",
					"county list entry 0: participating is not a string",
				},
			},
			{
				"BadFIPS",
				`[{"fips": "x", "participating": "no"}, {"fips": "", "participating": "no"},
				  {"fips": "0", "participating": "no"}, {"fips": "-1", "participating": "no"},
				  {"fips": "+7", "participating": "no"}, {"fips": " 7", "participating": "no"},
				  {"fips": "7.0", "participating": "no"}, {"fips": "99999999999999999999", "participating": "no"},
				  {"participating": "no"}]`,
				[]string{
					`county list entry 0 (fips "x"): fips is not a decimal integer`,
					`county list entry 1 (fips ""): fips is missing`,
					`county list entry 2 (fips "0"): fips is not positive`,
					`county list entry 3 (fips "-1"): fips is not a decimal integer`,
					`county list entry 4 (fips "+7"): fips is not a decimal integer`,
					`county list entry 5 (fips " 7"): fips is not a decimal integer`,
					`county list entry 6 (fips "7.0"): fips is not a decimal integer`,
					`county list entry 7 (fips "99999999999999999999"): fips is out of range`,
					`county list entry 8 (fips ""): fips is missing`,
				},
			},
			{
				"DuplicateFIPS",
				`[{"fips": "7", "participating": "no"}, {"fips": "7", "participating": "no"},
				  {"fips": "007", "participating": "no"}]`,
				[]string{
					`county list entry 1 (fips "7"): duplicate fips: entry 0 (fips "7") has the same number`,
					`county list entry 2 (fips "007"): duplicate fips: entry 0 (fips "7") has the same number`,
				},
			},
			{
				"TwoStatewide",
				`[{"fips": "1", "domain": "a", "location_id": "a", "is_state_domain": "yes"},
				  {"fips": "2", "domain": "b", "location_id": "b", "is_state_domain": "yes"}]`,
				[]string{
					`county list entry 1 (fips "2"): more than one statewide entry (is_state_domain "yes"): ` +
						`entry 0 (fips "1") is statewide too`,
				},
			},
			{
				"StatewideNotParticipating",
				`[{"fips": "900", "is_state_domain": "yes", "participating": "no"}]`,
				[]string{`county list entry 0 (fips "900"): the statewide entry is not participating`},
			},
			{
				"ParticipatingWithoutDomainOrLocation",
				`[{"fips": "1", "participating": "yes", "location_id": "l"},
				  {"fips": "3", "participating": "yes", "domain": "d"},
				  {"fips": "5"}]`,
				[]string{
					`county list entry 0 (fips "1"): participating but has no domain`,
					`county list entry 1 (fips "3"): participating but has no location_id`,
					`county list entry 2 (fips "5"): participating but has no domain`,
					`county list entry 2 (fips "5"): participating but has no location_id`,
				},
			},
			{
				"EveryProblemAtOnce",
				`[{"fips": "x", "participating": "no"},
				  {"fips": "900", "domain": "s", "location_id": "s", "is_state_domain": "yes"},
				  {"fips": "900", "is_state_domain": "yes"}]`,
				[]string{
					`county list entry 0 (fips "x"): fips is not a decimal integer`,
					`county list entry 2 (fips "900"): duplicate fips: entry 1 (fips "900") has the same number`,
					`county list entry 2 (fips "900"): more than one statewide entry (is_state_domain "yes"): ` +
						`entry 1 (fips "900") is statewide too`,
					`county list entry 2 (fips "900"): participating but has no domain`,
					`county list entry 2 (fips "900"): participating but has no location_id`,
				},
			},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				list, err := countylist.ParseList(strings.NewReader(tt.input))
				require.Error(t, err)
				require.Nil(t, list)
				lines := strings.Split(err.Error(), "\n")
				require.Len(t, lines, len(tt.want), err.Error())
				for i, want := range tt.want {
					require.True(t, strings.HasPrefix(lines[i], want), "line %d: got %q, want %q…", i, lines[i], want)
				}
			})
		}
	})

	t.Run("TooLarge", func(t *testing.T) {
		t.Parallel()
		_, err := countylist.ParseList(strings.NewReader("[" + strings.Repeat(" ", 9<<20) + "]"))
		require.ErrorContains(t, err, "the county list is larger than 8388608 bytes")
	})

	t.Run("ReadError", func(t *testing.T) {
		t.Parallel()
		_, err := countylist.ParseList(failingReader{})
		require.ErrorContains(t, err, "reading the county list: disk on fire")
	})

	t.Run("NewYorkCounties", func(t *testing.T) {
		t.Parallel()
		list, err := countylist.ParseList(strings.NewReader(string(commcaretest.CountyListJSON(commcaretest.NewYorkCounties()))))
		require.NoError(t, err)
		require.Equal(t, 65+2, list.Len(), "production's 65 entries plus the two extras")
		require.Len(t, list.Participating(), 58, "57 counties and the statewide project")
		statewide, ok := list.Statewide()
		require.True(t, ok)
		require.Equal(t, "900", statewide.FIPS)
		require.Equal(t, "ny-statewide-cdcms", statewide.Domain)
		broome, ok := list.ByFIPS("7")
		require.True(t, ok)
		require.Equal(t, "ny-broome-cdcms", broome.Domain)
		stLawrence, ok := list.ByFIPS("89")
		require.True(t, ok)
		require.Equal(t, "ny-st-lawrence-cdcms", stLawrence.Domain)
		for _, fips := range []string{"5", "47", "61", "81", "85", "125", "127", "905", "907"} {
			c, ok := list.ByFIPS(fips)
			require.True(t, ok, fips)
			require.False(t, c.Participating, fips)
			require.Empty(t, c.Domain, fips)
		}
	})
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("disk on fire") }

func TestNewCountyList(t *testing.T) {
	t.Parallel()

	t.Run("ValidatesLikeParse", func(t *testing.T) {
		t.Parallel()
		_, err := countylist.NewList([]countylist.County{{FIPS: "x"}, {FIPS: "2", Participating: true}})
		require.EqualError(t, err, `county list entry 0 (fips "x"): fips is not a decimal integer`+"\n"+
			`county list entry 1 (fips "2"): participating but has no domain`+"\n"+
			`county list entry 1 (fips "2"): participating but has no location_id`)
		_, err = countylist.NewList(nil)
		require.EqualError(t, err, "the county list has no entries")
	})

	t.Run("AppendsExtrasAndCopies", func(t *testing.T) {
		t.Parallel()
		counties := commcaretest.TestCounties()
		list := mustCountyList(t, counties)
		require.Equal(t, []string{"1111", "9999", "5678", "1234", "905", "907"}, fipsOf(list.All()))

		// Neither the caller's slice nor the one All returns reaches into the list.
		counties[0].Domain = "changed"
		all := list.All()
		all[1].Domain = "changed"
		c, ok := list.ByFIPS("1111")
		require.True(t, ok)
		require.Equal(t, "uk-midsomer-cdcms", c.Domain)
		c, ok = list.ByFIPS("9999")
		require.True(t, ok)
		require.Equal(t, "sw-yggdrasil-cdcms", c.Domain)
	})
}

func TestCountyListLookups(t *testing.T) {
	t.Parallel()
	list := mustCountyList(t, commcaretest.TestCounties())
	midsomer := commcaretest.TestCounties()[0]
	wilkes := commcaretest.TestCounties()[2]
	statewide := commcaretest.TestCounties()[3]

	tests := []struct {
		name   string
		lookup func(string) (countylist.County, bool)
		key    string
		want   countylist.County
		found  bool
	}{
		{"ByFIPS", list.ByFIPS, "1111", midsomer, true},
		{"ByFIPSNonParticipating", list.ByFIPS, "5678", wilkes, true},
		{"ByFIPSExtra", list.ByFIPS, "905", extra905, true},
		{"ByFIPSLeadingZero", list.ByFIPS, "01111", countylist.County{}, false},
		{"ByFIPSUnknown", list.ByFIPS, "1", countylist.County{}, false},
		{"ByFIPSEmpty", list.ByFIPS, "", countylist.County{}, false},
		{"ByDomain", list.ByDomain, "uk-midsomer-cdcms", midsomer, true},
		{"ByDomainNonParticipating", list.ByDomain, "aq-wilkes-cdcms", wilkes, true},
		{"ByDomainStatewide", list.ByDomain, "uk-statewide-cdcms", statewide, true},
		{"ByDomainEmptyNeverMatches", list.ByDomain, "", countylist.County{}, false},
		{"ByDomainUnknown", list.ByDomain, "uk-midsomer", countylist.County{}, false},
		{"ByLocationID", list.ByLocationID, "statewide-owner-id", statewide, true},
		{"ByLocationIDEmptyNeverMatches", list.ByLocationID, "", countylist.County{}, false},
		{"ByLocationIDUnknown", list.ByLocationID, "A1A1A1A1A1", countylist.County{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, ok := tt.lookup(tt.key)
			require.Equal(t, tt.found, ok)
			require.Equal(t, tt.want, got)
		})
	}

	t.Run("Statewide", func(t *testing.T) {
		t.Parallel()
		got, ok := list.Statewide()
		require.True(t, ok)
		require.Equal(t, statewide, got)
		_, ok = mustCountyList(t, commcaretest.TestCounties()[:3]).Statewide()
		require.False(t, ok)
	})

	t.Run("Participating", func(t *testing.T) {
		t.Parallel()
		require.Equal(t, []string{"1111", "9999", "1234"}, fipsOf(list.Participating()))
	})

	t.Run("FIPSCodes", func(t *testing.T) {
		t.Parallel()
		require.Equal(t, []int64{1111, 9999, 5678, 1234, 905, 907}, list.FIPSCodes())
	})

	t.Run("FirstEntryWins", func(t *testing.T) {
		t.Parallel()
		list := mustCountyList(t, []countylist.County{
			{FIPS: "1", Domain: "shared", LocationID: "loc", Participating: true},
			{FIPS: "2", Domain: "shared", LocationID: "loc", Participating: true},
		})
		c, ok := list.ByDomain("shared")
		require.True(t, ok)
		require.Equal(t, "1", c.FIPS)
		c, ok = list.ByLocationID("loc")
		require.True(t, ok)
		require.Equal(t, "1", c.FIPS)
	})
}

func TestCountyListResolve(t *testing.T) {
	t.Parallel()
	withStatewide := mustCountyList(t, append(commcaretest.TestCounties(),
		countylist.County{FIPS: "007", Domain: "padded", LocationID: "padded", Participating: true}))
	withoutStatewide := mustCountyList(t, commcaretest.TestCounties()[:3])

	tests := []struct {
		name    string
		list    *countylist.List
		code    int64
		want    string // fips of the county returned
		res     countylist.Resolution
		wantErr string
	}{
		{"Matched", withStatewide, 1111, "1111", countylist.Matched, ""},
		{"MatchedStatewideItself", withStatewide, 1234, "1234", countylist.Matched, ""},
		{"NonParticipating", withStatewide, 5678, "5678", countylist.NonParticipating, ""},
		{"NonParticipatingExtra", withStatewide, 905, "905", countylist.NonParticipating, ""},
		{"Fallback", withStatewide, 987654321, "1234", countylist.StatewideFallback, ""},
		{"FallbackNegative", withStatewide, -1111, "1234", countylist.StatewideFallback, ""},
		{"SevenIsNotZeroZeroSeven", withStatewide, 7, "1234", countylist.StatewideFallback, ""},
		{"MatchedWithoutStatewide", withoutStatewide, 9999, "9999", countylist.Matched, ""},
		{"NonParticipatingWithoutStatewide", withoutStatewide, 907, "907", countylist.NonParticipating, ""},
		{
			"NoStatewide", withoutStatewide, 42, "", 0,
			`county code 42 is not in the county list and no county found with is_state_domain "yes"`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, res, err := tt.list.Resolve(tt.code)
			if tt.wantErr != "" {
				require.EqualError(t, err, tt.wantErr)
				require.ErrorIs(t, err, countylist.ErrNoStatewide)
				require.Equal(t, countylist.County{}, got)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.res, res)
			require.Equal(t, tt.want, got.FIPS)
		})
	}
}

func TestResolutionString(t *testing.T) {
	t.Parallel()
	require.Equal(t, "matched", countylist.Matched.String())
	require.Equal(t, "non_participating", countylist.NonParticipating.String())
	require.Equal(t, "statewide_fallback", countylist.StatewideFallback.String())
	require.Equal(t, "Resolution(0)", countylist.Resolution(0).String())
}

func TestSeedCounties(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	ids := func(t *testing.T, db casedb.DBTX) []int64 {
		t.Helper()
		rows, err := db.Query(ctx, `SELECT id FROM counties ORDER BY id`)
		require.NoError(t, err)
		got, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		require.NoError(t, err)
		return got
	}

	t.Run("InsertsEveryFIPSOnce", func(t *testing.T) {
		t.Parallel()
		db := pgtest.New(t)
		list := mustCountyList(t, commcaretest.TestCounties())

		inserted, err := countylist.Seed(ctx, db.Pool, list)
		require.NoError(t, err)
		require.Equal(t, int64(6), inserted)
		require.Equal(t, []int64{905, 907, 1111, 1234, 5678, 9999}, ids(t, db.Pool))

		inserted, err = countylist.Seed(ctx, db.Pool, list)
		require.NoError(t, err)
		require.Zero(t, inserted, "seeding again changes nothing")
		require.Equal(t, []int64{905, 907, 1111, 1234, 5678, 9999}, ids(t, db.Pool))
	})

	t.Run("KeepsExistingRows", func(t *testing.T) {
		t.Parallel()
		db := pgtest.New(t)
		_, err := db.Pool.Exec(ctx, `INSERT INTO counties (id, tid) VALUES (1111, 'seen-by-e1'), (71, NULL)`)
		require.NoError(t, err)

		tx, err := db.Pool.Begin(ctx)
		require.NoError(t, err)
		inserted, err := countylist.Seed(ctx, tx, mustCountyList(t, commcaretest.TestCounties()))
		require.NoError(t, err)
		require.Equal(t, int64(5), inserted)
		require.NoError(t, tx.Commit(ctx))

		require.Equal(t, []int64{71, 905, 907, 1111, 1234, 5678, 9999}, ids(t, db.Pool))
		var tid string
		require.NoError(t, db.Pool.QueryRow(ctx, `SELECT tid FROM counties WHERE id = 1111`).Scan(&tid))
		require.Equal(t, "seen-by-e1", tid)
	})

	t.Run("NewYorkCounties", func(t *testing.T) {
		t.Parallel()
		db := pgtest.New(t)
		inserted, err := countylist.Seed(ctx, db.Pool, mustCountyList(t, commcaretest.NewYorkCounties()))
		require.NoError(t, err)
		require.Equal(t, int64(67), inserted)
	})

	t.Run("Errors", func(t *testing.T) {
		t.Parallel()
		_, err := countylist.Seed(ctx, failingDB{}, nil)
		require.EqualError(t, err, "seeding counties: no county list")
		_, err = countylist.Seed(ctx, failingDB{}, mustCountyList(t, commcaretest.TestCounties()))
		require.EqualError(t, err, "seeding counties: database on fire")
	})
}

// failingDB fails every statement.
type failingDB struct{}

func (failingDB) Exec(context.Context, string, ...any) (pgconn.CommandTag, error) {
	return pgconn.CommandTag{}, errors.New("database on fire")
}

func (failingDB) Query(context.Context, string, ...any) (pgx.Rows, error) {
	return nil, errors.New("database on fire")
}

func (failingDB) QueryRow(context.Context, string, ...any) pgx.Row {
	panic("not used")
}

func TestFileCountySource(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()

	t.Run("Reads", func(t *testing.T) {
		t.Parallel()
		path := filepath.Join(dir, "counties.json")
		require.NoError(t, commcaretest.WriteCountyListFile(path, commcaretest.TestCounties()))
		list, err := countylist.FileSource{Path: path}.FetchCounties(ctx)
		require.NoError(t, err)
		require.Equal(t, append(commcaretest.TestCounties(), extra905, extra907), list.All())
	})

	t.Run("Missing", func(t *testing.T) {
		t.Parallel()
		path := filepath.Join(dir, "missing.json")
		_, err := countylist.FileSource{Path: path}.FetchCounties(ctx)
		require.ErrorIs(t, err, os.ErrNotExist)
		require.ErrorContains(t, err, path)
	})

	t.Run("Invalid", func(t *testing.T) {
		t.Parallel()
		path := filepath.Join(dir, "invalid.json")
		require.NoError(t, os.WriteFile(path, []byte(`[{"fips": "x", "participating": "no"}]`), 0o644))
		_, err := countylist.FileSource{Path: path}.FetchCounties(ctx)
		require.EqualError(t, err, "county list file "+path+`: county list entry 0 (fips "x"): fips is not a decimal integer`)
	})

	t.Run("Canceled", func(t *testing.T) {
		t.Parallel()
		canceled, cancel := context.WithCancel(ctx)
		cancel()
		_, err := countylist.FileSource{Path: filepath.Join(dir, "any.json")}.FetchCounties(canceled)
		require.ErrorIs(t, err, context.Canceled)
	})
}

// fetchResult is one answer a scriptedSource gives.
type fetchResult struct {
	list *countylist.List
	err  error
}

// scriptedSource answers each fetch with the next result the test sends, blocking until it does. Because a cache
// fetches again only after it has dealt with the previous answer, a send that goes through proves the previous
// answer was dealt with, so tests need neither sleeps nor a fake clock.
type scriptedSource struct {
	results chan fetchResult
}

func newScriptedSource() *scriptedSource {
	return &scriptedSource{results: make(chan fetchResult)}
}

func (s *scriptedSource) FetchCounties(ctx context.Context) (*countylist.List, error) {
	select {
	case r := <-s.results:
		return r.list, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// answer hands r to the next fetch, failing the test if none comes.
func (s *scriptedSource) answer(t *testing.T, r fetchResult) {
	t.Helper()
	select {
	case s.results <- r:
	case <-time.After(10 * time.Second):
		t.Fatal("the cache never fetched")
	}
}

// stallingSource never answers: it closes fetching when the first fetch starts and waits for the fetch to be
// cancelled.
type stallingSource struct {
	fetching chan struct{}
}

func (s *stallingSource) FetchCounties(ctx context.Context) (*countylist.List, error) {
	close(s.fetching)
	<-ctx.Done()
	return nil, ctx.Err()
}

// gatedSource passes fetches to inner, each only once the test opens the gate for it.
type gatedSource struct {
	gate  chan struct{}
	inner countylist.Source
}

func (s *gatedSource) FetchCounties(ctx context.Context) (*countylist.List, error) {
	select {
	case <-s.gate:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return s.inner.FetchCounties(ctx)
}

func (s *gatedSource) open(t *testing.T) {
	t.Helper()
	select {
	case s.gate <- struct{}{}:
	case <-time.After(10 * time.Second):
		t.Fatal("the cache never fetched")
	}
}

func TestCountyCache(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	// Intervals this short make every wait end at once; the sources decide when a fetch completes.
	quick := countylist.CacheConfig{Refresh: time.Nanosecond, RetryInterval: time.Nanosecond}

	// runCache runs the cache until the test ends and checks that Run then returns nil.
	runCache := func(t *testing.T, cache *countylist.Cache) {
		t.Helper()
		runCtx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- cache.Run(runCtx) }()
		t.Cleanup(func() {
			cancel()
			require.NoError(t, <-done)
		})
	}

	t.Run("Validates", func(t *testing.T) {
		t.Parallel()
		_, err := countylist.NewCache(countylist.CacheConfig{Refresh: -time.Second}, countylist.CacheDeps{})
		require.EqualError(t, err, "county cache: a county source is required\n"+
			"county cache: the refresh interval -1s is negative")
		cache, err := countylist.NewCache(countylist.CacheConfig{}, countylist.CacheDeps{Source: newScriptedSource()})
		require.NoError(t, err)
		require.Nil(t, cache.Current(), "no list before Load")
	})

	t.Run("LoadFailureIsAnError", func(t *testing.T) {
		t.Parallel()
		source := newScriptedSource()
		cache, err := countylist.NewCache(quick, countylist.CacheDeps{Source: source})
		require.NoError(t, err)
		loaded := make(chan error, 1)
		go func() { loaded <- cache.Load(ctx) }()
		source.answer(t, fetchResult{err: errors.New("commcare is down")})
		require.EqualError(t, <-loaded, "loading the county list: commcare is down")
		require.Nil(t, cache.Current())
	})

	t.Run("LoadTimesOut", func(t *testing.T) {
		t.Parallel()
		// Nobody answers, so only the timeout ends the fetch.
		cache, err := countylist.NewCache(countylist.CacheConfig{Timeout: time.Millisecond},
			countylist.CacheDeps{Source: newScriptedSource()})
		require.NoError(t, err)
		require.ErrorIs(t, cache.Load(ctx), context.DeadlineExceeded)
	})

	t.Run("LoadSeedsTheDatabase", func(t *testing.T) {
		t.Parallel()
		db := pgtest.New(t)
		path := filepath.Join(t.TempDir(), "counties.json")
		require.NoError(t, commcaretest.WriteCountyListFile(path, commcaretest.TestCounties()))
		cache, err := countylist.NewCache(quick, countylist.CacheDeps{
			DB:     db.Pool,
			Source: countylist.FileSource{Path: path},
		})
		require.NoError(t, err)
		require.NoError(t, cache.Load(ctx))
		require.Equal(t, 6, cache.Current().Len())
		var n int
		require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*) FROM counties`).Scan(&n))
		require.Equal(t, 6, n)
	})

	t.Run("LoadFailsWhenSeedingFails", func(t *testing.T) {
		t.Parallel()
		source := newScriptedSource()
		cache, err := countylist.NewCache(quick, countylist.CacheDeps{DB: failingDB{}, Source: source})
		require.NoError(t, err)
		loaded := make(chan error, 1)
		go func() { loaded <- cache.Load(ctx) }()
		source.answer(t, fetchResult{list: mustCountyList(t, commcaretest.TestCounties())})
		require.EqualError(t, <-loaded, "loading the county list: seeding counties: database on fire")
		require.Nil(t, cache.Current(), "a list whose counties are not in the database is not served")
	})

	t.Run("RefreshKeepsLastGoodListOnFailure", func(t *testing.T) {
		t.Parallel()
		core, logs := observer.New(zapcore.DebugLevel)
		source := newScriptedSource()
		cache, err := countylist.NewCache(quick, countylist.CacheDeps{Source: source, Logger: zap.New(core)})
		require.NoError(t, err)

		first := mustCountyList(t, commcaretest.TestCounties())
		loaded := make(chan error, 1)
		go func() { loaded <- cache.Load(ctx) }()
		source.answer(t, fetchResult{list: first})
		require.NoError(t, <-loaded)
		require.Same(t, first, cache.Current())
		runCache(t, cache)

		// Two failures; the third fetch starting proves the second failure was handled.
		source.answer(t, fetchResult{err: errors.New("503 from commcare")})
		source.answer(t, fetchResult{err: errors.New("503 again")})
		second := mustCountyList(t, commcaretest.TestCounties()[:2])
		source.answer(t, fetchResult{list: second})
		warnings := logs.FilterMessage("county list refresh failed").All()
		require.Len(t, warnings, 2)
		require.Equal(t, zapcore.WarnLevel, warnings[0].Level)
		fields := warnings[1].ContextMap()
		require.Equal(t, "503 again", fields["error"])
		require.Equal(t, time.Nanosecond, fields["retry_in"])
		require.Equal(t, int64(2), fields["failures"])

		// The same list again: served, but only worth a Debug line.
		source.answer(t, fetchResult{list: mustCountyList(t, commcaretest.TestCounties()[:2])})
		// Equal, not Same: the unchanged list handed over just now may already be current, and is equal.
		require.Equal(t, second, cache.Current(), "the recovered list replaced the last good one")
		refreshed := logs.FilterMessage("county list refreshed").All()
		require.Len(t, refreshed, 1)
		require.Equal(t, zapcore.InfoLevel, refreshed[0].Level)
		require.Equal(t, map[string]any{"counties": int64(4), "changed": true, "failures_before": int64(2)},
			refreshed[0].ContextMap())

		// An answer that changes nothing the test checks, proving the unchanged list was handled.
		source.answer(t, fetchResult{err: errors.New("later")})
		unchanged := logs.FilterMessage("county list unchanged").All()
		require.Len(t, unchanged, 1)
		require.Equal(t, zapcore.DebugLevel, unchanged[0].Level)
		require.Len(t, logs.FilterMessage("county list refreshed").All(), 1, "an unchanged list is not news")
	})

	t.Run("RunLoadsWhenNothingLoaded", func(t *testing.T) {
		t.Parallel()
		source := newScriptedSource()
		cache, err := countylist.NewCache(quick, countylist.CacheDeps{Source: source})
		require.NoError(t, err)
		runCache(t, cache)
		list := mustCountyList(t, commcaretest.TestCounties())
		source.answer(t, fetchResult{list: list})
		source.answer(t, fetchResult{err: errors.New("later")})
		require.Same(t, list, cache.Current())
	})

	t.Run("StopsDuringFetch", func(t *testing.T) {
		t.Parallel()
		source := &stallingSource{fetching: make(chan struct{})}
		core, logs := observer.New(zapcore.DebugLevel)
		cache, err := countylist.NewCache(quick, countylist.CacheDeps{Source: source, Logger: zap.New(core)})
		require.NoError(t, err)
		runCtx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- cache.Run(runCtx) }()
		<-source.fetching
		cancel()
		require.NoError(t, <-done)
		require.Zero(t, logs.FilterLevelExact(zapcore.WarnLevel).Len(), "stopping is not a failed refresh")
	})

	t.Run("SeesFakeCommCareChanges", func(t *testing.T) {
		t.Parallel()
		server := commcaretest.StartTest(t, commcaretest.Options{Counties: commcaretest.TestCounties()})
		client, err := commcare.NewClient(server.ClientConfig())
		require.NoError(t, err)
		source := &gatedSource{gate: make(chan struct{}), inner: client}
		cache, err := countylist.NewCache(quick, countylist.CacheDeps{Source: source})
		require.NoError(t, err)

		loaded := make(chan error, 1)
		go func() { loaded <- cache.Load(ctx) }()
		source.open(t)
		require.NoError(t, <-loaded)
		_, ok := cache.Current().ByFIPS("4321")
		require.False(t, ok)

		server.SetCounties(append(commcaretest.TestCounties(), countylist.County{
			FIPS: "4321", Name: "new", Display: "New", Domain: "uk-new-cdcms", LocationID: "c3c3", Participating: true,
		}))
		runCache(t, cache)
		source.open(t) // the refresh that sees the change
		source.open(t) // proves that refresh was handled
		c, ok := cache.Current().ByFIPS("4321")
		require.True(t, ok)
		require.Equal(t, "uk-new-cdcms", c.Domain)
	})
}

// FuzzParseCountyList checks that no input makes ParseList panic, and that every list it accepts is
// consistent and survives a round trip through CommCare's response shape.
func FuzzParseCountyList(f *testing.F) {
	f.Add(commcaretest.CountyListJSON(commcaretest.TestCounties()))
	f.Add(commcaretest.CountyListJSON(commcaretest.NewYorkCounties()[:5]))
	f.Add([]byte(`[{"fips": "7", "domain": "d", "location_id": "l", "participating": "yes", "is_state_domain": "yes"}]`))
	f.Add([]byte(`[{"fields": {"fips": "007", "participating": "no"}}, {"fips": "905", "participating": "maybe"}]`))
	f.Add([]byte(`{"objects": [{"fields": null}]}`))
	f.Add([]byte(`[{"fips": "1"}, {"fips": "1"}]`))
	f.Add([]byte(`{"objects": [{"fields": {"fips": 7}}]}`))
	f.Add([]byte(`not json`))
	f.Fuzz(func(t *testing.T, data []byte) {
		list, err := countylist.ParseList(strings.NewReader(string(data)))
		if err != nil {
			require.Nil(t, list)
			return
		}
		all := list.All()
		require.Equal(t, len(all), list.Len())
		codes := list.FIPSCodes()
		require.Len(t, codes, len(all))
		seen := make(map[int64]bool)
		for i, c := range all {
			require.Positive(t, codes[i])
			require.False(t, seen[codes[i]], "fips %q repeats a number", c.FIPS)
			seen[codes[i]] = true
			got, ok := list.ByFIPS(c.FIPS)
			require.True(t, ok)
			require.Equal(t, c, got)
			if c.Participating {
				require.NotEmpty(t, c.Domain)
				require.NotEmpty(t, c.LocationID)
			}
			if strconv.FormatInt(codes[i], 10) == c.FIPS {
				_, res, err := list.Resolve(codes[i])
				require.NoError(t, err)
				require.Equal(t, c.Participating, res == countylist.Matched)
			}
		}
		require.True(t, seen[905] && seen[907], "the extras are always there")

		again, err := countylist.ParseList(strings.NewReader(string(commcaretest.CountyListJSON(all))))
		require.NoError(t, err)
		require.Equal(t, all, again.All())
	})
}
