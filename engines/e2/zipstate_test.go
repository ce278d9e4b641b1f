package e2

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestZipState(t *testing.T) {
	t.Parallel()

	tests := []struct {
		zip  string
		want string
	}{
		{"00510", "NY"},
		{"94612", "CA"},
		{"00000", ""},
		{"UNKNOWN", ""},
		{"10001", "NY"},
		{"07030", "NJ"},
		{"12345-6789", "NY"},
		{"1234", ""},
		{"", ""},
		{"123456", ""},
		{"12345-678", ""},
		{"12345 6789", ""},
		{"12345-ABCD", ""},
		{"ABCDE", ""},
		{" 1234", ""},
		{"00601", "PR"},
		{"00801", "VI"},
		{"02108", "MA"},
		{"05501", "MA"},
		{"05401", "VT"},
		{"09001", "AE"},
		{"20001", "DC"},
		{"20166", "VA"},
		{"21201", "MD"},
		{"21301", ""},
		{"34001", "AA"},
		{"33101", "FL"},
		{"73301", "TX"},
		{"73101", "OK"},
		{"79901", "TX"},
		{"88501", "TX"},
		{"96201", "AP"},
		{"96813", "HI"},
		{"96910", "GU"},
		{"97201", "OR"},
		{"99501", "AK"},
		{"99999", "AK"},
	}
	for _, tt := range tests {
		t.Run(tt.zip, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.want, zipState(tt.zip))
		})
	}
}

func TestZipPrefixStatesAreOrdered(t *testing.T) {
	t.Parallel()

	last := -1
	for _, r := range zipPrefixStates {
		require.LessOrEqual(t, r.from, r.to, "%+v", r)
		require.Greater(t, r.from, last, "%+v overlaps or is out of order", r)
		require.Len(t, r.state, 2, "%+v", r)
		last = r.to
	}
	require.Equal(t, 999, last)
}
