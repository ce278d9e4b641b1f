package report

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestShortDuration(t *testing.T) {
	t.Parallel()
	for d, want := range map[time.Duration]string{
		2 * time.Hour:                        "2h",
		90 * time.Minute:                     "1h30m",
		3*time.Hour + 12*time.Minute:         "3h12m",
		45 * time.Minute:                     "45m",
		20*time.Minute + 5*time.Second:       "20m5s",
		30 * time.Second:                     "30s",
		time.Hour + 30*time.Second:           "1h0m30s",
		1500 * time.Millisecond:              "1.5s",
		10*time.Hour + 10*time.Minute:        "10h10m",
		100*time.Hour + 100*time.Millisecond: "100h0m0.1s",
	} {
		require.Equal(t, want, shortDuration(d), "%s", d)
		back, err := time.ParseDuration(want)
		require.NoError(t, err)
		require.Equal(t, d, back, "%s reads back", want)
	}
}

// TestThresholdsJSON: the thresholds in a report's JSON read as people write durations, and read back.
func TestThresholdsJSON(t *testing.T) {
	t.Parallel()
	raw, err := json.Marshal(Defaults())
	require.NoError(t, err)
	require.JSONEq(t, `{"e1_stale_after": "2h", "e1_importing": {"amber_after": "30m", "red_after": "2h"},
		"e2_waiting": {"amber_after": "10m", "red_after": "1h"}, "e3_waiting": {"amber_after": "5m", "red_after": "30m"},
		"e4_waiting": {"amber_after": "30m", "red_after": "4h"}, "e4_running_longer_than": "3m",
		"e5_current_within": "15m", "e5_failing_red_after": "1h"}`, string(raw))
	var back Thresholds
	require.NoError(t, json.Unmarshal(raw, &back))
	require.Equal(t, Defaults(), back)
	require.Error(t, json.Unmarshal([]byte(`{"e1_stale_after": "soon"}`), &back))
}
