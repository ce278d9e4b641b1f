// Package report is what `viaduct status` prints and the daemon's /status page serves: one summary per engine,
// read in one snapshot, judged by one set of rules (rules.go: ok, amber or red, and why) and worded once for the
// terminal, the page, the JSON and the status metrics alike.
//
// It sits below pkg/status rather than in it because it holds each engine's Summary, and the engines import
// pkg/status for the Failure shapes they report: pkg/status stays the leaf the engines share, and this package
// imports them. Reading the database is the caller's: the report is built from the engines' Summarize functions in
// one repeatable-read transaction with the daemons' heartbeats (cmd/viaduct's readStatusBy), which then calls
// Assess; this package judges, words, prints and serves it, and exports it as metrics (Reader).
package report

import (
	"time"

	"github.com/viaduct-nys/viaduct/engines/e1"
	"github.com/viaduct-nys/viaduct/engines/e2"
	"github.com/viaduct-nys/viaduct/engines/e3"
	"github.com/viaduct-nys/viaduct/engines/e4"
	"github.com/viaduct-nys/viaduct/engines/e5"
	"github.com/viaduct-nys/viaduct/pkg/daemons"
)

// Status is what `viaduct status` and the /status page show: one summary per engine, read in one snapshot, the
// daemons that run them, and each engine's verdict under the thresholds in force. Its JSON is what `viaduct status
// --json` prints and /status?format=json serves.
type Status struct {
	// AsOf is the database's clock when the snapshot was taken.
	AsOf time.Time `json:"as_of"`
	// Note says why an older report is shown (the /status page's cache), empty when the report is current.
	Note string `json:"note,omitempty"`
	// Engines are the verdicts, Engine 1 to 5, set by Assess.
	Engines []EngineState `json:"engines"`
	// Daemons are the daemons seen in the last day, live ones first (daemons.List).
	Daemons []daemons.Daemon `json:"daemons"`
	// Thresholds are those the verdicts were reached under.
	Thresholds Thresholds  `json:"thresholds"`
	E1         *e1.Summary `json:"e1"`
	E2         *e2.Summary `json:"e2"`
	E3         *e3.Summary `json:"e3"`
	E4         *e4.Summary `json:"e4"`
	E5         *e5.Summary `json:"e5"`
}
