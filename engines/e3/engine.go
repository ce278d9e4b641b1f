package e3

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"go.uber.org/zap"

	"github.com/viaduct-nys/viaduct/pkg/advisory"
	"github.com/viaduct-nys/viaduct/pkg/casedb"
	"github.com/viaduct-nys/viaduct/pkg/poll"
)

// Config is Engine 3's configuration.
type Config struct {
	// BatchSize is how many changed index cases one transaction enqueues. Defaults to 100.
	BatchSize int
	// BusyPollInterval is the pause after a pass that enqueued cases; IdlePollInterval the pause after a pass that
	// found nothing. Default to 100 and 500 milliseconds: a pass costs what changed since the last one, so polling
	// often is cheap. Engine 2's NOTIFY (casedb.ChangedChannel) ends the idle pause, so a change reaches Engine 4 as
	// soon as it commits; IdlePollInterval bounds the wait when a notification is lost (the listening connection
	// down, a writer that sends none). The busy pause is kept whatever comes: River's client sends no insert
	// notification for a queue within its FetchCooldown (25 ms as Engine 4 sets it, 100 ms by River's default) of
	// the last one, so jobs inserted sooner would wait for the fetch poll (a second). BusyPollInterval must therefore
	// stay at least that FetchCooldown. (The original's 1 and 5 seconds were set by a pass that read every index
	// case.) After a failed pass Run waits about IdlePollInterval, then about twice as long after each further
	// failure in a row, up to a minute, with jitter (see poll.Config).
	BusyPollInterval time.Duration
	IdlePollInterval time.Duration
	// UntilIdle makes Run return nil once a pass enqueues nothing. Cases it had to leave (their job is running) are
	// logged. An until-idle run does not listen for Engine 2's NOTIFY.
	UntilIdle bool
}

func (c *Config) setDefaults() {
	if c.BatchSize == 0 {
		c.BatchSize = 100
	}
	if c.BusyPollInterval == 0 {
		c.BusyPollInterval = 100 * time.Millisecond
	}
	if c.IdlePollInterval == 0 {
		c.IdlePollInterval = 500 * time.Millisecond
	}
}

// Validate reports every problem with c at once.
func (c Config) Validate() error {
	var errs []error
	if c.BatchSize < 1 || c.BatchSize > 10_000 {
		errs = append(errs, fmt.Errorf("e3: batch size %d is outside 1 to 10,000", c.BatchSize))
	}
	if c.BusyPollInterval < 0 || c.IdlePollInterval < 10*time.Millisecond {
		errs = append(errs, fmt.Errorf("e3: poll intervals %s (busy) and %s (idle) must not be negative, and idle at least 10ms",
			c.BusyPollInterval, c.IdlePollInterval))
	}
	return errors.Join(errs...)
}

// Inserter is the part of a River client Engine 3 uses: it inserts jobs inside the caller's transaction.
type Inserter interface {
	InsertManyTx(ctx context.Context, tx pgx.Tx, params []river.InsertManyParams) ([]*rivertype.JobInsertResult, error)
}

// Deps are Engine 3's collaborators.
type Deps struct {
	// Pool is the database.
	Pool *pgxpool.Pool
	// Jobs inserts Engine 4's jobs; a River client with no queues of its own will do.
	Jobs Inserter
	// Logger is Engine 3's named logger.
	Logger *zap.Logger
	// Metrics records passes and hand-offs; nil records nothing.
	Metrics *Metrics
}

// Engine is Engine 3, the CommCare enqueuer.
type Engine struct {
	// TestSignals are signalled as Run runs; the zero value signals nothing. Tests call TestSignals.Init.
	TestSignals TestSignals

	config Config
	deps   Deps
	logger *zap.Logger
	wake   *poll.Waker
}

// TestSignals are what Engine 3 signals for tests to wait on.
type TestSignals struct {
	// Listening is signalled each time LISTEN has taken effect, after the loop was woken to look once more.
	Listening poll.Signal[struct{}]
	// Poll is the pass loop: PassDone is signalled after each pass.
	Poll poll.TestSignals
}

// Init readies every signal for tb. Only tests call it.
func (ts *TestSignals) Init(tb poll.TB) {
	ts.Listening.Init(tb)
	ts.Poll.Init(tb)
}

