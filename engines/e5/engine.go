package e5

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"

	"github.com/viaduct-nys/viaduct/pkg/advisory"
	"github.com/viaduct-nys/viaduct/pkg/commcare"
	"github.com/viaduct-nys/viaduct/pkg/countylist"
	"github.com/viaduct-nys/viaduct/pkg/poll"
)

// Config is Engine 5's configuration.
type Config struct {
	// Interval is the time from the start of one round to the start of the next. Defaults to 5 minutes.
	Interval time.Duration
	// Overlap is how far before a domain's high-water mark the next round starts reading, so that a change
	// CommCare stamped a little before the mark (clock skew, a slow commit on its side) is not missed. Reading a
	// change twice is harmless: merging is idempotent. Defaults to 2 minutes.
	Overlap time.Duration
	// FirstWindow is how far back the first round reads a domain that has no mark yet. Defaults to 48 hours, as the
	// original's first pass did.
	FirstWindow time.Duration
	// PageSize is how many cases one request asks for. Defaults to 100.
	PageSize int
	// Domains is how many domains are read at once. Defaults to 4.
	Domains int
	// OwnUserIDs are the CommCare user ids Viaduct posts as (Engine 4's). A case whose last change is theirs is
	// Viaduct's own post coming back and is skipped.
	OwnUserIDs []string
	// UntilIdle makes Run do one round (waiting for another daemon's round to end first) and return.
	UntilIdle bool
}

func (c *Config) setDefaults() {
	if c.Interval == 0 {
		c.Interval = 5 * time.Minute
	}
	if c.Overlap == 0 {
		c.Overlap = 2 * time.Minute
	}
	if c.FirstWindow == 0 {
		c.FirstWindow = 48 * time.Hour
	}
	if c.PageSize == 0 {
		c.PageSize = 100
	}
	if c.Domains == 0 {
		c.Domains = 4
	}
}

// Validate reports every problem with c at once; zero fields take their defaults first.
func (c Config) Validate() error {
	c.setDefaults()
	var errs []error
	if c.Interval < time.Second {
		errs = append(errs, fmt.Errorf("e5: interval %s is shorter than a second", c.Interval))
	}
	if c.Overlap < 0 || c.Overlap > 24*time.Hour {
		errs = append(errs, fmt.Errorf("e5: overlap %s is outside 0 to 24h", c.Overlap))
	}
	if c.FirstWindow < 0 {
		errs = append(errs, fmt.Errorf("e5: first window %s is negative", c.FirstWindow))
	}
	if c.PageSize < 1 || c.PageSize > 5000 {
		errs = append(errs, fmt.Errorf("e5: page size %d is outside 1 to 5,000 (CommCare's limit)", c.PageSize))
	}
	if c.Domains < 1 || c.Domains > 100 {
		errs = append(errs, fmt.Errorf("e5: %d domains at once is outside 1 to 100", c.Domains))
	}
	return errors.Join(errs...)
}

// CommCare is what Engine 5 asks of CommCare; a *commcare.Client does it. Polling lists changed cases; the
// importer of forwarded cases gets one case in full when what was forwarded lacks what creating it needs.
type CommCare interface {
	ListCases(ctx context.Context, domain string, q commcare.CaseQuery) (*commcare.CasePage, error)
	GetCase(ctx context.Context, domain, caseID string) (*commcare.Case, error)
}

// Deps are Engine 5's collaborators.
type Deps struct {
	// Pool is the database. A round also opens one connection of its own, with the pool's settings, to hold the
	// round's lock.
	Pool *pgxpool.Pool
	// CommCare is where changed cases are read.
	CommCare CommCare
	// Counties names the participating domains.
	Counties countylist.Provider
	// Logger is Engine 5's named logger.
	Logger *zap.Logger
	// Now is the clock; defaults to time.Now.
	Now func() time.Time
	// Metrics records what Engine 5 does; nil records nothing.
	Metrics *Metrics
	// SleepFunc waits d, or until ctx is done (then it returns ctx's error), when CommCare asks Engine 5 to slow
	// down. Defaults to a timer; tests replace it to see each wait asked for without taking it.
	SleepFunc func(ctx context.Context, d time.Duration) error
}

// Engine is Engine 5, the CommCare extractor.
type Engine struct {
	// TestSignals are signalled after each round of Run; the zero value signals nothing. Tests call TestSignals.Init.
	TestSignals poll.TestSignals

	config Config
	deps   Deps
	logger *zap.Logger
}

