package report

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/viaduct-nys/viaduct/pkg/status"
)

// WriteText writes r for a terminal: the overview, the last day's failures, the detailed counts and Engine 5's
// domains.
func WriteText(w io.Writer, r *Status) {
	lines := r.engines()
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ENGINE\tWAITING\tDONE (LAST HOUR)\tFAILED (LAST HOUR)\tOLDEST WAITING\t")
	for _, l := range lines {
		fmt.Fprintf(tw, "%s %s\t%s\t%s\t%s\t%s\t\n", l.Engine, l.Name, l.Waiting, l.Done, l.Failed, l.Oldest)
	}
	_ = tw.Flush()
	var failures bool
	for _, l := range lines {
		for _, f := range l.Failures {
			if !failures {
				fmt.Fprintf(w, "\nFAILURES (LAST %s)\n", strings.ToUpper(status.FailureWindow))
				failures = true
			}
			fmt.Fprintf(w, "  %s: %d× %s, last at %s\n", l.Engine, f.Count, f.Reason, formatTime(&f.Last))
		}
	}
	if hint := r.traceHint(); hint != "" {
		fmt.Fprintf(w, "  %s\n", hint)
	}

	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "STAGE\tWHAT\tCOUNT\t")
	for _, c := range r.counts() {
		fmt.Fprintf(tw, "%s\t%s\t%d\t\n", c.Stage, c.What, c.Count)
	}
	_ = tw.Flush()
	if s := r.lastImport(); s != "" {
		fmt.Fprintf(w, "\n%s\n", s)
	}
	if len(r.E5.Domains) > 0 {
		fmt.Fprintln(w)
		tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "E5 DOMAIN\tREAD UP TO\tLAST ROUND COMPLETED\tLAST ERROR\t")
		for _, d := range r.E5.Domains {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t\n", d.Domain, formatTime(d.HighWater), formatTime(d.RoundCompletedAt), d.LastError)
		}
		_ = tw.Flush()
	}
}

// WriteJSON writes r as indented JSON, as `viaduct status --json` prints it and /status?format=json serves it.
func WriteJSON(w io.Writer, r *Status) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}
