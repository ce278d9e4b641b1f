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
	cache := &statusCache{read: func(ctx context.Context) (*statusReport, error) { return readStatus(ctx, db) }}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		report, err := cache.get(r.Context())
		if errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("the database did not answer within %s (overloaded?): %w", statusReadTimeout, err)
		}
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
// monitors may poll it too, while a read counts over every engine's tables.
const statusCacheFor = 10 * time.Second

// statusCache serves the last report while it is fresh and reads at most one at a time, so the database pays one
// read per statusCacheFor however many ask.
type statusCache struct {
	read func(context.Context) (*statusReport, error)

	mu     sync.Mutex
	last   *statusReport
	readAt time.Time
}

func (c *statusCache) get(ctx context.Context) (*statusReport, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.last != nil && time.Since(c.readAt) < statusCacheFor {
		return c.last, nil
	}
	ctx, cancel := context.WithTimeout(ctx, statusReadTimeout)
	defer cancel()
	r, err := c.read(ctx)
	if err != nil {
		return nil, err
	}
	c.last, c.readAt = r, time.Now()
	return r, nil
}

func newStatusPageData(r *statusReport, riverUI bool) *statusPage {
	p := &statusPage{
		AsOf:          formatTime(&r.AsOf),
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
