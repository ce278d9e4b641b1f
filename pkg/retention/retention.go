package retention

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"

	"github.com/viaduct-nys/viaduct/pkg/advisory"
	"github.com/viaduct-nys/viaduct/pkg/poll"
)

// MinWindow is the shortest window a purge accepts. Everything younger may still be in flight: an export re-sends
// 14 days, Engine 4's retries span about a week, the status page reads the last day; and a window of hours is far
// more likely a typing mistake than a policy.
const MinWindow = 14 * 24 * time.Hour

// Config is a purge's configuration.
type Config struct {
	// Window is how old personal data may get: what was written before now less Window goes. At least MinWindow;
	// no default.
	Window time.Duration
	// BatchSize is how many rows one transaction strips or deletes (people: a tenth as many, with their cases).
	// Defaults to 5,000.
	BatchSize int
	// Pause is the wait between two batches, so that a long purge leaves the engines the database (a dry run, which
	// writes nothing, does not wait). Defaults to 100 milliseconds.
	Pause time.Duration
	// LockTimeout bounds every lock wait of a batch (lock_timeout): a batch that meets a lock held longer is rolled
	// back and tried again after a pause, up to five times. Defaults to 2 seconds.
	LockTimeout time.Duration
	// DryRun counts what a purge would strip or delete, per table, and writes nothing.
	DryRun bool
	// Interval is the time between the starts of two scheduled purges (Run). Defaults to 24 hours.
	Interval time.Duration
	// FirstDelay is how long after Run starts the first purge comes, so that a daemon starting its engines is not
	// slowed by one. Defaults to 10 minutes.
	FirstDelay time.Duration
}

func (c *Config) setDefaults() {
	if c.BatchSize == 0 {
		c.BatchSize = 5000
	}
	if c.Pause == 0 {
		c.Pause = 100 * time.Millisecond
	}
	if c.LockTimeout == 0 {
		c.LockTimeout = 2 * time.Second
	}
	if c.Interval == 0 {
		c.Interval = 24 * time.Hour
	}
	if c.FirstDelay == 0 {
		c.FirstDelay = 10 * time.Minute
	}
}

// Validate reports every problem with c at once.
func (c Config) Validate() error {
	var errs []error
	if c.Window < MinWindow {
		errs = append(errs, fmt.Errorf("retention: window %s is below the minimum of %s (14 days)", FormatWindow(c.Window),
			FormatWindow(MinWindow)))
	}
	if c.BatchSize < 0 || c.BatchSize > 50_000 {
		errs = append(errs, fmt.Errorf("retention: batch size %d is outside 1 to 50,000", c.BatchSize))
	}
	if c.Pause < 0 || c.LockTimeout < 0 || c.Interval < 0 || c.FirstDelay < 0 {
		errs = append(errs, errors.New("retention: durations must not be negative"))
	}
	return errors.Join(errs...)
}

// FormatWindow writes a window as days when it is whole days ("30d"), else as a Go duration.
func FormatWindow(d time.Duration) string {
	const day = 24 * time.Hour
	if d > 0 && d%day == 0 {
		return fmt.Sprintf("%dd", d/day)
	}
	return d.String()
}

// Deps are a purge's collaborators.
type Deps struct {
	// Pool is the database.
	Pool *pgxpool.Pool
	// Logger is the purge's named logger.
	Logger *zap.Logger
	// BeforeCommitFunc, when set, is called in each batch's transaction just before it commits, with the table the
	// batch purges; an error rolls the batch back and ends the purge with it, as a crash there would. For tests.
	BeforeCommitFunc func(ctx context.Context, table string) error
}

// Purger purges personal data older than its window.
type Purger struct {
	// TestSignals are signalled after each scheduled purge of Run; the zero value signals nothing. Tests call
	// TestSignals.Init.
	TestSignals poll.TestSignals

	config Config
	deps   Deps
	logger *zap.Logger
}

