package report

import (
	"bytes"
	"context"
	_ "embed"
	"fmt"
	"html/template"
	"net/http"

	"github.com/viaduct-nys/viaduct/pkg/status"
)

//go:embed page.html
var pageHTML string

var pageTemplate = template.Must(template.New("status").Parse(pageHTML))

// page is what the template renders: the report, worded as `viaduct status` words it.
type page struct {
	AsOf          string
	Note          string
	RiverUI       bool
	Engines       []engineLine
	FailureWindow string
	Failures      []failureLine
	TraceHint     string
	Daemons       []daemonLine
	// DomainsSummary is "56 of 58 domains current"; NotCurrent lists the others, Domains every domain (collapsed).
	DomainsSummary string
	NotCurrent     []domainLine
	Domains        []domainLine
	Counts         []countLine
	LastImport     string
}

// failureLine is one row of the page's failure table.
type failureLine struct {
	Engine, Reason string
	Count          int64
	Last           string
	// State colours the row: its engine's state, amber at worst for what is retried by itself.
	State State
	// Follow names the newest occurrence; JobURL is its River job's page when River UI is served.
	Follow, JobURL string
}

// Reader reads reports for the /status page and the status metrics alike: at most one read at a time, detached
// from the requests, and a report at most cacheFor old.
type Reader struct {
	cache *cache
}

// NewReader returns a Reader that reads with read, in one snapshot, and assesses what it read.
func NewReader(read func(context.Context) (*Status, error)) *Reader {
	return &Reader{cache: &cache{read: read, wait: waitFor}}
}

// Handler serves /status: the overview of `viaduct status` as a server-rendered HTML page that refreshes itself,
// or as JSON with ?format=json. riverUI says whether /riverui/ is served, so the page links only to what exists.
func (rd *Reader) Handler(riverUI bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		report, err := rd.cache.get(r.Context())
		if err != nil {
			http.Error(w, "reading the status: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		if r.URL.Query().Get("format") == "json" {
			w.Header().Set("Content-Type", "application/json")
			_ = WriteJSON(w, report)
			return
		}
		// Rendered to a buffer first, so a template error is a 500 and not half a page.
		var buf bytes.Buffer
		if err := pageTemplate.Execute(&buf, newPage(report, riverUI)); err != nil {
			http.Error(w, "rendering the status page: "+err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write(buf.Bytes())
	})
}

func newPage(r *Status, riverUI bool) *page {
	p := &page{
		AsOf:          formatTime(&r.AsOf),
		Note:          r.Note,
		RiverUI:       riverUI,
		Engines:       r.engines(),
		FailureWindow: status.FailureWindow,
		Daemons:       r.daemonLines(),
		Counts:        r.counts(),
		LastImport:    r.lastImport(),
		TraceHint:     r.traceHint(),
	}
	for _, l := range p.Engines {
		for _, f := range l.Failures {
			line := failureLine{Engine: l.Engine, Reason: f.Reason, Count: f.Count, Last: formatTime(&f.Last),
				State: l.State, Follow: follow(l.ID, f.Newest)}
			if f.Retried && line.State == Red {
				line.State = Amber // what is retried by itself is not what made the engine red
			}
			if riverUI && f.Newest != nil && f.Newest.JobID != 0 {
				line.JobURL = fmt.Sprintf("/riverui/jobs/%d", f.Newest.JobID)
			}
			p.Failures = append(p.Failures, line)
		}
		if l.ID == "e5" {
			p.DomainsSummary = l.Summary
		}
	}
	p.Domains, p.NotCurrent = r.domainLines()
	return p
}
