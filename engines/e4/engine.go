package e4

import (
	"context"
	"errors"
	"fmt"
	"time"
	_ "time/tzdata" // the dates posted are New York dates, wherever the daemon runs

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"go.uber.org/zap"

	"github.com/viaduct-nys/viaduct/pkg/casedb"
	"github.com/viaduct-nys/viaduct/pkg/commcare"
	"github.com/viaduct-nys/viaduct/pkg/countylist"
)

// DefaultConcurrency is how many jobs a daemon works at once unless Config.Concurrency says otherwise.
const DefaultConcurrency = 40

// Config is Engine 4's configuration.
type Config struct {
	// Username and UserID are the CommCare user the forms are submitted as (meta/username, meta/userID, and the
	// patient case's user_id). UserID is required: CommCare shows it as the case's last submitter, and Engine 5
	// recognises Viaduct's own changes by it.
	Username string
	UserID   string
	// DryRun does everything but the POST: cases are looked up and their forms built, and each is recorded as a
	// send_to_commcare_succeeded event saying that posting is switched off.
	DryRun bool
	// Concurrency is how many jobs this daemon works at once. Defaults to DefaultConcurrency: each job spends most
	// of its time waiting on CommCare, and a slot also waits for River's next fetch, so 40 post about 700 cases a
	// second at 20 ms per request (make bench-e4; the original ran 10). CommCare's answers to a busy domain take
	// hundreds of milliseconds, so there the rate is about 40 divided by two requests' time; a 429 makes a job wait
	// as asked.
	Concurrency int
	// JobTimeout bounds one attempt: the transfer chain's GETs, the POST and the recording. Defaults to 2 minutes.
	JobTimeout time.Duration
	// RescueAfter is how long a job may stay running before River takes it for abandoned (its daemon was killed,
	// ran out of memory or lost its node) and makes it available again. A live attempt ends within JobTimeout, so
	// the default is JobTimeout plus a minute; River's own default, an hour, kept a crashed daemon's cases from
	// CommCare, and from Engine 3, that long.
	RescueAfter time.Duration
	// Retry is the policy for failed attempts; see RetryPolicy for the defaults.
	Retry RetryPolicy
	// PollInterval is how often an idle daemon looks for jobs besides River's notifications. Defaults to 1 second.
	PollInterval time.Duration
	// UntilIdle makes Run return once no job is waiting, running, or due to retry within IdleHorizon.
	UntilIdle bool
}

// IdleHorizon is how far ahead UntilIdle looks for jobs due to run: a job snoozed for a rate limit or retrying
// soon keeps Run going; one retrying later does not.
const IdleHorizon = time.Minute

func (c *Config) setDefaults() {
	if c.Concurrency == 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.JobTimeout == 0 {
		c.JobTimeout = 2 * time.Minute
	}
	if c.RescueAfter == 0 {
		c.RescueAfter = c.JobTimeout + time.Minute
	}
	c.Retry.setDefaults()
	if c.PollInterval == 0 {
		c.PollInterval = time.Second
	}
}

// Validate reports every problem with c at once; zero fields take their defaults first.
func (c Config) Validate() error {
	c.setDefaults()
	var errs []error
	if c.UserID == "" {
		errs = append(errs, errors.New("e4: the CommCare user id is required: forms are submitted as that user"))
	}
	if c.Concurrency < 1 || c.Concurrency > 1000 {
		errs = append(errs, fmt.Errorf("e4: concurrency %d is outside 1 to 1,000", c.Concurrency))
	}
	if c.JobTimeout < time.Second {
		errs = append(errs, fmt.Errorf("e4: job timeout %s is shorter than a second", c.JobTimeout))
	}
	if c.RescueAfter <= c.JobTimeout {
		errs = append(errs, fmt.Errorf("e4: rescue after %s must be longer than the job timeout %s, or live jobs "+
			"would be rescued and run twice", c.RescueAfter, c.JobTimeout))
	}
	if c.PollInterval < time.Millisecond {
		errs = append(errs, fmt.Errorf("e4: poll interval %s is shorter than a millisecond", c.PollInterval))
	}
	errs = append(errs, c.Retry.validate())
	return errors.Join(errs...)
}

// CommCare is what Engine 4 asks of CommCare; a *commcare.Client does it.
type CommCare interface {
	GetCase(ctx context.Context, domain, caseID string) (*commcare.Case, error)
	FindCasesByExternalID(ctx context.Context, domain, externalID string) ([]commcare.Case, error)
	SubmitForm(ctx context.Context, domain string, form []byte) (*commcare.SubmitResult, error)
}

// Deps are Engine 4's collaborators.
type Deps struct {
	// Pool is the database, which also holds River's jobs.
	Pool *pgxpool.Pool
	// CommCare is where cases are looked up and posted (the Worker's).
	CommCare CommCare
	// Counties routes a case to its county's domain (the Worker's).
	Counties countylist.Provider
	// Logger is Engine 4's named logger.
	Logger *zap.Logger
	// Metrics records what Engine 4 does; nil records nothing.
	Metrics *Metrics
	// Now is the clock; defaults to time.Now.
	Now func() time.Time

	// Worker is the worker registered in the config of the process's River client (Worker.Register), whose jobs
	// the Engine reports on. The daemon runs that client (pkg/jobqueue); Engine 3 and River UI share it.
	Worker *Worker
}

