package report

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// readTimeout bounds one read of the status.
const readTimeout = 10 * time.Second

// cacheFor is how long a report is served again: the page refreshes itself every 30 s in every open tab, and
// monitors may poll it too.
const cacheFor = 10 * time.Second

// waitFor is how long a request waits for a newer report before it is served the last one with a note: a page
// that answers late, or with 503, because the database is slow to count helps nobody at 3 a.m.
const waitFor = 2 * time.Second

// cache serves the last report while it is fresh, and reads at most one at a time, in the background, so the
// database pays one read per cacheFor however many ask and a slow read never holds a request past waitFor while an
// older report can be shown.
type cache struct {
	read func(context.Context) (*Status, error)
	// wait is waitFor; tests shorten it.
	wait time.Duration

	mu       sync.Mutex
	last     *Status
	readAt   time.Time
	lastErr  error         // why the last read failed; nil when it did not
	triedAt  time.Time     // when the last read started
	inFlight chan struct{} // closed when the read under way ends; nil when none is
}

func (c *cache) get(ctx context.Context) (*Status, error) {
	c.mu.Lock()
	if c.last != nil && time.Since(c.readAt) < cacheFor {
		defer c.mu.Unlock()
		return c.last, nil
	}
	if c.inFlight == nil && c.lastErr != nil && time.Since(c.triedAt) < cacheFor {
		// The last read failed a moment ago: answer from it rather than ask a struggling database again.
		defer c.mu.Unlock()
		return c.answer(nil)
	}
	done := c.inFlight
	if done == nil {
		done = make(chan struct{})
		c.inFlight, c.triedAt = done, time.Now()
		go c.refresh(done)
	}
	last := c.last
	c.mu.Unlock()

	wait := make(<-chan time.Time) // with nothing to show meanwhile, wait for the read
	if last != nil {
		t := time.NewTimer(c.wait)
		defer t.Stop()
		wait = t.C
	}
	select {
	case <-done:
	case <-wait:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.answer(last)
}

// answer returns the newest report: the one just read if it is not before, else before with a note saying why
// nothing newer is shown. With no report at all, it returns why. c.mu is held.
func (c *cache) answer(before *Status) (*Status, error) {
	switch {
	case c.last == nil:
		return nil, c.lastErr
	case c.last != before && c.lastErr == nil && c.inFlight == nil:
		return c.last, nil
	}
	stale := *c.last
	if c.lastErr != nil {
		stale.Note = fmt.Sprintf("The last read of the status failed (%v); shown is the report read at %s.",
			c.lastErr, formatTime(&c.last.AsOf))
	} else {
		stale.Note = fmt.Sprintf("Counting is taking longer than %s; shown is the report read at %s.",
			c.wait, formatTime(&c.last.AsOf))
	}
	return &stale, nil
}

// refresh reads a report, detached from the request that started it so that the next request can use it.
func (c *cache) refresh(done chan struct{}) {
	ctx, cancel := context.WithTimeout(context.Background(), readTimeout)
	defer cancel()
	r, err := c.read(ctx)
	if errors.Is(err, context.DeadlineExceeded) {
		err = fmt.Errorf("the database did not answer within %s (overloaded?): %w", readTimeout, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err == nil {
		c.last, c.readAt = r, time.Now()
	}
	c.lastErr, c.inFlight = err, nil
	close(done)
}
