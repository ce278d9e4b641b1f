package e2

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/viaduct-nys/viaduct/pkg/countylist"
	"github.com/viaduct-nys/viaduct/pkg/poll"
	"go.uber.org/zap"
)

// DefaultIgnoreBefore is the original's production threshold: test results created by ECLRS on or before it are
// recorded as ignored.
var DefaultIgnoreBefore = time.Date(2020, 7, 13, 0, 0, 0, 0, time.UTC)

// DefaultBatchSize is how many test results a transaction takes unless Config.BatchSize says otherwise. Each
// batch pays a claim, a lookup per table and a statement per table written whatever its size, so larger batches
// cost less per result: 5,000 processed 15,200 to 16,700 results a second in make bench-e2 where 2,000 processed
// 14,400 to 14,700. A batch holds its people's locks until it commits, about half a second at this size, and one
// that fails is tried again a result at a time.
const DefaultBatchSize = 5000

// Config is Engine 2's configuration.
type Config struct {
	// BatchSize is how many test results one transaction claims and processes. Defaults to DefaultBatchSize.
	BatchSize int
	// Workers is how many batches run at once, each in its own transaction. Defaults to 2.
	Workers int
	// PollInterval is how long an idle worker waits before looking again; a NOTIFY from Engine 1 cuts the wait
	// short. Defaults to 5 seconds. After a failed batch a worker waits about PollInterval (at most a minute), then
	// about twice as long after each further failure in a row, up to a minute, with jitter (see poll.Config).
	PollInterval time.Duration
	// MaxAttempts is how many times a test result is tried before it is marked processing_failed. Defaults to 8.
	MaxAttempts int
	// RetryInitial and RetryMax bound the exponential backoff between attempts. Default (when zero) to 1 second and
	// 10 minutes.
	RetryInitial time.Duration
	RetryMax     time.Duration
	// IgnoreBefore: test results whose eclrs_create_date is not after it are ignored. Defaults to
	// DefaultIgnoreBefore.
	IgnoreBefore time.Time
	// UntilIdle makes Run return nil once no test result is ready.
	UntilIdle bool
	// Listen makes idle workers wake on Engine 1's NOTIFY as well as on the poll interval. Polling alone is
	// correct; this only shortens the wait.
	Listen bool
}

func (c *Config) setDefaults() {
	if c.BatchSize == 0 {
		c.BatchSize = DefaultBatchSize
	}
	if c.Workers == 0 {
		c.Workers = 2
	}
	if c.PollInterval == 0 {
		c.PollInterval = 5 * time.Second
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = 8
	}
	if c.RetryInitial == 0 {
		c.RetryInitial = time.Second
	}
	if c.RetryMax == 0 {
		c.RetryMax = 10 * time.Minute
	}
	if c.IgnoreBefore.IsZero() {
		c.IgnoreBefore = DefaultIgnoreBefore
	}
}

// Validate reports every problem with c at once. New applies the defaults first; a caller checking flags before
// that (the daemon) gets zeros reported as out of range.
func (c Config) Validate() error {
	var errs []error
	if c.BatchSize < 1 || c.BatchSize > 50_000 {
		errs = append(errs, fmt.Errorf("e2: batch size %d is outside 1 to 50,000", c.BatchSize))
	}
	if c.Workers < 1 || c.Workers > 64 {
		errs = append(errs, fmt.Errorf("e2: %d workers is outside 1 to 64", c.Workers))
	}
	if c.PollInterval < 10*time.Millisecond {
		errs = append(errs, fmt.Errorf("e2: poll interval %s is below 10ms", c.PollInterval))
	}
	if c.MaxAttempts < 1 {
		errs = append(errs, fmt.Errorf("e2: max attempts %d must be at least 1", c.MaxAttempts))
	}
	if c.RetryInitial < 0 || c.RetryMax < 0 || (c.RetryMax != 0 && c.RetryMax < c.RetryInitial) {
		errs = append(errs, fmt.Errorf("e2: retry backoff %s…%s must not be negative or decreasing", c.RetryInitial, c.RetryMax))
	}
	return errors.Join(errs...)
}

// Deps are Engine 2's collaborators.
type Deps struct {
	// Pool is the database.
	Pool *pgxpool.Pool
	// Counties is the current CommCare county list. Every county in it must have a counties row (the cache seeds
	// them), or index cases filed under it fail their foreign key and are retried.
	Counties countylist.Provider
	// Logger is Engine 2's named logger.
	Logger *zap.Logger
	// Metrics may be nil.
	Metrics *Metrics
	// Now is the clock for case_import_date; defaults to time.Now.
	Now func() time.Time
}

// Engine is Engine 2, the ECLRS → CommCare transformer.
type Engine struct {
	// TestSignals are signalled as the engine runs; the zero value signals nothing. Tests call TestSignals.Init
	// before Run.
	TestSignals TestSignals

	config Config
	deps   Deps
	logger *zap.Logger
	wake   *poll.Waker

	mu sync.Mutex
	// floor: every test result with an id at or below it is finished or waits for a retry (see nextFloor).
	floor        int64
	floorRead    bool // floor includes the stored one
	floorSavedAt time.Time
	stats        Stats
}

