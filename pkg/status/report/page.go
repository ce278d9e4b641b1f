package report

import (
	"bytes"
	"context"
	_ "embed"
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

// NewHandler serves /status: the overview of `viaduct status` as a server-rendered HTML page that refreshes
// itself, or as JSON with ?format=json, from a report at most cacheFor old. read reads a report, in one snapshot;
// it is called at most once at a time, detached from the requests. riverUI says whether /riverui/ is served, so
// the page links only to what exists.
func NewHandler(read func(context.Context) (*Status, error), riverUI bool) http.Handler {
	c := &cache{read: read, wait: waitFor}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		report, err := c.get(r.Context())
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
		Counts:        r.counts(),
		LastImport:    r.lastImport(),
		TraceHint:     r.traceHint(),
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
