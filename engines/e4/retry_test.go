package e4

import (
	"testing"
	"time"

	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"
	"github.com/viaduct-nys/viaduct/pkg/casedb"
)

func TestRetryPolicySpansAboutAWeek(t *testing.T) {
	t.Parallel()
	var p RetryPolicy
	p.setDefaults()
	want := []time.Duration{15 * time.Second, 30 * time.Second, time.Minute, 2 * time.Minute, 4 * time.Minute,
		8 * time.Minute, 16 * time.Minute, 32 * time.Minute, 64 * time.Minute, 128 * time.Minute, 256 * time.Minute,
		512 * time.Minute, 1024 * time.Minute, 24 * time.Hour, 24 * time.Hour, 24 * time.Hour, 24 * time.Hour,
		24 * time.Hour, 24 * time.Hour}
	var total time.Duration
	for attempt := 1; attempt < casedb.CaseLoaderMaxAttempts; attempt++ {
		require.Equal(t, want[attempt-1], p.Delay(attempt), "after attempt %d", attempt)
		total += p.Delay(attempt)
	}
	require.Equal(t, 641265*time.Second, total, "about 7.4 days from the first attempt to the last")
}

func TestRetryPolicyJitter(t *testing.T) {
	t.Parallel()
	p := RetryPolicy{Base: 100 * time.Second, Cap: time.Hour}
	for range 100 {
		before := time.Now()
		next := p.NextRetry(&rivertype.JobRow{Attempt: 2})
		after := time.Now()
		// 200 s give or take a tenth, from an instant between before and after.
		require.False(t, next.Before(before.Add(180*time.Second)), "%s", next.Sub(before))
		require.False(t, next.After(after.Add(220*time.Second)), "%s", next.Sub(after))
	}
}
