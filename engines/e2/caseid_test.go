package e2

import (
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestNewCaseIDIsATimeOrderedUUID(t *testing.T) {
	t.Parallel()
	shape := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	at := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	seen := map[string]bool{}
	prev := ""
	for i := range 1000 {
		id := newCaseID(at.Add(time.Duration(i) * time.Millisecond))
		require.Regexp(t, shape, id)
		require.False(t, seen[id])
		seen[id] = true
		require.Greater(t, id, prev, "ids of later milliseconds sort later")
		prev = id
	}
}
