package report

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/viaduct-nys/viaduct/engines/e1"
	"github.com/viaduct-nys/viaduct/engines/e5"
	"github.com/viaduct-nys/viaduct/pkg/daemons"
)

// State is how an engine stands: ok, amber (behind, or retrying what will likely pass by itself) or red (what needs
// a person: nothing runs it, its input stopped, work failed or was given up on).
type State string

// The states, from best to worst.
const (
	OK    State = "ok"
	Amber State = "amber"
	Red   State = "red"
)

// worse reports whether s is worse than t.
func (s State) worse(t State) bool { return stateRank[s] > stateRank[t] }

var stateRank = map[State]int{OK: 0, Amber: 1, Red: 2}

// EngineState is one engine's verdict: its state, why (worded for people, worst first), and which live daemons run
// it. The rules below are the only place states are decided; the terminal, the page, the JSON and the metrics all
// show these.
type EngineState struct {
	// Engine is "e1" … "e5".
	Engine string `json:"engine"`
	State  State  `json:"state"`
	// Why lists every reason the engine is not ok, worst first; empty when it is ok.
	Why []string `json:"why"`
	// Daemons names the live daemons running the engine ("host (pid 42)").
	Daemons []string `json:"daemons"`
	// LastSeen is, when no live daemon runs the engine, the last beat of one that did (within the last day).
	LastSeen *time.Time `json:"last_seen,omitempty"`
	// Summary sums up what the engine's detail says in a line, e.g. "56 of 58 domains current"; "" for none.
	Summary string `json:"summary,omitempty"`
}

// Assess judges every engine by the rules and r.Thresholds, and sets r.Engines. The reader of a report calls it
// once the snapshot is read.
func (r *Status) Assess() {
	r.Engines = []EngineState{r.assessE1(), r.assessE2(), r.assessE3(), r.assessE4(), r.assessE5()}
}

// verdict collects an engine's reasons; its state is the worst of them.
type verdict struct {
	EngineState
	reasons []reason
}

type reason struct {
	state State
	why   string
}

func (v *verdict) add(s State, format string, args ...any) {
	v.reasons = append(v.reasons, reason{s, fmt.Sprintf(format, args...)})
}

// backlog turns the engine amber, then red, by how long the oldest waiting item (what) has waited.
func (v *verdict) backlog(what string, since *time.Time, ageSeconds float64, b Backlog) {
	if since == nil {
		return
	}
	age := seconds(ageSeconds)
	switch {
	case b.Red > 0 && age >= time.Duration(b.Red):
		v.add(Red, "%s has waited %s (red after %s)", what, roundAge(age), b.Red)
	case b.Amber > 0 && age >= time.Duration(b.Amber):
		v.add(Amber, "%s has waited %s (amber after %s)", what, roundAge(age), b.Amber)
	}
}

// done returns the verdict: the worst state, and the reasons worst first (in the order added within a state).
func (v *verdict) done() EngineState {
	slices.SortStableFunc(v.reasons, func(a, b reason) int { return stateRank[b.state] - stateRank[a.state] })
	v.State, v.Why = OK, []string{}
	for _, x := range v.reasons {
		if x.state.worse(v.State) {
			v.State = x.state
		}
		v.Why = append(v.Why, x.why)
	}
	return v.EngineState
}

// newVerdict starts engine's verdict with the rule every engine shares: an engine that no live daemon runs is red,
// however idle its tables look.
func (r *Status) newVerdict(engine string) *verdict {
	v := &verdict{EngineState: EngineState{Engine: engine, Daemons: []string{}}}
	for _, d := range daemons.Running(r.Daemons, engine) {
		v.Daemons = append(v.Daemons, daemonName(d))
	}
	if len(v.Daemons) > 0 {
		return v
	}
	why := "no running daemon runs " + engineTitle(engine)
	// The daemons come live first, then by their newest beat: the first one that ran the engine was seen last.
	for _, d := range r.Daemons {
		if slices.Contains(d.Engines, engine) {
			v.LastSeen = &d.BeatAt
			how := "went silent"
			if d.StoppedAt != nil {
				how = "stopped"
			}
			why += fmt.Sprintf(" (the last, %s, %s at %s)", daemonName(d), how, formatTime(&d.BeatAt))
			break
		}
	}
	v.add(Red, "%s", why)
	return v
}

