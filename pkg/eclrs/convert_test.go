package eclrs

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestParseDOB(t *testing.T) {
	t.Parallel()

	tests := []struct {
		in   string
		want string // YYYY-MM-DD, or "" for no date
	}{
		{"01MAR1947:00:00:00.000000", "1947-03-01"},
		{"01MAR1947", "1947-03-01"},
		{"01Mar1947", "1947-03-01"},
		{"01mAR1947junk", "1947-03-01"},
		{"29FEB2020:00:00:00.000000", "2020-02-29"},
		{"31DEC1999", "1999-12-31"},
		{"01JAN0001", "0001-01-01"},
		{"29FEB2019", ""},
		{"31APR2020", ""},
		{"32JAN2020", ""},
		{"00JAN2020", ""},
		{"01XYZ1947", ""},
		{"01M@R1947", ""},
		{"01MAR0000", ""}, // Postgres has no year 0
		{"1MAR1947", ""},
		{"01MAR194", ""},
		{"01MAR19a7", ""},
		{" 1MAR1947", ""},
		{"1947-03-01", ""},
		{"", ""},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()

			got, ok := ParseDOB(tt.in)
			if tt.want == "" {
				require.False(t, ok)
				return
			}
			require.True(t, ok)
			require.Equal(t, tt.want, got.Format(time.DateOnly))
			require.Equal(t, time.UTC, got.Location())
		})
	}
}

func TestParseTimestamp(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name string
		in   string
		want string // RFC 3339 in UTC with microseconds, or "" for no timestamp
	}{
		{"Daylight", "20MAR2020:06:03:36.589000", "2020-03-20T10:03:36.589000Z"},
		{"Standard", "15JAN2021:12:00:00.000001", "2021-01-15T17:00:00.000001Z"},
		{"LowerCaseMonth", "20mar2020:06:03:36.589000", "2020-03-20T10:03:36.589000Z"},
		{"ExtraTextIgnored", "20MAR2020:06:03:36.5890009999 EDT", "2020-03-20T10:03:36.589000Z"},
		{"FallBackAmbiguousPicksLater", "07NOV2021:01:19:00.000000", "2021-11-07T06:19:00.000000Z"},
		{"FallBackBeforeRepeat", "07NOV2021:00:59:59.000000", "2021-11-07T04:59:59.000000Z"},
		{"FallBackAfterRepeat", "07NOV2021:02:00:00.000000", "2021-11-07T07:00:00.000000Z"},
		{"SpringForwardGap", "14MAR2021:02:30:00.000000", "2021-03-14T07:00:00.000000Z"},
		{"SpringForwardGapStart", "14MAR2021:02:00:00.000000", "2021-03-14T07:00:00.000000Z"},
		{"SpringForwardGapKeepsFraction", "14MAR2021:02:59:59.999999", "2021-03-14T07:00:00.999999Z"},
		{"SpringForwardBefore", "14MAR2021:01:59:59.999999", "2021-03-14T06:59:59.999999Z"},
		{"SpringForwardAfter", "14MAR2021:03:00:00.000000", "2021-03-14T07:00:00.000000Z"},
		// Rules before 2007: DST began on the first Sunday of April, ended the last Sunday of October.
		{"OldRulesGap", "07APR1991:02:30:00.000000", "1991-04-07T07:00:00.000000Z"},
		{"OldRulesAmbiguous", "27OCT1991:01:30:00.000000", "1991-10-27T06:30:00.000000Z"},
		{"LeapDay", "29FEB2020:23:59:59.999999", "2020-03-01T04:59:59.999999Z"},
		{"NoFraction", "01MAR1947:00:00:00", ""},
		{"FiveFractionDigits", "20MAR2020:06:03:36.58900", ""},
		{"FractionWithLetter", "20MAR2020:06:03:36.58900a", ""},
		{"SpaceSeparator", "20MAR2020 06:03:36.589000", ""},
		{"CommaFraction", "20MAR2020:06:03:36,589000", ""},
		{"Hour24", "20MAR2020:24:00:00.000000", ""},
		{"Minute60", "20MAR2020:06:60:00.000000", ""},
		{"LeapSecond", "31DEC2016:23:59:60.000000", ""},
		{"BadDay", "31APR2020:06:03:36.589000", ""},
		{"BadMonth", "20MRZ2020:06:03:36.589000", ""},
		{"YearZero", "20MAR0000:06:03:36.589000", ""},
		{"SignedHour", "20MAR2020:-1:03:36.589000", ""},
		{"Empty", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			got, ok := ParseTimestamp(tt.in)
			if tt.want == "" {
				require.False(t, ok)
				return
			}
			require.True(t, ok)
			require.Equal(t, tt.want, got.Format("2006-01-02T15:04:05.000000Z07:00"))
			require.Equal(t, time.UTC, got.Location())
		})
	}
}

