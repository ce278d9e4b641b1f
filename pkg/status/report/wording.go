package report

import (
	"fmt"
	"strings"
	"time"

	"github.com/viaduct-nys/viaduct/pkg/eclrs"
	"github.com/viaduct-nys/viaduct/pkg/status"
)

// engineLine is one engine's row of the overview, worded once for the terminal and the /status page.
type engineLine struct {
	// ID is "e1" … "e5"; Engine is "Engine 1" … "Engine 5".
	ID, Engine, Name string
	// Waiting, Done and Failed say how much work waits, was done in the last hour and failed in the last hour.
	Waiting, Done, Failed string
	// Oldest is when the oldest waiting item started waiting, and how long ago; "-" when nothing waits.
	Oldest string
	// State and Why are the engine's verdict (rules.go); RunBy names the live daemons running it, or says none does.
	State State
	Why   []string
	RunBy string
	// Summary sums up the engine's detail ("56 of 58 domains current"); "" for none.
	Summary string
	// Failures are the reasons of the last day's failures, newest first.
	Failures []status.Failure
}

// engines is the overview: for each engine, its verdict, work waiting, done in the last hour, failed, and the
// oldest waiting.
func (r *Status) engines() []engineLine {
	lines := r.counters()
	verdicts := r.Engines
	if len(verdicts) != len(lines) {
		// A report nobody assessed (built by hand): judge a copy, never the report a cache shares.
		c := *r
		c.Assess()
		verdicts = c.Engines
	}
	for i, v := range verdicts {
		lines[i].State, lines[i].Why, lines[i].Summary, lines[i].RunBy = v.State, v.Why, v.Summary, "no running daemon"
		if len(v.Daemons) > 0 {
			lines[i].RunBy = strings.Join(v.Daemons, ", ")
		}
	}
	return lines
}

// counters are the overview's numbers for each engine.
func (r *Status) counters() []engineLine {
	e4Done := count(r.E4.Posted, "case posted", "cases posted") + ", " + count(r.E4.Unchanged, "unchanged", "unchanged")
	if r.E4.DryRun > 0 {
		e4Done += ", " + count(r.E4.DryRun, "not posted (posting off)", "not posted (posting off)")
	}
	e4Failed := count(r.E4.Failed, "post", "posts") + ", " + count(r.E4.Discarded, "given up", "given up")
	if r.E4.Exhausted > 0 {
		e4Failed += ", " + count(r.E4.Exhausted, "out of attempts", "out of attempts")
	}
	if r.E4.RateLimited > 0 {
		e4Failed += " (and " + count(r.E4.RateLimited, "rate limited", "rate limited") + ", waiting as asked)"
	}
	return []engineLine{{
		ID: "e1", Engine: "Engine 1", Name: "ECLRS extractor",
		Waiting: count(r.E1.Files[eclrs.FileImporting], "file importing", "files importing"),
		Done:    count(r.E1.ImportedLastHour, "file imported", "files imported"),
		Failed: count(r.E1.FailedLastHour, "file", "files") + ", " +
			count(r.E1.RowErrorsLastHour, "malformed row", "malformed rows"),
		Oldest:   waitedSince(r.E1.OldestImporting, r.E1.OldestImportingAge),
		Failures: r.E1.Failures,
	}, {
		ID: "e2", Engine: "Engine 2", Name: "transformer",
		Waiting: count(r.E2.Waiting, "test result", "test results"),
		Done:    count(r.E2.ProcessedLastHour, "test result processed", "test results processed"),
		Failed:  count(r.E2.FailedLastHour, "test result", "test results"),
		Oldest:  waitedSince(r.E2.OldestWaiting, r.E2.OldestWaitingAge), Failures: r.E2.Failures,
	}, {
		ID: "e3", Engine: "Engine 3", Name: "enqueuer",
		Waiting: count(r.E3.Waiting, "changed index case", "changed index cases"),
		Done:    count(r.E3.EnqueuedLastHour, "hand-off", "hand-offs"),
		Failed:  "-",
		Oldest:  waitedSince(r.E3.OldestWaiting, r.E3.OldestWaitingAge),
	}, {
		ID: "e4", Engine: "Engine 4", Name: "case loader",
		Waiting: count(r.E4.Queued(), "job", "jobs") + ", " + count(r.E4.Jobs["running"], "running", "running") +
			runningFor(r.E4.OldestRunning, r.E4.OldestRunningAge),
		Done:     e4Done,
		Failed:   e4Failed,
		Oldest:   waitedSince(r.E4.OldestWaiting, r.E4.OldestWaitingAge),
		Failures: r.E4.Failures,
	}, {
		ID: "e5", Engine: "Engine 5", Name: "CommCare extractor",
		// What waits for Engine 5 is in CommCare; the oldest mark says how far behind it may be.
		Waiting: "-",
		Done: count(r.E5.RetrievedLastHour, "case retrieved", "cases retrieved") + ", " +
			count(r.E5.UpdatedLastHour, "updated (by Engines 4 and 5)", "updated (by Engines 4 and 5)"),
		Failed: count(int64(len(r.E5.Failures)), "domain failing", "domains failing"),
		Oldest: r.oldestMark(), Failures: r.E5.Failures,
	}}
}