// assessE1: red when a daemon running it cannot read the queue, when no export was imported for E1StaleAfter, or
// when a file failed in the last hour; amber, then red, when a file has been importing too long. Malformed rows are
// counted, not alarming: most exports have a few, and the rest of the file is imported.
func (r *Status) assessE1() EngineState {
	v := r.newVerdict("e1")
	th := r.Thresholds
	var oldestStart *time.Time
	for _, d := range daemons.Running(r.Daemons, "e1") {
		if oldestStart == nil || d.StartedAt.Before(*oldestStart) {
			oldestStart = &d.StartedAt
		}
		raw, ok := d.Problems["e1"]
		if !ok {
			continue
		}
		var p e1.ReceiveProblem
		if err := json.Unmarshal(raw, &p); err != nil {
			v.add(Red, "%s reports a problem this version cannot read: %s", daemonName(d), raw)
			continue
		}
		v.add(Red, "cannot read the queue: %s since %s (%s) on %s: %s", receiveReason(p.Reason), formatTime(&p.Since),
			count(p.Errors, "failed receive", "failed receives"), daemonName(d), p.Message)
	}
	stale := time.Duration(th.E1StaleAfter)
	if f := r.E1.LastImported; f != nil && f.CompletedAt != nil {
		if age := r.AsOf.Sub(*f.CompletedAt); stale > 0 && age >= stale {
			v.add(Red, "no export imported for %s (stale after %s): the last was file %d at %s", roundAge(age),
				th.E1StaleAfter, f.ID, formatTime(f.CompletedAt))
		}
	} else if oldestStart != nil {
		if age := r.AsOf.Sub(*oldestStart); stale > 0 && age >= stale {
			v.add(Red, "no export imported since Engine 1 started %s ago (stale after %s): none ever was",
				roundAge(age), th.E1StaleAfter)
		}
	}
	if n := r.E1.FailedLastHour; n > 0 {
		v.add(Red, "%s failed in the last hour", count(n, "file", "files"))
	}
	v.backlog("the oldest file importing", r.E1.OldestImporting, r.E1.OldestImportingAge, th.E1Importing)
	return v.done()
}

// receiveReason words a ReceiveProblem's reason for people, keeping the code the metric uses.
func receiveReason(code string) string {
	words := map[string]string{
		e1.ReasonQueueMissing:   "the queue does not exist",
		e1.ReasonAccessDenied:   "access denied",
		e1.ReasonNoCredentials:  "no AWS credentials",
		e1.ReasonBadCredentials: "AWS refuses the credentials",
		e1.ReasonUnreachable:    "SQS unreachable (a wrong region or endpoint?)",
	}[code]
	if words == "" {
		return code
	}
	return words + " (" + code + ")"
}

// assessE2: red when a test result failed in the last hour; amber while results wait for another attempt; amber,
// then red, by the oldest waiting result's age.
func (r *Status) assessE2() EngineState {
	v := r.newVerdict("e2")
	if n := r.E2.FailedLastHour; n > 0 {
		v.add(Red, "%s failed in the last hour", count(n, "test result", "test results"))
	}
	if n := r.E2.Retrying; n > 0 {
		v.add(Amber, "retrying: %s another attempt", count(n, "test result waits for", "test results wait for"))
	}
	v.backlog("the oldest waiting test result", r.E2.OldestWaiting, r.E2.OldestWaitingAge, r.Thresholds.E2Waiting)
	return v.done()
}

// assessE3: amber, then red, by the age of the oldest change not handed off yet.
func (r *Status) assessE3() EngineState {
	v := r.newVerdict("e3")
	v.backlog("the oldest changed case", r.E3.OldestWaiting, r.E3.OldestWaitingAge, r.Thresholds.E3Waiting)
	return v.done()
}

