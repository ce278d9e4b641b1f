package report

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestStatusCacheNeverWaitsOnSlowCounting: once a report exists, a request is answered with it (and a note saying so)
// when a newer read is slow or fails, never with an error; the read that was slow is served once it ends.
func TestStatusCacheNeverWaitsOnSlowCounting(t *testing.T) {
	t.Parallel()
	reads := make(chan func() (*Status, error))
	c := &cache{wait: 0, read: func(context.Context) (*Status, error) { return (<-reads)() }}
	first := &Status{AsOf: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}

	got := make(chan *Status)
	go func() {
		r, err := c.get(t.Context())
		assert.NoError(t, err)
		got <- r
	}()
	reads <- func() (*Status, error) { return first, nil }
	require.Same(t, first, <-got, "with nothing to show, the first request waits for the read")

	c.mu.Lock()
	c.readAt = time.Time{} // stale
	c.mu.Unlock()
	r, err := c.get(t.Context()) // starts a read, which blocks on reads
	require.NoError(t, err)
	require.Equal(t, first.AsOf, r.AsOf)
	require.Contains(t, r.Note, "Counting is taking longer than")
	require.Empty(t, first.Note, "the cached report itself is not marked")

	second := &Status{AsOf: first.AsOf.Add(time.Minute)}
	reads <- func() (*Status, error) { return second, nil }
	require.Eventually(t, func() bool { r, err := c.get(t.Context()); return err == nil && r == second },
		10*time.Second, time.Millisecond, "the slow read is served once it ends")

	c.mu.Lock()
	c.readAt, c.triedAt = time.Time{}, time.Time{}
	c.mu.Unlock()
	go func() { reads <- func() (*Status, error) { return nil, errors.New("connection refused") } }()
	require.Eventually(t, func() bool {
		r, err := c.get(t.Context())
		return err == nil && strings.Contains(r.Note, "The last read of the status failed (connection refused)")
	}, 10*time.Second, time.Millisecond, "a failed read shows the last report with the error")
}
