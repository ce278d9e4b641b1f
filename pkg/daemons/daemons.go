// Package daemons records which daemons are running and which engines each runs (the daemons table), so that the
// status page can tell an engine that nothing runs from one that has nothing to do. Each `viaduct run` writes a
// heartbeat every BeatInterval; a daemon is live while its last beat is younger than LiveWithin and it has not
// stopped.
package daemons

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/viaduct-nys/viaduct/pkg/poll"
	"go.uber.org/zap"
)

// BeatInterval is how often a daemon writes its heartbeat.
const BeatInterval = 10 * time.Second

// LiveWithin is how recent a daemon's last beat must be for it to count as running: three beats, so that one slow
// write does not make a live daemon look dead.
const LiveWithin = 3 * BeatInterval

// keepFor is how long rows of daemons that are gone are kept, for the status page's "last seen".
const keepFor = 7 * 24 * time.Hour

// DBTX is what the functions here need: a pool, a connection or a transaction.
type DBTX interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// Problems are what a daemon knows about its engines that the tables do not hold, by engine ("e1"); each value is
// JSON-encoded as given.
type Problems map[string]any

// Heartbeat is one daemon's record.
type Heartbeat struct {
	// ID names this run of the daemon.
	ID uuid.UUID
	// Version is the build's version; Engines the engines it runs ("e1", …).
	Version string
	Engines []string
	// ProblemsFunc, when set, is asked at every beat for the daemon's current problems.
	ProblemsFunc func() Problems
	// Logger logs failed beats.
	Logger *zap.Logger
	// TestSignals are signalled after every beat; the zero value signals nothing. Tests call TestSignals.Init.
	TestSignals TestSignals
}

// TestSignals are what a Heartbeat signals for tests to wait on.
type TestSignals struct {
	// Beat is signalled after every beat with its error.
	Beat poll.Signal[error]
}

// Init readies every signal for tb. Only tests call it.
func (ts *TestSignals) Init(tb poll.TB) { ts.Beat.Init(tb) }

// Run writes a beat at once and every BeatInterval until ctx is done, then marks the daemon stopped. A failed
// beat is logged and retried at the next one: the database being away is reported by everything else.
func (h *Heartbeat) Run(ctx context.Context, db DBTX) error {
	host, _ := os.Hostname()
	poll.New(poll.Config{
		IdleInterval: BeatInterval,
		FromStart:    true,
		// A failed beat is tried again at the next beat, not sooner: the database being away is reported by
		// everything else.
		BackoffInitial: BeatInterval,
		BackoffMax:     BeatInterval,
		ErrorFunc: func(err error, _ time.Duration) {
			h.Logger.Warn("writing the daemon's heartbeat failed; retrying at the next beat", zap.Error(err))
		},
	}, func(ctx context.Context) (poll.Result, error) {
		err := h.beat(ctx, db, host)
		h.TestSignals.Beat.Signal(err)
		return poll.Idle, err
	}).Run(ctx)

	stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if _, err := db.Exec(stopCtx, `UPDATE daemons SET stopped_at = now(), beat_at = now() WHERE id = $1`,
		h.ID); err != nil {
		h.Logger.Warn("recording that the daemon stopped failed", zap.Error(err))
	}
	return nil
}

func (h *Heartbeat) beat(ctx context.Context, db DBTX, host string) error {
	problems := Problems{}
	if h.ProblemsFunc != nil {
		problems = h.ProblemsFunc()
	}
	raw, err := json.Marshal(problems)
	if err != nil {
		return fmt.Errorf("encoding the daemon's problems: %w", err)
	}
	if _, err := db.Exec(ctx, `INSERT INTO daemons (id, hostname, pid, version, engines, problems)
		VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (id) DO UPDATE SET beat_at = now(), problems = excluded.problems`,
		h.ID, host, os.Getpid(), h.Version, h.Engines, raw); err != nil {
		return fmt.Errorf("writing the daemon's heartbeat: %w", err)
	}
	_, err = db.Exec(ctx, `DELETE FROM daemons WHERE beat_at < now() - $1 * interval '1 second'`, keepFor.Seconds())
	return err
}

// Daemon is a daemon as the status page shows it.
type Daemon struct {
	ID        uuid.UUID                  `json:"id"`
	Hostname  string                     `json:"hostname"`
	PID       int                        `json:"pid"`
	Version   string                     `json:"version"`
	Engines   []string                   `json:"engines"`
	StartedAt time.Time                  `json:"started_at"`
	BeatAt    time.Time                  `json:"beat_at"`
	StoppedAt *time.Time                 `json:"stopped_at,omitempty"`
	Live      bool                       `json:"live"`
	Problems  map[string]json.RawMessage `json:"problems,omitempty"`
}

// List returns the daemons seen in the last day, live ones first, newest beat first within each. Live is judged
// by the database's clock.
func List(ctx context.Context, db DBTX) ([]Daemon, error) {
	rows, err := db.Query(ctx, `SELECT id, hostname, pid, version, engines, started_at, beat_at, stopped_at,
		       stopped_at IS NULL AND beat_at > now() - $1 * interval '1 second' AS live, problems
		  FROM daemons WHERE beat_at > now() - interval '1 day'
		 ORDER BY live DESC, beat_at DESC, id`, LiveWithin.Seconds())
	if err != nil {
		return nil, fmt.Errorf("reading the daemons: %w", err)
	}
	ds, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Daemon, error) {
		var d Daemon
		err := row.Scan(&d.ID, &d.Hostname, &d.PID, &d.Version, &d.Engines, &d.StartedAt, &d.BeatAt, &d.StoppedAt,
			&d.Live, &d.Problems)
		return d, err
	})
	if err != nil {
		return nil, fmt.Errorf("reading the daemons: %w", err)
	}
	if ds == nil {
		ds = []Daemon{}
	}
	return ds, nil
}

// Running returns the live daemons that run engine ("e1").
func Running(ds []Daemon, engine string) []Daemon {
	var out []Daemon
	for _, d := range ds {
		if d.Live && slices.Contains(d.Engines, engine) {
			out = append(out, d)
		}
	}
	return out
}