// assessE4: red when a case was given up on in the last hour (CommCare rejected it, or its job's last attempt
// failed); amber while posts are retried or wait out CommCare's rate limits, and when a job runs past the rescue
// time; amber, then red, by the oldest waiting job's age (a job retrying for hours turns red so).
func (r *Status) assessE4() EngineState {
	v := r.newVerdict("e4")
	s, th := r.E4, r.Thresholds
	if s.Discarded > 0 {
		v.add(Red, "%s in the last hour: CommCare rejected them", count(s.Discarded, "case given up", "cases given up"))
	}
	if s.Exhausted > 0 {
		v.add(Red, "%s in the last hour", count(s.Exhausted, "job ran out of attempts", "jobs ran out of attempts"))
	}
	if s.Failed > 0 {
		v.add(Amber, "retrying: %s in the last hour, each retried by its job",
			count(s.Failed, "post failed", "posts failed"))
	}
	if s.RateLimited > 0 {
		v.add(Amber, "retrying: %s in the last hour, each waiting as CommCare asks",
			count(s.RateLimited, "post rate limited", "posts rate limited"))
	}
	v.backlog("the oldest waiting job", s.OldestWaiting, s.OldestWaitingAge, th.E4Waiting)
	if s.OldestRunning != nil {
		if age := seconds(s.OldestRunningAge); th.E4RunningLongerThan > 0 && age >= time.Duration(th.E4RunningLongerThan) {
			v.add(Amber, "a job has run for %s, longer than %s: its daemon has likely died, and River works it again",
				roundAge(age), th.E4RunningLongerThan)
		}
	}
	return v.done()
}

// assessE5: red when a domain has been failing for E5FailingRed, amber when for less; amber when a domain is not
// current (its last round did not complete within E5CurrentWithin: cut short by rate limits, or slow). Only the
// domains read within the failure window count: one that stopped taking part keeps its mark and is left alone.
func (r *Status) assessE5() EngineState {
	v := r.newVerdict("e5")
	var read, current int
	var behind []string
	for _, d := range r.E5.Domains {
		if !d.Recent {
			continue
		}
		read++
		state, why := r.domainState(d)
		switch {
		case state == OK:
			current++
		case d.LastError != "":
			v.add(state, "%s %s", d.Domain, why)
		default:
			behind = append(behind, d.Domain+" ("+why+")")
		}
	}
	if len(behind) > 0 {
		v.add(Amber, "not current, no round completed within %s: %s", r.Thresholds.E5CurrentWithin,
			strings.Join(behind, ", "))
	}
	if read > 0 {
		v.Summary = fmt.Sprintf("%d of %d domains current", current, read)
	}
	return v.done()
}

// domainState judges one domain read lately, and says why when it is not ok: red when it has been failing for
// E5FailingRed, amber when for less; amber when it is not current; ok when its last round completed, without an
// error, within E5CurrentWithin.
func (r *Status) domainState(d e5.DomainMark) (State, string) {
	th := r.Thresholds
	switch {
	case d.LastError != "" && d.FailingSince == nil:
		return Amber, "failing: " + d.LastError
	case d.LastError != "":
		age, state := r.AsOf.Sub(*d.FailingSince), Amber
		if age >= time.Duration(th.E5FailingRed) {
			state = Red
		}
		return state, fmt.Sprintf("failing for %s (red after %s): %s", roundAge(age), th.E5FailingRed, d.LastError)
	case d.RoundCompletedAt == nil:
		return Amber, "no round completed yet"
	case r.AsOf.Sub(*d.RoundCompletedAt) > time.Duration(th.E5CurrentWithin):
		return Amber, "last completed " + roundAge(r.AsOf.Sub(*d.RoundCompletedAt)) + " ago"
	}
	return OK, ""
}

// daemonName names a daemon for people: its host and process.
func daemonName(d daemons.Daemon) string {
	return fmt.Sprintf("%s (pid %d)", d.Hostname, d.PID)
}

// engineTitle is "Engine 1" for "e1".
func engineTitle(engine string) string {
	return "Engine " + strings.TrimPrefix(engine, "e")
}

// seconds is a number of seconds as a Duration.
func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// roundAge rounds an age for reading: to the minute from an hour on, else to the second.
func roundAge(d time.Duration) string {
	if d >= time.Hour {
		return shortDuration(d.Round(time.Minute))
	}
	return shortDuration(d.Round(time.Second))
}