// oldestMark is Engine 5's oldest waiting item: the changes since the oldest high-water mark of the domains it
// still reads.
func (r *Status) oldestMark() string {
	var oldest *time.Time
	for _, d := range r.E5.Domains {
		if d.Recent && d.HighWater != nil && (oldest == nil || d.HighWater.Before(*oldest)) {
			oldest = d.HighWater
		}
	}
	if oldest == nil {
		return "-"
	}
	return "changes since " + waitedSince(oldest, r.AsOf.Sub(*oldest).Seconds())
}

// countLine is one row of the detailed counts, below the overview.
type countLine struct {
	Stage, What string
	Count       int64
}

// counts are the detailed counts per stage.
func (r *Status) counts() []countLine {
	var lines []countLine
	row := func(stage, what string, n int64) { lines = append(lines, countLine{stage, what, n}) }
	row("e1", "files imported", r.E1.Files[eclrs.FileImported])
	row("e1", "files failed", r.E1.Files[eclrs.FileFailed])
	row("e1", "files skipped (older)", r.E1.Files[eclrs.FileSkipped])
	row("e1", "files importing", r.E1.Files[eclrs.FileImporting])
	row("e1", "test results", r.E1.TestResults)
	row("e1", "rows with errors", r.E1.RowErrors)
	row("e1", "counties", r.E1.Counties)
	row("e2", "test results processed", r.E2.Processed)
	row("e2", "  of which ignored", r.E2.Ignored)
	row("e2", "test results failed", r.E2.Failed)
	row("e2", "test results waiting", r.E2.Waiting)
	row("e2", "  of which retrying", r.E2.Retrying)
	row("e2", "people", r.E2.People)
	row("e2", "index cases", r.E2.IndexCases)
	row("e2", "lab results", r.E2.LabResults)
	row("e3", "index cases waiting", r.E3.Waiting)
	row("e3", "hand-offs to e4", r.E3.Enqueued)
	row("e3", "  in the last hour", r.E3.EnqueuedLastHour)
	for _, state := range []string{"available", "scheduled", "running", "retryable", "completed", "cancelled", "discarded"} {
		row("e4", "jobs "+state, r.E4.Jobs[state])
	}
	row("e4", "posted (last hour)", r.E4.Posted)
	row("e4", "unchanged, not posted (last hour)", r.E4.Unchanged)
	if r.E4.DryRun > 0 {
		row("e4", "dry run, not posted (last hour)", r.E4.DryRun)
	}
	row("e4", "posts failed (last hour)", r.E4.Failed)
	row("e4", "given up (last hour)", r.E4.Discarded)
	row("e5", "cases retrieved (last hour)", r.E5.RetrievedLastHour)
	row("e5", "cases updated from CommCare (last hour)", r.E5.UpdatedLastHour)
	return lines
}

// lastImport describes the newest completed import, "" when there is none.
func (r *Status) lastImport() string {
	f := r.E1.LastImported
	if f == nil {
		return ""
	}
	s := fmt.Sprintf("last import: %s (file %d) at %s", f.Filename, f.ID, formatTime(f.CompletedAt))
	if st := f.Statistics; st != nil {
		s += fmt.Sprintf(": %d new, %d matched, %d duplicate, %d errors", st.New.Total, st.Matched.Total, st.Duplicate.Total, st.Error.Total)
	}
	return s
}