// New validates config and returns an Engine ready to Run.
func New(config Config, deps Deps) (*Engine, error) {
	config.setDefaults()
	errs := []error{config.Validate()}
	if deps.Pool == nil {
		errs = append(errs, errors.New("e3: a database pool is required"))
	}
	if deps.Jobs == nil {
		errs = append(errs, errors.New("e3: a River client is required"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if deps.Logger == nil {
		deps.Logger = zap.NewNop()
	}
	return &Engine{config: config, deps: deps, logger: deps.Logger, wake: poll.NewWaker()}, nil
}

// passLock keeps passes apart across daemons: a pass reads and advances the one horizon, so two at once would only
// do the same work twice. Daemons that find it taken idle until the next interval.
var passLock = advisory.Key(advisory.E3Pass)

// passResult is what one pass did.
type passResult struct {
	ran      bool // false when another daemon's pass held the lock
	waiting  int  // changed cases found
	enqueued int  // handed off to Engine 4
	deferred int  // left for a later pass (job running, or case locked)
}

// Run enqueues changed index cases until ctx is done (or, with UntilIdle, until a pass enqueues nothing). Each pass
// reads the cases changed since the horizon, hands them off a batch at a time and then advances the horizon.
// Between passes it waits for the poll interval or Engine 2's NOTIFY, whichever comes first.
func (e *Engine) Run(parent context.Context) error {
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	if !e.config.UntilIdle {
		listenDone := make(chan struct{})
		go func() {
			defer close(listenDone)
			e.listen(ctx)
		}()
		defer func() {
			cancel()
			<-listenDone
		}()
	}
	loop := poll.New(poll.Config{
		BackoffInitial: e.config.IdlePollInterval,
		BackoffMax:     time.Minute,
		BusyInterval:   e.config.BusyPollInterval,
		ErrorFunc: func(err error, retryIn time.Duration) {
			e.logger.Error("enqueuing index cases failed; retrying", zap.Error(err), zap.Duration("retry_in", retryIn))
		},
		IdleInterval: e.config.IdlePollInterval,
		UntilIdle:    e.config.UntilIdle,
		WakeFunc:     e.wake.Channel, // taken before the pass looks, so a NOTIFY during the pass is not lost
	}, func(ctx context.Context) (poll.Result, error) {
		start := time.Now()
		res, err := e.pass(ctx)
		end := time.Now()
		e.deps.Metrics.observePass(res, err, err != nil && ctx.Err() != nil, end.Sub(start), end)
		switch {
		case err != nil:
			return poll.Idle, err
		case !res.ran:
			return poll.Skipped, nil
		case res.enqueued > 0:
			e.logger.Info("index cases enqueued for CommCare", zap.Int("enqueued", res.enqueued),
				zap.Int("deferred", res.deferred))
			return poll.Busy, nil
		}
		if e.config.UntilIdle && res.deferred > 0 {
			e.logger.Warn("stopping with changed index cases left: their Engine 4 job is running (or another "+
				"transaction held them); a later pass hands them off once it is done",
				zap.Int("left", res.deferred), zap.Int64s("index_case_ids", e.deferredIDs(ctx)))
		}
		return poll.Idle, nil
	})
	loop.TestSignals = e.TestSignals.Poll
	loop.Run(ctx)
	return nil
}

// listen wakes the pass loop whenever Engine 2 commits index case changes (NOTIFY on casedb.ChangedChannel). It is
// only a shortcut: when the connection drops it reconnects with a growing pause, and polling carries on meanwhile.
func (e *Engine) listen(ctx context.Context) {
	poll.Listen(ctx, e.deps.Pool, e.wake, poll.ListenConfig{
		Channel: casedb.ChangedChannel,
		ErrorFunc: func(err error, retryIn time.Duration) {
			e.logger.Warn("listening for changed index cases failed; polling only until it reconnects",
				zap.Error(err), zap.Duration("retry_in", retryIn))
		},
		NotifiedFunc:  func() { e.logger.Debug("changed index cases announced") },
		ListeningFunc: func() { e.TestSignals.Listening.Signal(struct{}{}) },
	})
}

// pass runs one pass under the pass lock.
func (e *Engine) pass(ctx context.Context) (passResult, error) {
	var res passResult
	conn, err := e.deps.Pool.Acquire(ctx)
	if err != nil {
		return res, fmt.Errorf("acquiring a connection: %w", err)
	}
	defer conn.Release()
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, passLock).Scan(&res.ran); err != nil {
		return res, fmt.Errorf("taking the pass lock: %w", err)
	}
	if !res.ran {
		return res, nil
	}
	defer func() {
		unlockCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if _, err := conn.Exec(unlockCtx, `SELECT pg_advisory_unlock($1)`, passLock); err != nil {
			// The session still holds the lock; closing it releases the lock.
			_ = conn.Conn().Close(unlockCtx)
		}
	}()

	h, err := readHorizon(ctx, conn)
	if err != nil {
		return res, err
	}
	ids, err := waiting(ctx, conn, h)
	if err != nil {
		return res, err
	}
	res.waiting = len(ids)
	if err := forgetDeferred(ctx, conn, ids); err != nil {
		return res, err
	}
	for chunk := range slices.Chunk(ids, e.config.BatchSize) {
		r, err := e.enqueueBatch(ctx, chunk)
		if err != nil {
			return res, err
		}
		res.enqueued += r.enqueued
		res.deferred += r.deferred
	}
	return res, advanceHorizon(ctx, conn, h)
}

// deferredIDs lists the deferred index cases, for the log line of an until-idle run that leaves some.
func (e *Engine) deferredIDs(ctx context.Context) []int64 {
	rows, err := e.deps.Pool.Query(ctx, `SELECT index_case_id FROM e3_deferred ORDER BY 1 LIMIT 100`)
	if err != nil {
		return nil
	}
	ids, _ := pgx.CollectRows(rows, pgx.RowTo[int64])
	return ids
}
