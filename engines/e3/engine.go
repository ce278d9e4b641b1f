package e3

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"go.uber.org/zap"
)

// Config is Engine 3's configuration.
type Config struct {
	// BatchSize is how many changed index cases one transaction enqueues. Defaults to 100.
	BatchSize int
	// BusyPollInterval is the pause between batches while cases keep coming; IdlePollInterval the pause after a
	// pass found nothing. Default to 1 and 5 seconds, as in the original.
	BusyPollInterval time.Duration
	IdlePollInterval time.Duration
	// UntilIdle makes Run return nil once a pass over every index case enqueues nothing.
	UntilIdle bool
}

func (c *Config) setDefaults() {
	if c.BatchSize == 0 {
		c.BatchSize = 100
	}
	if c.BusyPollInterval == 0 {
		c.BusyPollInterval = time.Second
	}
	if c.IdlePollInterval == 0 {
		c.IdlePollInterval = 5 * time.Second
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
}

// Engine is Engine 3, the CommCare enqueuer.
type Engine struct {
	config Config
	deps   Deps
	logger *zap.Logger
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
	return &Engine{config: config, deps: deps, logger: deps.Logger}, nil
}

// Run enqueues changed index cases until ctx is done (or, with UntilIdle, until a whole pass enqueues nothing). It
// walks the index cases in id order a batch at a time and starts again from the first when it reaches the end, so
// a case that changes again is found on the next pass.
func (e *Engine) Run(ctx context.Context) error {
	var after int64
	enqueuedThisPass, deferredThisPass, failures := 0, 0, 0
	for ctx.Err() == nil {
		res, err := e.enqueueBatch(ctx, after)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			failures++
			delay := min(e.config.IdlePollInterval*time.Duration(failures), time.Minute)
			e.logger.Error("enqueuing index cases failed; retrying", zap.Error(err), zap.Duration("retry_in", delay))
			sleep(ctx, delay)
			continue
		}
		failures = 0
		enqueuedThisPass += res.enqueued
		deferredThisPass += res.deferred
		if res.enqueued > 0 {
			e.logger.Info("index cases enqueued for CommCare", zap.Int("enqueued", res.enqueued),
				zap.Int("already_queued", res.deferred))
		}
		if res.last != 0 {
			after = res.last
			sleep(ctx, e.config.BusyPollInterval)
			continue
		}
		// The end of a pass.
		if e.config.UntilIdle && enqueuedThisPass == 0 && deferredThisPass == 0 {
			return nil
		}
		after, enqueuedThisPass, deferredThisPass = 0, 0, 0
		sleep(ctx, e.config.IdlePollInterval)
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