// traceHint says how to follow one failed test result or case through the engines with `viaduct trace`, when
// Engine 2 or 4 failed within the failure window ("" otherwise): the failures are listed by reason, not one by one,
// and the README's operations section has the queries that list them.
func (r *Status) traceHint() string {
	if len(r.E2.Failures) == 0 && len(r.E4.Failures) == 0 {
		return ""
	}
	return "To follow one through the engines: viaduct trace --file FILE_ID --line N for a test result, " +
		"viaduct trace --case-id CASE_ID for a case."
}

// count words n things: "1 file", "3 files".
func count(n int64, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// waitedSince words an oldest waiting item: its age, rounded for reading, and when it started; "-" for none.
func waitedSince(t *time.Time, ageSeconds float64) string {
	if t == nil {
		return "-"
	}
	age := time.Duration(ageSeconds * float64(time.Second))
	switch {
	case age >= time.Hour:
		age = age.Round(time.Minute)
	default:
		age = age.Round(time.Second)
	}
	return fmt.Sprintf("%s ago (%s)", age, formatTime(t))
}

// runningFor says how long the longest-running job has run, so that jobs left by a dead daemon stand out.
func runningFor(t *time.Time, ageSeconds float64) string {
	if t == nil {
		return ""
	}
	return " (the longest for " + time.Duration(ageSeconds*float64(time.Second)).Round(time.Second).String() + ")"
}

func formatTime(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

// follow says where a failure's newest occurrence can be looked up, for the engine (ID) that reported it: the
// command that traces a test result, a file (and the line of a malformed row, which no trace finds), a River job
// and the case it posts. "" when nothing names one.
func follow(engine string, o *status.Occurrence) string {
	if o == nil {
		return ""
	}
	var parts []string
	switch {
	case o.FileID != 0 && o.Line != 0 && engine == "e2":
		parts = append(parts, fmt.Sprintf("viaduct trace --file %d --line %d", o.FileID, o.Line))
	case o.FileID != 0 && o.Line != 0:
		parts = append(parts, fmt.Sprintf("file %d, line %d", o.FileID, o.Line))
	case o.FileID != 0:
		parts = append(parts, fmt.Sprintf("file %d", o.FileID))
	}
	if o.JobID != 0 {
		parts = append(parts, fmt.Sprintf("River job %d", o.JobID))
	}
	if o.CaseID != "" {
		parts = append(parts, "viaduct trace --case-id "+o.CaseID)
	}
	return strings.Join(parts, "; ")
}

// daemonLine is one daemon as the terminal and the page list it.
type daemonLine struct {
	Name, Version, Engines, Started, LastBeat string
	// State is "live", "stopped" or "silent" (its beats stopped without its saying so: killed, or lost).
	State string
}

// daemonLines are the daemons seen in the last day, live ones first.
func (r *Status) daemonLines() []daemonLine {
	var lines []daemonLine
	for _, d := range r.Daemons {
		state := "live"
		switch {
		case d.StoppedAt != nil:
			state = "stopped"
		case !d.Live:
			state = "silent"
		}
		lines = append(lines, daemonLine{Name: daemonName(d), Version: d.Version, Engines: strings.Join(d.Engines, " "),
			Started: formatTime(&d.StartedAt), LastBeat: formatTime(&d.BeatAt), State: state})
	}
	return lines
}

// domainLine is one of Engine 5's domains as the terminal and the page list it.
type domainLine struct {
	Domain, HighWater, Started, Completed, LastError string
	// State is the domain's verdict (domainState); Why says why it is not ok.
	State State
	Why   string
}

// domainLines are every domain Engine 5 has a mark for, by name, and those of the ones it reads (read within the
// failure window) that are not current. A domain no longer read is listed, and judged no more.
func (r *Status) domainLines() (all, notCurrent []domainLine) {
	for _, d := range r.E5.Domains {
		state, why := OK, "not read within "+status.FailureWindow+": no longer taking part"
		if d.Recent {
			state, why = r.domainState(d)
		}
		l := domainLine{Domain: d.Domain, HighWater: formatTime(d.HighWater), Started: formatTime(d.RoundStartedAt),
			Completed: formatTime(d.RoundCompletedAt), LastError: d.LastError, State: state, Why: why}
		all = append(all, l)
		if state != OK {
			notCurrent = append(notCurrent, l)
		}
	}
	return all, notCurrent
}
