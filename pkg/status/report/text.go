package report

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/viaduct-nys/viaduct/pkg/status"
)

// WriteText writes r for a terminal: the overview with each engine's state and why, the last day's failures, the
// daemons, the detailed counts and Engine 5's domains.
func WriteText(w io.Writer, r *Status) {
	lines := r.engines()
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ENGINE\tSTATE\tWAITING\tDONE (LAST HOUR)\tFAILED (LAST HOUR)\tOLDEST WAITING\tRUN BY\t")
	for _, l := range lines {
		fmt.Fprintf(tw, "%s %s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", l.Engine, l.Name, l.State, l.Waiting, l.Done, l.Failed,
			l.Oldest, l.RunBy)
	}
	_ = tw.Flush()
	var why bool
	for _, l := range lines {
		if len(l.Why) == 0 {
			continue
		}
		if !why {
			fmt.Fprintln(w, "\nWHY")
			why = true
		}
		fmt.Fprintf(w, "  %s is %s:\n", l.Engine, l.State)
		for _, reason := range l.Why {
			fmt.Fprintf(w, "    - %s\n", reason)
		}
	}
	var failures bool
	for _, l := range lines {
		for _, f := range l.Failures {
			if !failures {
				fmt.Fprintf(w, "\nFAILURES (LAST %s)\n", strings.ToUpper(status.FailureWindow))
				failures = true
			}
			fmt.Fprintf(w, "  %s: %d× %s, last at %s", l.Engine, f.Count, f.Reason, formatTime(&f.Last))
			if s := follow(l.ID, f.Newest); s != "" {
				fmt.Fprintf(w, " (newest: %s)", s)
			}
			fmt.Fprintln(w)
		}
	}
	if hint := r.traceHint(); hint != "" {
		fmt.Fprintf(w, "  %s\n", hint)
	}

	fmt.Fprintln(w)
	if ds := r.daemonLines(); len(ds) > 0 {
		tw = tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "DAEMON (LAST DAY)\tSTATE\tENGINES\tVERSION\tSTARTED\tLAST BEAT\t")
		for _, d := range ds {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t\n", d.Name, d.State, d.Engines, d.Version, d.Started, d.LastBeat)
		}
		_ = tw.Flush()
	} else {
		fmt.Fprintln(w, "DAEMONS: none has run in the last day")
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
	// The domains that are not current, each with why; the rest are summed up, however many counties there are.
	all, notCurrent := r.domainLines()
	if len(all) > 0 {
		fmt.Fprintln(w)
		if s := lines[4].Summary; s != "" {
			fmt.Fprintf(w, "E5 DOMAINS: %s\n", s)
		}
		if len(notCurrent) > 0 {
			tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "E5 DOMAIN NOT CURRENT\tSTATE\tWHY\tREAD UP TO\tLAST ROUND COMPLETED\t")
			for _, d := range notCurrent {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t\n", d.Domain, d.State, d.Why, d.HighWater, d.Completed)
			}
			_ = tw.Flush()
		}
	}
}

// WriteJSON writes r as indented JSON, as `viaduct status --json` prints it and /status?format=json serves it.
func WriteJSON(w io.Writer, r *Status) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}