// TestSignals are what Engine 2 signals for tests to wait on.
type TestSignals struct {
	// Listening is signalled each time LISTEN has taken effect, after idle workers were woken to look once more.
	Listening poll.Signal[struct{}]
	// Poll is every worker's loop: PassDone is signalled after each batch.
	Poll poll.TestSignals
}

// Init readies every signal for tb. Only tests call it.
func (ts *TestSignals) Init(tb poll.TB) {
	ts.Listening.Init(tb)
	ts.Poll.Init(tb)
}

// Stats are an engine's totals since it started, for logs and benchmarks.
type Stats struct {
	// Batches is the number of batches committed.
	Batches int
	// Results counts test results finished (processed, ignored or failed).
	Results int
	// Ignored and Failed are the parts of Results that were ignored or marked processing_failed.
	Ignored int
	Failed  int
	// Retried counts failed attempts that will be tried again.
	Retried int
	// Claim, Match and Write are the time spent claiming test results, matching them against people, cases and lab
	// results (loading and deciding), and writing the outcome, summed over workers.
	Claim, Match, Write time.Duration
	// FirstClaim is how long the first claim after the start took: what a restart costs before work resumes.
	FirstClaim time.Duration
}

// New validates config and returns an Engine ready to Run.
func New(config Config, deps Deps) (*Engine, error) {
	config.setDefaults()
	errs := []error{config.Validate()}
	if deps.Pool == nil {
		errs = append(errs, errors.New("e2: a database pool is required"))
	}
	if deps.Counties == nil {
		errs = append(errs, errors.New("e2: a county list is required"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if deps.Logger == nil {
		deps.Logger = zap.NewNop()
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	return &Engine{config: config, deps: deps, logger: deps.Logger, wake: poll.NewWaker()}, nil
}

// Stats returns the engine's totals so far.
func (e *Engine) Stats() Stats {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.stats
}

// Run processes ready test results until ctx is done (or, with UntilIdle, until none is ready). It returns nil on a
// clean stop: a batch in flight when ctx is cancelled rolls back and is picked up again later.
func (e *Engine) Run(parent context.Context) error {
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	var listenDone chan struct{}
	if e.config.Listen && !e.config.UntilIdle {
		listenDone = make(chan struct{})
		go func() {
			defer close(listenDone)
			e.listen(ctx)
		}()
	}
	var wg sync.WaitGroup
	for w := range e.config.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e.work(ctx, w)
		}()
	}
	wg.Wait()
	cancel()
	if listenDone != nil {
		<-listenDone
	}
	if e.floorRead {
		// Stored on the way out, so the next start claims from here.
		if err := e.advanceFloor(context.WithoutCancel(parent), e.floor, true); err != nil {
			e.logger.Warn("could not store the claim floor", zap.Error(err))
		}
	}
	if e.config.UntilIdle && parent.Err() == nil {
		s := e.Stats()
		e.logger.Info("no test results ready; stopping", zap.Int("results", s.Results), zap.Int("ignored", s.Ignored),
			zap.Int("failed", s.Failed), zap.Int("retried", s.Retried), zap.Int("batches", s.Batches),
			zap.Duration("claim_time", s.Claim), zap.Duration("match_time", s.Match), zap.Duration("write_time", s.Write),
			zap.Duration("first_claim_time", s.FirstClaim))
	}
	return nil
}

// work is one worker's loop: claim and process batches back to back while they come back with results, then wait
// for a NOTIFY or the poll interval.
func (e *Engine) work(ctx context.Context, worker int) {
	logger := e.logger.With(zap.Int("worker", worker))
	// done counts what this worker finished since it last went idle; it is logged once per busy spell.
	done, since := 0, time.Now()
	loop := poll.New(poll.Config{
		BackoffInitial: e.config.PollInterval,
		BackoffMax:     time.Minute,
		ErrorFunc: func(err error, retryIn time.Duration) {
			logger.Error("processing test results failed; retrying", zap.Error(err), zap.Duration("retry_in", retryIn))
		},
		IdleInterval: e.config.PollInterval,
		UntilIdle:    e.config.UntilIdle,
		WakeFunc:     e.wake.Channel, // taken before looking, so a NOTIFY during the batch is not lost
	}, func(ctx context.Context) (poll.Result, error) {
		n, err := e.runBatch(ctx, worker)
		if err != nil || ctx.Err() != nil {
			return poll.Idle, err
		}
		done += n
		if n == e.config.BatchSize {
			return poll.Busy, nil
		}
		if done > 0 {
			logger.Info("test results processed", zap.Int("test_results", done),
				zap.Duration("elapsed", time.Since(since)))
			done = 0
		}
		since = time.Now()
		if n == 0 {
			return poll.Idle, nil
		}
		return poll.Busy, nil
	})
	loop.TestSignals = e.TestSignals.Poll
	loop.Run(ctx)
}