// New validates config and returns a Purger.
func New(config Config, deps Deps) (*Purger, error) {
	config.setDefaults()
	errs := []error{config.Validate()}
	if deps.Pool == nil {
		errs = append(errs, errors.New("retention: a database pool is required"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if deps.Logger == nil {
		deps.Logger = zap.NewNop()
	}
	return &Purger{config: config, deps: deps, logger: deps.Logger}, nil
}

// Actions a purge takes on a table's rows.
const (
	// ActionStrip: the rows stay, without their personal data.
	ActionStrip = "strip"
	// ActionDelete: the rows go.
	ActionDelete = "delete"
)

// Table is what a purge did, or on a dry run would do, to one table.
type Table struct {
	// Name is the table's name.
	Name string `json:"table"`
	// Action is ActionStrip or ActionDelete.
	Action string `json:"action"`
	// Rows counts the rows stripped or deleted: a row that had nothing left to remove is not counted.
	Rows int64 `json:"rows"`
	// Bytes is about how many bytes of stored values went (pg_column_size, compressed as stored).
	Bytes int64 `json:"bytes"`
}

// Result is what one purge did, table by table.
type Result struct {
	// DryRun says that nothing was written: Tables say what a purge would do.
	DryRun bool `json:"dry_run"`
	// Window is the window, as FormatWindow writes it.
	Window string `json:"older_than"`
	// Cutoff is now less the window, by the database's clock: what was written before it is old.
	Cutoff time.Time `json:"cutoff"`
	// Tables lists every table a purge looks at, in the order it looks.
	Tables []Table `json:"tables"`
}

// Total is the rows stripped or deleted in every table.
func (r *Result) Total() int64 {
	var n int64
	for _, t := range r.Tables {
		n += t.Rows
	}
	return n
}

// ErrLocked is returned by Purge when another purge holds the purge lock.
var ErrLocked = errors.New("another purge is running (it holds the advisory lock " + advisory.Purge + ")")

// purgeLock keeps purges apart: two at once would only contend for the same rows.
var purgeLock = advisory.Key(advisory.Purge)

// Purge purges once: every table, batch by batch. It returns ErrLocked, at once, when another purge is running. When
// ctx is done it returns ctx's error after the batch under way has rolled back; every batch committed before stays.
func (p *Purger) Purge(ctx context.Context) (*Result, error) {
	started := time.Now()
	conn, err := p.deps.Pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("acquiring a connection: %w", err)
	}
	defer conn.Release()
	if !p.config.DryRun {
		var locked bool
		if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, purgeLock).Scan(&locked); err != nil {
			return nil, fmt.Errorf("taking the purge lock: %w", err)
		}
		if !locked {
			return nil, ErrLocked
		}
		defer func() {
			unlockCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			if _, err := conn.Exec(unlockCtx, `SELECT pg_advisory_unlock($1)`, purgeLock); err != nil {
				// The session still holds the lock; closing it releases the lock.
				_ = conn.Conn().Close(unlockCtx)
			}
		}()
	}

	res := &Result{DryRun: p.config.DryRun, Window: FormatWindow(p.config.Window)}
	if err := conn.QueryRow(ctx, `SELECT now() - make_interval(secs => $1)`, p.config.Window.Seconds()).
		Scan(&res.Cutoff); err != nil {
		return nil, fmt.Errorf("reading the database's clock: %w", err)
	}
	r := &run{p: p, conn: conn.Conn(), cutoff: res.Cutoff}
	for _, w := range walks {
		t, err := r.walk(ctx, w)
		if err != nil {
			return nil, err
		}
		res.Tables = append(res.Tables, t)
	}
	t, err := r.inbox(ctx)
	if err != nil {
		return nil, err
	}
	res.Tables = append(res.Tables, t)
	people, err := r.people(ctx)
	if err != nil {
		return nil, err
	}
	res.Tables = append(res.Tables, people...)
	if !p.config.DryRun {
		if err := record(ctx, conn.Conn(), started, p.config.Window, res); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// record writes the purges row of a purge that ran to its end.
func record(ctx context.Context, conn *pgx.Conn, started time.Time, window time.Duration, res *Result) error {
	counts := map[string]Table{}
	for _, t := range res.Tables {
		counts[t.Name] = t
	}
	raw, err := json.Marshal(counts)
	if err != nil {
		return fmt.Errorf("recording the purge: %w", err)
	}
	if _, err := conn.Exec(ctx, `INSERT INTO purges (started_at, older_than, cutoff, counts)
		VALUES ($1, make_interval(secs => $2), $3, $4)`, started, window.Seconds(), res.Cutoff, raw); err != nil {
		return fmt.Errorf("recording the purge: %w", err)
	}
	return nil
}

// Run purges every Config.Interval, the first time after Config.FirstDelay, until ctx is done; it returns nil then.
// A purge that fails is tried again after a backoff (5 minutes, doubling up to an hour); one that finds another
// purge running waits for the next interval.
func (p *Purger) Run(ctx context.Context) error {
	loop := poll.New(poll.Config{
		BackoffInitial: 5 * time.Minute,
		BackoffMax:     time.Hour,
		BusyInterval:   p.config.Interval,
		ErrorFunc: func(err error, retryIn time.Duration) {
			p.logger.Error("purging failed; retrying", zap.Error(err), zap.Duration("retry_in", retryIn))
		},
		FirstDelay:   p.config.FirstDelay,
		FromStart:    true,
		IdleInterval: p.config.Interval,
	}, func(ctx context.Context) (poll.Result, error) {
		res, err := p.Purge(ctx)
		switch {
		case errors.Is(err, ErrLocked):
			p.logger.Debug("another purge is running; skipping this one")
			return poll.Skipped, nil
		case err != nil:
			return poll.Idle, err
		}
		p.Log(res)
		if res.Total() > 0 {
			return poll.Busy, nil
		}
		return poll.Idle, nil
	})
	loop.TestSignals = p.TestSignals
	loop.Run(ctx)
	return nil
}

// Log logs what a purge did: at Info, with the rows and bytes of each table, when it stripped or deleted anything.
// Counts only: never what was removed.
func (p *Purger) Log(res *Result) {
	fields := []zap.Field{zap.String("older_than", res.Window), zap.Time("cutoff", res.Cutoff),
		zap.Bool("dry_run", res.DryRun)}
	for _, t := range res.Tables {
		fields = append(fields, zap.Int64(t.Name, t.Rows), zap.Int64(t.Name+"_bytes", t.Bytes))
	}
	if res.Total() == 0 {
		p.logger.Debug("nothing to purge", fields...)
		return
	}
	msg := "purged personal data older than the retention window"
	if res.DryRun {
		msg = "counted what a purge would remove (dry run)"
	}
	p.logger.Info(msg, fields...)
}

// run is one purge under way: its connection (which holds the purge lock) and cutoff.
type run struct {
	p      *Purger
	conn   *pgx.Conn
	cutoff time.Time
}

// maxLockRetries is how many times a batch that met a lock is tried again before the purge gives up.
const maxLockRetries = 5

// batch runs f in a transaction under the lock timeout, calls the test hook and commits. A batch that met a lock
// is rolled back and, after a pause, tried again.
func (r *run) batch(ctx context.Context, table string, f func(tx pgx.Tx) error) error {
	for attempt := 0; ; attempt++ {
		err := pgx.BeginFunc(ctx, r.conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `SELECT set_config('lock_timeout', $1, true)`,
				fmt.Sprintf("%dms", r.p.config.LockTimeout.Milliseconds())); err != nil {
				return err
			}
			if err := f(tx); err != nil {
				return err
			}
			if r.p.deps.BeforeCommitFunc != nil {
				return r.p.deps.BeforeCommitFunc(ctx, table)
			}
			return nil
		})
		var pgErr *pgconn.PgError
		if err == nil || !errors.As(err, &pgErr) || pgErr.Code != "55P03" || attempt == maxLockRetries {
			if err != nil {
				return fmt.Errorf("purging %s: %w", table, err)
			}
			return nil
		}
		r.p.logger.Debug("a purge batch met a lock; trying again", zap.String("table", table))
		if err := poll.Sleep(ctx, 10*r.p.config.Pause); err != nil {
			return err
		}
	}
}

// between is the pause between two batches, which leaves the engines the database for a moment. A dry run, which
// writes nothing and so holds no lock, does not pause.
func (r *run) between(ctx context.Context) error {
	if r.p.config.DryRun {
		return ctx.Err()
	}
	return poll.Sleep(ctx, r.p.config.Pause)
}