// New validates config and returns an Engine ready to Run.
func New(config Config, deps Deps) (*Engine, error) {
	config.setDefaults()
	errs := []error{config.Validate()}
	if deps.Pool == nil {
		errs = append(errs, errors.New("e5: a database pool is required"))
	}
	if deps.CommCare == nil {
		errs = append(errs, errors.New("e5: a CommCare client is required"))
	}
	if deps.Counties == nil {
		errs = append(errs, errors.New("e5: a county list is required"))
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
	if deps.SleepFunc == nil {
		deps.SleepFunc = poll.Sleep
	}
	return &Engine{config: config, deps: deps, logger: deps.Logger}, nil
}

// Run polls CommCare a round at a time, a round starting every Interval, until ctx is done (or, with UntilIdle,
// after one round). Only one daemon runs a round at a time: the others skip theirs.
func (e *Engine) Run(ctx context.Context) error {
	// Every round reports Idle: rounds start Interval apart whatever they found, and an until-idle run does one.
	loop := poll.New(poll.Config{FromStart: true, IdleInterval: e.config.Interval, UntilIdle: e.config.UntilIdle},
		func(ctx context.Context) (poll.Result, error) {
			if err := e.Round(ctx); err != nil && ctx.Err() == nil {
				// Not returned to the loop: a failed round is retried at the next interval, not sooner.
				e.logger.Error("the round failed; trying again next interval", zap.Error(err))
			}
			return poll.Idle, nil
		})
	loop.TestSignals = e.TestSignals
	loop.Run(ctx)
	return nil
}

// RoundResult is what one round did, summed over its domains.
type RoundResult struct {
	Domains, Failed int // domains read, and of those failed
	Stats
}

// Round reads every participating domain once, Domains at a time, under the leader lock. A domain that fails is
// reported and retried next round; the others go on. It returns an error only when it could not run at all.
func (e *Engine) Round(ctx context.Context) error {
	release, ok, err := e.lead(ctx)
	if err != nil {
		return err
	}
	if !ok {
		e.logger.Debug("another daemon is polling CommCare; skipping this round")
		return nil
	}
	defer release()

	counties := e.deps.Counties.Current().Participating()
	sort.Slice(counties, func(i, j int) bool { return counties[i].Domain < counties[j].Domain })
	start := time.Now()
	var (
		mu  sync.Mutex
		res RoundResult
		wg  sync.WaitGroup
	)
	sem := make(chan struct{}, e.config.Domains)
	for _, county := range counties {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			stats, err := e.pollDomain(ctx, county)
			mu.Lock()
			defer mu.Unlock()
			res.Domains++
			res.add(stats)
			if err != nil && ctx.Err() == nil {
				res.Failed++
				e.logger.Warn("reading a domain failed; it is read again next round", zap.String("domain", county.Domain),
					zap.Error(err))
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	e.deps.Metrics.observeRound(res, ctx.Err() != nil, elapsed, time.Now())
	fields := append([]zap.Field{zap.Int("domains", res.Domains), zap.Int("domains_failed", res.Failed),
		zap.Duration("elapsed", elapsed.Round(time.Millisecond))}, res.fields()...)
	if ctx.Err() != nil {
		e.logger.Info("CommCare round interrupted by the stop; the next round reads the rest", fields...)
	} else if res.Created+res.Updated > 0 || res.Failed > 0 {
		e.logger.Info("CommCare round done", fields...)
	} else {
		e.logger.Debug("CommCare round done", fields...)
	}
	return ctx.Err()
}

// leaderLockKey is the session advisory lock a daemon holds while it runs a round.
var leaderLockKey = advisory.Key(advisory.E5Round)

// lead takes the leader lock on a connection opened for it outside the pool, so that a round's merges have every
// pooled connection: without waiting (a round is skipped when another daemon runs one), or, with UntilIdle, waiting
// for it. release gives it back.
func (e *Engine) lead(ctx context.Context) (release func(), ok bool, err error) {
	conn, err := pgx.ConnectConfig(ctx, e.deps.Pool.Config().ConnConfig.Copy())
	if err != nil {
		return nil, false, fmt.Errorf("connecting for the round lock: %w", err)
	}
	closeConn := func() {
		// Ending the session releases its lock, even when the unlock could not be sent.
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = conn.Close(closeCtx)
	}
	if e.config.UntilIdle {
		_, err = conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, leaderLockKey)
		ok = err == nil
	} else {
		err = conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, leaderLockKey).Scan(&ok)
	}
	if err != nil || !ok {
		closeConn()
		if err != nil {
			return nil, false, fmt.Errorf("taking the round lock: %w", err)
		}
		return nil, false, nil
	}
	return closeConn, true, nil
}