// NewWorker validates config and returns the River worker that hands cases to CommCare. Register it in the
// config of the River client before the client is built.
func NewWorker(config Config, deps Deps) (*Worker, error) {
	config.setDefaults()
	errs := []error{config.Validate()}
	if deps.Pool == nil {
		errs = append(errs, errors.New("e4: a database pool is required"))
	}
	if deps.CommCare == nil {
		errs = append(errs, errors.New("e4: a CommCare client is required"))
	}
	if deps.Counties == nil {
		errs = append(errs, errors.New("e4: a county list is required"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return newWorker(config, deps, deps.Pool)
}

// Register adds the worker, the commcare queue and the settings Engine 4's jobs need (timeout, rescue, retries,
// polling) to rc, the config of the process's one River client.
func (w *Worker) Register(rc *river.Config) error {
	if rc.Workers == nil {
		rc.Workers = river.NewWorkers()
	}
	if err := river.AddWorkerSafely(rc.Workers, w); err != nil {
		return fmt.Errorf("e4: %w", err)
	}
	if rc.Queues == nil {
		rc.Queues = map[string]river.QueueConfig{}
	}
	rc.Queues[casedb.CaseLoaderQueue] = river.QueueConfig{MaxWorkers: w.config.Concurrency}
	// A job runs at most this long; a post that hangs is cancelled and retried.
	rc.JobTimeout = w.config.JobTimeout
	// River rescues a job left running by a daemon that died only after this; it must outlast the job timeout,
	// or a live job would be rescued and posted twice.
	rc.RescueStuckJobsAfter = w.config.RescueAfter
	rc.MaxAttempts = casedb.CaseLoaderMaxAttempts
	rc.RetryPolicy = w.config.Retry
	// River learns of new jobs by LISTEN/NOTIFY: Engine 3's insert notifies at its commit, and the producer fetches
	// at once, or at the end of FetchCooldown when it fetched within it. The poll is the fallback, for a lost
	// notification. FetchCooldown also limits the inserting client: an insert within it of the last notified one
	// notifies nobody, and its jobs wait for the poll, which is why Engine 3 keeps its inserts at least its busy
	// interval (100 ms) apart. 10 ms rather than River's 100: a new job waits at most that for its fetch, and while
	// a backlog drains, a finished job's slot waits for the next fetch, half the cooldown on average plus the fetch
	// itself. At 25 ms a slot stood empty about 20 ms per job, a third of its time (make bench-e4: 468 posts/s at
	// 32 jobs, 565 at 10 ms); at 5 ms the extra fetches cost more CPU than they gained.
	rc.FetchPollInterval = w.config.PollInterval
	rc.FetchCooldown = min(10*time.Millisecond, w.config.PollInterval)
	return nil
}

// Engine is Engine 4, the CommCare case loader. Its Worker works the commcare queue on the process's River client;
// the Engine reports what the jobs did and, until idle, waits for them.
type Engine struct {
	config Config
	deps   Deps
	logger *zap.Logger
	worker *Worker
}

// New validates config and returns an Engine ready to Run, reporting on deps.Worker's jobs.
func New(config Config, deps Deps) (*Engine, error) {
	config.setDefaults()
	errs := []error{config.Validate()}
	if deps.Pool == nil {
		errs = append(errs, errors.New("e4: a database pool is required"))
	}
	if deps.Worker == nil {
		errs = append(errs, errors.New("e4: a registered worker is required"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if deps.Logger == nil {
		deps.Logger = zap.NewNop()
	}
	return &Engine{config: config, deps: deps, logger: deps.Logger, worker: deps.Worker}, nil
}

// Run logs what the jobs did until ctx is done or, with UntilIdle, until no job is left to do soon. The jobs
// themselves are worked by the process's River client, which the daemon starts and stops (pkg/jobqueue).
func (e *Engine) Run(ctx context.Context) error {
	tallyDone := make(chan struct{})
	tallyCtx, stopTally := context.WithCancel(ctx)
	go func() {
		defer close(tallyDone)
		e.logTally(tallyCtx)
	}()
	var err error
	if e.config.UntilIdle {
		err = e.waitIdle(ctx)
	} else {
		<-ctx.Done()
	}
	stopTally()
	<-tallyDone
	return err
}

// logTally logs what the jobs did every tallyInterval, and once more when ctx is done.
func (e *Engine) logTally(ctx context.Context) {
	t := time.NewTicker(tallyInterval)
	defer t.Stop()
	last := time.Now()
	for {
		select {
		case <-ctx.Done():
			e.worker.tally.log(e.logger, time.Since(last))
			return
		case now := <-t.C:
			e.worker.tally.log(e.logger, now.Sub(last))
			last = now
		}
	}
}

// waitIdle returns once two looks in a row, a poll interval apart, find no case loader job waiting, running, or
// due within IdleHorizon, or when ctx is done.
func (e *Engine) waitIdle(ctx context.Context) error {
	quiet := 0
	t := time.NewTicker(e.config.PollInterval)
	defer t.Stop()
	for quiet < 2 {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		var pending int
		err := e.deps.Pool.QueryRow(ctx, `SELECT count(*) FROM river_job WHERE kind = $1 AND (state IN
			('available', 'pending', 'running') OR (state IN ('scheduled', 'retryable') AND scheduled_at < now() + $2 * interval '1 second'))`,
			casedb.CaseLoaderArgs{}.Kind(), IdleHorizon.Seconds()).Scan(&pending)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("counting Engine 4's jobs: %w", err)
		}
		if pending == 0 {
			quiet++
		} else {
			quiet = 0
		}
	}
	return nil
}
