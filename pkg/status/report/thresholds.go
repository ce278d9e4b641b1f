package report

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Thresholds are the limits the rules judge an engine by (rules.go). Defaults holds them as shipped; the daemon
// and `viaduct status` set the few that follow their flags (--e1-stale-after, and those derived from Engine 4's job
// timeout and Engine 5's interval). The report carries the thresholds in force, so a reader of its JSON knows why
// a row is amber.
type Thresholds struct {
	// E1StaleAfter is how long without a completed import turns Engine 1 red: ECLRS sends an export about every
	// 30 minutes. Before the first import ever, it counts from the start of the oldest live daemon running Engine 1.
	E1StaleAfter Duration `json:"e1_stale_after"`
	// E1Importing, E2Waiting, E3Waiting and E4Waiting are how long the oldest waiting item may wait: a file
	// importing since its first announcement, a test result, a changed case, a case loader job.
	E1Importing Backlog `json:"e1_importing"`
	E2Waiting   Backlog `json:"e2_waiting"`
	E3Waiting   Backlog `json:"e3_waiting"`
	E4Waiting   Backlog `json:"e4_waiting"`
	// E4RunningLongerThan turns Engine 4 amber when a job has run longer: its daemon has likely died, and River
	// works it again (--e4-rescue-after, by default the job timeout plus a minute).
	E4RunningLongerThan Duration `json:"e4_running_longer_than"`
	// E5CurrentWithin is how recently a domain's last round must have completed, without an error, for the domain to
	// be current: three Engine 5 intervals. A domain that is not current turns Engine 5 amber.
	E5CurrentWithin Duration `json:"e5_current_within"`
	// E5FailingRed is how long a domain may fail, round after round, while Engine 5 is only amber.
	E5FailingRed Duration `json:"e5_failing_red_after"`
}

// Backlog is how old the oldest waiting item may be before its engine turns amber, then red.
type Backlog struct {
	Amber Duration `json:"amber_after"`
	Red   Duration `json:"red_after"`
}

// Default thresholds that follow a flag, with that flag's default.
const (
	DefaultE1StaleAfter = 2 * time.Hour
	// DefaultE4RunningLongerThan is Engine 4's default rescue time: its job timeout (2 minutes) and a minute.
	DefaultE4RunningLongerThan = 3 * time.Minute
	// DefaultE5CurrentWithin is three of Engine 5's default intervals (5 minutes).
	DefaultE5CurrentWithin = 15 * time.Minute
)

// Defaults returns the thresholds as shipped.
func Defaults() Thresholds {
	return Thresholds{
		E1StaleAfter:        Duration(DefaultE1StaleAfter),
		E1Importing:         Backlog{Amber: Duration(30 * time.Minute), Red: Duration(2 * time.Hour)},
		E2Waiting:           Backlog{Amber: Duration(10 * time.Minute), Red: Duration(time.Hour)},
		E3Waiting:           Backlog{Amber: Duration(5 * time.Minute), Red: Duration(30 * time.Minute)},
		E4Waiting:           Backlog{Amber: Duration(30 * time.Minute), Red: Duration(4 * time.Hour)},
		E4RunningLongerThan: Duration(DefaultE4RunningLongerThan),
		E5CurrentWithin:     Duration(DefaultE5CurrentWithin),
		E5FailingRed:        Duration(time.Hour),
	}
}

// Duration is a time.Duration that reads and writes JSON as people write it ("2h", "1h30m", "45s").
type Duration time.Duration

// String words d shortly: "2h", "1h30m", "45s", without the zero units time.Duration prints.
func (d Duration) String() string {
	return shortDuration(time.Duration(d))
}

// MarshalJSON implements json.Marshaler.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON implements json.Unmarshaler.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("a threshold %q: %w", s, err)
	}
	*d = Duration(v)
	return nil
}

// shortDuration words d as time.Duration does, without its zero units: 2h0m0s is "2h", 1h30m0s is "1h30m".
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
