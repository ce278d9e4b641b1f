package main

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/viaduct-nys/viaduct/pkg/status"
)

//go:embed status.html
var statusHTML string

var statusTemplate = template.Must(template.New("status").Parse(statusHTML))

// statusPage is what the template renders: the report, worded as `viaduct status` words it.
type statusPage struct {
	AsOf          string
	Note          string
	RiverUI       bool
	Engines       []engineLine
	FailureWindow string
	Failures      []failureLine
	Domains       []domainLine
	Counts        []countLine
	LastImport    string
}

// failureLine is one row of the page's failure table.
type failureLine struct {
	Engine, Reason string
	Count          int64
	Last           string
}

// domainLine is one row of the page's Engine 5 table.
type domainLine struct {
	Domain, HighWater, Started, Completed, LastError string
}

// newStatusPage serves /status: the overview of `viaduct status` as a server-rendered HTML page that refreshes
// itself, or as JSON with ?format=json, from a report at most statusCacheFor old. riverUI says whether /riverui/ is served, so the page links only to what
// exists.
func newStatusPage(db interface {
	BeginTx(context.Context, pgx.TxOptions) (pgx.Tx, error)
}, riverUI bool) http.Handler {
	cache := &statusCache{read: func(ctx context.Context) (*statusReport, error) { return readStatus(ctx, db) },
		wait: statusWait}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		report, err := cache.get(r.Context())
		if err != nil {
			http.Error(w, "reading the status: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		if r.URL.Query().Get("format") == "json" {
			w.Header().Set("Content-Type", "application/json")
			enc := json.NewEncoder(w)
			enc.SetIndent("", "  ")
			_ = enc.Encode(report)
			return
		}
		// Rendered to a buffer first, so a template error is a 500 and not half a page.
		var buf bytes.Buffer
		if err := statusTemplate.Execute(&buf, newStatusPageData(report, riverUI)); err != nil {
			http.Error(w, "rendering the status page: "+err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write(buf.Bytes())
	})
}

// statusReadTimeout bounds one read of the status.
const statusReadTimeout = 10 * time.Second

// statusCacheFor is how long a report is served again: the page refreshes itself every 30 s in every open tab, and
// monitors may poll it too.
const statusCacheFor = 10 * time.Second

// statusWait is how long a request waits for a newer report before it is served the last one with a note: a page
// that answers late, or with 503, because the database is slow to count helps nobody at 3 a.m.
const statusWait = 2 * time.Second

// statusCache serves the last report while it is fresh, and reads at most one at a time, in the background, so the
// database pays one read per statusCacheFor however many ask and a slow read never holds a request past statusWait
// while an older report can be shown.
type statusCache struct {
	read func(context.Context) (*statusReport, error)
	// wait is statusWait; tests shorten it.
	wait time.Duration

	mu       sync.Mutex
	last     *statusReport
	readAt   time.Time
	lastErr  error         // why the last read failed; nil when it did not
	triedAt  time.Time     // when the last read started
	inFlight chan struct{} // closed when the read under way ends; nil when none is
}

func (c *statusCache) get(ctx context.Context) (*statusReport, error) {
	c.mu.Lock()
	if c.last != nil && time.Since(c.readAt) < statusCacheFor {
		defer c.mu.Unlock()
		return c.last, nil
	}
	if c.inFlight == nil && c.lastErr != nil && time.Since(c.triedAt) < statusCacheFor {
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
func (c *statusCache) answer(before *statusReport) (*statusReport, error) {
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
func (c *statusCache) refresh(done chan struct{}) {
	ctx, cancel := context.WithTimeout(context.Background(), statusReadTimeout)
	defer cancel()
	r, err := c.read(ctx)
	if errors.Is(err, context.DeadlineExceeded) {
		err = fmt.Errorf("the database did not answer within %s (overloaded?): %w", statusReadTimeout, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err == nil {
		c.last, c.readAt = r, time.Now()
	}
	c.lastErr, c.inFlight = err, nil
	close(done)
}

func newStatusPageData(r *statusReport, riverUI bool) *statusPage {
	p := &statusPage{
		AsOf:          formatTime(&r.AsOf),
		Note:          r.Note,
		RiverUI:       riverUI,
		Engines:       r.engines(),
		FailureWindow: status.FailureWindow,
		Counts:        r.counts(),
		LastImport:    r.lastImport(),
	}
	for _, l := range p.Engines {
		for _, f := range l.Failures {
			p.Failures = append(p.Failures, failureLine{Engine: l.Engine, Reason: f.Reason, Count: f.Count, Last: formatTime(&f.Last)})
		}
	}
	for _, d := range r.E5.Domains {
		p.Domains = append(p.Domains, domainLine{Domain: d.Domain, HighWater: formatTime(d.HighWater),
			Started: formatTime(d.RoundStartedAt), Completed: formatTime(d.RoundCompletedAt), LastError: d.LastError})
	}
	return p
}