// TestParseTimestampMatchesTimeDate checks every hour of several years against the
// standard library, away from the hours where time.Date's choice is unspecified.
func TestParseTimestampMatchesTimeDate(t *testing.T) {
	t.Parallel()

	for u := time.Date(1969, 1, 1, 0, 0, 0, 0, time.UTC); u.Year() < 2040; u = u.Add(97 * time.Minute) {
		local := u.In(newYork)
		s := local.Format("02Jan2006:15:04:05.000000")
		got, ok := ParseTimestamp(s)
		require.True(t, ok, s)
		if !got.Equal(u) {
			// Only the repeated hour may differ: both instants show the same wall clock.
			require.Equal(t, got.In(newYork).Format(time.DateTime), local.Format(time.DateTime), s)
			require.True(t, got.After(u), "%s: the later instant is chosen", s)
		}
	}
}

func TestCivilDays(t *testing.T) {
	t.Parallel()

	// Every 997th day from 0001-01-01 to 9999-12-31, against the standard library.
	first := time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC).Unix() / secondsPerDay
	last := time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC).Unix() / secondsPerDay
	for day := first; day <= last; day += 997 {
		want := time.Unix(day*secondsPerDay, 0).UTC()
		y, m, d := civilFromDays(day)
		require.Equal(t, want.Format(time.DateOnly), time.Date(y, m, d, 0, 0, 0, 0, time.UTC).Format(time.DateOnly))
		require.Equal(t, day, daysFromCivil(want.Year(), want.Month(), want.Day()))
	}
}

func TestNewYorkInstantCache(t *testing.T) {
	t.Parallel()

	// Days that collide in the cache still convert correctly, in any order.
	for _, s := range []string{
		"20MAR2020:06:03:36.589000", "14MAR2021:02:30:00.000000", "20MAR2020:06:03:36.589000",
		"07NOV2021:01:19:00.000000", "07NOV2021:01:19:00.000000", "14MAR2021:02:30:00.000000",
	} {
		got, ok := ParseTimestamp(s)
		require.True(t, ok)
		want := map[string]string{
			"20MAR2020:06:03:36.589000": "2020-03-20T10:03:36.589Z",
			"14MAR2021:02:30:00.000000": "2021-03-14T07:00:00Z",
			"07NOV2021:01:19:00.000000": "2021-11-07T06:19:00Z",
		}[s]
		require.Equal(t, want, got.Format(time.RFC3339Nano))
	}
	// 2048 days apart: the same cache slot, different offsets.
	summer, ok := ParseTimestamp("01JUL2020:12:00:00.000000")
	require.True(t, ok)
	winter, ok := ParseTimestamp("08FEB2026:12:00:00.000000")
	require.True(t, ok)
	again, ok := ParseTimestamp("01JUL2020:12:00:00.000000")
	require.True(t, ok)
	require.Equal(t, "2020-07-01T16:00:00Z", summer.Format(time.RFC3339))
	require.Equal(t, "2026-02-08T17:00:00Z", winter.Format(time.RFC3339))
	require.Equal(t, summer, again)
}

func TestNormalizePhone(t *testing.T) {
	t.Parallel()

	tests := []struct {
		in, want string
	}{
		{"(555) 123-4567", "5551234567"},
		{"111-123-4567", "1111234567"},
		{"5551234567", "5551234567"},
		{"+1 (555) 123-4567 x89", "1555123456789"},
		{"N/A", ""},
		{"", ""},
		{"５５５", ""}, // only ASCII digits count, as in the original's [^\d]
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.want, NormalizePhone(tt.in))
		})
	}
}

func BenchmarkParseTimestamp(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := ParseTimestamp("20MAR2020:06:03:36.589000"); !ok {
			b.Fatal("not parsed")
		}
	}
}
