package poll

import (
	"cmp"
	"context"
	"fmt"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// Result is what a pass tells the loop about the work it found.
type Result int

const (
	// Idle: the pass found nothing to do. The loop waits IdleInterval (cut short by a wake-up); with UntilIdle, Run
	// returns instead.
	Idle Result = iota
	// Busy: the pass did work, so more may be waiting. The loop waits BusyInterval.
	Busy
	// Skipped: the pass could not look, because another daemon held the work. The loop waits IdleInterval as after
	// Idle, but an UntilIdle loop goes on: the other daemon's work may leave some for this one.
	Skipped
)

// String returns the result's name.
func (r Result) String() string {
	switch r {
	case Idle:
		return "idle"
	case Busy:
		return "busy"
	case Skipped:
		return "skipped"
	}
	return fmt.Sprintf("Result(%d)", int(r))
}

// PassFunc is one pass: it does what work there is and reports whether it found any. An error makes the loop back
// off before the next pass; the Result returned with it is ignored.
type PassFunc func(ctx context.Context) (Result, error)

// Config tunes a Loop. Durations must not be negative.
type Config struct {
	// BackoffInitial and BackoffMax bound the wait after a failed pass, an exponential backoff from backoff/v4: the
	// nominal wait is BackoffInitial after the first failure in a row and doubles with each further one up to
	// BackoffMax. Each actual wait is the nominal one jittered by up to ±50% and then kept between BackoffInitial and
	// BackoffMax, so the first retry never comes sooner and no retry later than with the linear backoffs this
	// replaced, and daemons that failed together do not retry together. When the two are equal every retry waits
	// exactly that, without jitter. A pass that succeeds starts the sequence again. BackoffInitial defaults to
	// IdleInterval and BackoffMax to 1 minute; a BackoffInitial above BackoffMax is lowered to it.
	BackoffInitial time.Duration
	BackoffMax     time.Duration
	// BusyInterval is the wait after a pass that did work. Defaults to 0: the next pass at once. A wake-up does not
	// cut it short: it paces the passes that drain a backlog, so that a burst of wake-ups cannot start them closer
	// together (Engine 3 spaces its River inserts by it; see e3.Config). The next pass looks anyway.
	BusyInterval time.Duration
	// ErrorFunc, when set, is called after a failed pass with its error and the wait before the next pass, for the
	// caller's log line. It is not called when the pass ended because ctx was done.
	ErrorFunc func(err error, retryIn time.Duration)
	// FirstDelay is the wait before the first pass. Defaults to 0: the first pass at once.
	FirstDelay time.Duration
	// FromStart measures BusyInterval and IdleInterval from the start of a pass rather than its end, so passes start
	// at a steady rate however long each takes; a pass that took longer than the interval is followed at once. The
	// backoff after a failure is always measured from the end.
	FromStart bool
	// IdleInterval is the wait after a pass that found nothing (Idle or Skipped). Defaults to 1 second.
	IdleInterval time.Duration
	// UntilIdle makes Run return after the first pass that reports Idle.
	UntilIdle bool
	// WakeFunc, when set, is called just before each pass. A receive from the channel it returns (a send, or its
	// closing) ends the wait after that pass early when the pass found nothing (Idle or Skipped); the wait after a
	// busy or failed pass is kept. Because the channel is taken before the pass looks for work, a wake-up that
	// arrives while the pass runs is not lost.
	WakeFunc func() <-chan struct{}
}

// Loop runs a pass function until its context is done. Build it with New.
type Loop struct {
	// Config is the loop's configuration with its defaults filled in, exported for tests.
	Config Config
	// TestSignals are signalled as the loop runs; the zero value signals nothing. Tests call TestSignals.Init.
	TestSignals TestSignals

	after func(d time.Duration) (<-chan time.Time, func() bool) // a timer; tests substitute a fake
	now   func() time.Time                                      // the clock for FromStart; tests substitute a fake
	pass  PassFunc
}

// New returns a Loop that runs pass with config. It panics when a duration in config is negative or pass is nil:
// callers validate their own configuration first.
func New(config Config, pass PassFunc) *Loop {
	for name, d := range map[string]time.Duration{"BackoffInitial": config.BackoffInitial,
		"BackoffMax": config.BackoffMax, "BusyInterval": config.BusyInterval, "FirstDelay": config.FirstDelay,
		"IdleInterval": config.IdleInterval} {
		if d < 0 {
			panic(fmt.Sprintf("poll: %s %s is negative", name, d))
		}
	}
	if pass == nil {
		panic("poll: no pass function")
	}
	config.IdleInterval = cmp.Or(config.IdleInterval, time.Second)
	config.BackoffMax = cmp.Or(config.BackoffMax, time.Minute)
	config.BackoffInitial = min(cmp.Or(config.BackoffInitial, config.IdleInterval), config.BackoffMax)
	return &Loop{
		Config: config,
		after: func(d time.Duration) (<-chan time.Time, func() bool) {
			t := time.NewTimer(d)
			return t.C, t.Stop
		},
		now:  time.Now,
		pass: pass,
	}
}

// Outcome is what one pass reported, as TestSignals.PassDone carries it.
type Outcome struct {
	// Err is the error the pass returned; nil when it succeeded.
	Err error
	// Result is what the pass reported.
	Result Result
}

// Run runs passes until ctx is done, or with UntilIdle until a pass reports Idle.
func (l *Loop) Run(ctx context.Context) {
	l.wait(ctx, l.Config.FirstDelay, nil)
	retry := backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(l.Config.BackoffInitial),
		backoff.WithMaxInterval(l.Config.BackoffMax),
		backoff.WithMultiplier(2),
		backoff.WithRandomizationFactor(0.5),
		backoff.WithMaxElapsedTime(0), // never give up
	)
	for ctx.Err() == nil {
		var wake <-chan struct{}
		if l.Config.WakeFunc != nil {
			wake = l.Config.WakeFunc()
		}
		started := l.now()
		res, err := l.pass(ctx)
		if ctx.Err() != nil {
			l.TestSignals.PassDone.Signal(Outcome{Err: err, Result: res})
			return
		}
		if err != nil {
			delay := min(max(retry.NextBackOff(), l.Config.BackoffInitial), l.Config.BackoffMax)
			if l.Config.ErrorFunc != nil {
				l.Config.ErrorFunc(err, delay)
			}
			l.TestSignals.PassDone.Signal(Outcome{Err: err, Result: res})
			l.wait(ctx, delay, nil)
			continue
		}
		retry.Reset()
		l.TestSignals.PassDone.Signal(Outcome{Result: res})
		if l.Config.UntilIdle && res == Idle {
			return
		}
		delay := l.Config.IdleInterval
		if res == Busy {
			delay, wake = l.Config.BusyInterval, nil
		}
		if l.Config.FromStart {
			delay -= l.now().Sub(started)
		}
		l.wait(ctx, delay, wake)
	}
}

// wait waits for d, a wake-up on wake (nil: none) or ctx, whichever comes first. It returns at once when d is not
// positive.
func (l *Loop) wait(ctx context.Context, d time.Duration, wake <-chan struct{}) {
	if d <= 0 {
		return
	}
	c, stop := l.after(d)
	defer stop()
	select {
	case <-ctx.Done():
	case <-c:
	case <-wake:
	}
}

// Sleep waits d, or until ctx is done, when it returns ctx's error: the pause a loop's pass takes within itself
// (between batches, before asking a rate-limited server again), as River's CancellableSleep.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
