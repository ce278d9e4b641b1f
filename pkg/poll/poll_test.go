package poll

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// reply is what the test's pass function returns, once the test hands it over.
type reply struct {
	advance time.Duration // how far the fake clock moves while the pass runs
	err     error
	result  Result
}

// failure is one call of ErrorFunc.
type failure struct {
	err     error
	retryIn time.Duration
}

func TestLoop(t *testing.T) {
	t.Parallel()

	// testBundle drives a Loop whose passes, timer and clock belong to the test: a pass blocks until the test hands
	// it a reply, a wait lasts until the test fires the timer (or a wake-up or ctx ends it), and the clock moves only
	// when a reply says so. Nothing depends on how fast the machine is.
	type testBundle struct {
		cancel   context.CancelFunc
		done     chan struct{}      // receives when Run returns
		failures chan failure       // ErrorFunc's calls
		fire     chan time.Time     // a send ends the wait in progress
		loop     *Loop              //
		passing  chan struct{}      // receives when a pass starts
		replies  chan reply         // a send is the reply of the pass in progress
		wake     chan struct{}      // what WakeFunc returns
		waits    chan time.Duration // each wait the loop starts

		mu  sync.Mutex
		now time.Time
	}

	setup := func(t *testing.T, config Config) *testBundle {
		t.Helper()
		b := &testBundle{
			done:     make(chan struct{}, 1),
			failures: make(chan failure, 100),
			fire:     make(chan time.Time),
			passing:  make(chan struct{}, 100),
			replies:  make(chan reply),
			wake:     make(chan struct{}, 1),
			waits:    make(chan time.Duration, 100),
			now:      time.Date(2021, 6, 1, 12, 0, 0, 0, time.UTC),
		}
		config.ErrorFunc = func(err error, retryIn time.Duration) { b.failures <- failure{err, retryIn} }
		config.WakeFunc = func() <-chan struct{} { return b.wake }
		b.loop = New(config, func(ctx context.Context) (Result, error) {
			select {
			case b.passing <- struct{}{}:
			default:
			}
			select {
			case r := <-b.replies:
				b.mu.Lock()
				b.now = b.now.Add(r.advance)
				b.mu.Unlock()
				return r.result, r.err
			case <-ctx.Done():
				return Idle, ctx.Err()
			}
		})
		b.loop.after = func(d time.Duration) (<-chan time.Time, func() bool) {
			b.waits <- d
			return b.fire, func() bool { return true }
		}
		b.loop.now = func() time.Time {
			b.mu.Lock()
			defer b.mu.Unlock()
			return b.now
		}
		b.loop.TestSignals.Init(t)
		return b
	}

	// start runs the loop until the test ends.
	start := func(t *testing.T, b *testBundle) {
		t.Helper()
		ctx, cancel := context.WithCancel(context.Background())
		b.cancel = cancel
		go func() {
			b.loop.Run(ctx)
			b.done <- struct{}{}
		}()
		t.Cleanup(func() {
			cancel()
			<-b.done
		})
	}

	// pass hands r to the pass in progress (the next one, if none is) and returns what the loop signalled for it.
	pass := func(t *testing.T, b *testBundle, r reply) Outcome {
		t.Helper()
		select {
		case b.replies <- r:
		case <-time.After(signalTimeout):
			t.Fatal("no pass ran")
		}
		return b.loop.TestSignals.PassDone.WaitOrTimeout()
	}

	// nextWait returns the length of the next wait the loop starts.
	nextWait := func(t *testing.T, b *testBundle) time.Duration {
		t.Helper()
		select {
		case d := <-b.waits:
			return d
		case <-time.After(signalTimeout):
			t.Fatal("the loop never waited")
		}
		return 0
	}

	// requireWaiting ends the wait in progress by firing its timer, failing the test if a pass runs instead: only one
	// of the two can be ready, so the outcome does not depend on timing.
	requireWaiting := func(t *testing.T, b *testBundle) {
		t.Helper()
		select {
		case b.fire <- time.Time{}:
		case b.replies <- reply{}:
			t.Fatal("a pass ran while the loop should have been waiting")
		case <-time.After(signalTimeout):
			t.Fatal("the loop neither waits nor passes")
		}
	}

	// requireReturned checks that Run returned.
	requireReturned := func(t *testing.T, b *testBundle) {
		t.Helper()
		select {
		case <-b.done:
			b.done <- struct{}{} // for the cleanup
		case <-time.After(signalTimeout):
			t.Fatal("Run did not return")
		}
	}

	t.Run("Defaults", func(t *testing.T) {
		t.Parallel()
		l := New(Config{}, func(context.Context) (Result, error) { return Idle, nil })
		require.Equal(t, Config{BackoffInitial: time.Second, BackoffMax: time.Minute, IdleInterval: time.Second},
			l.Config)
		l = New(Config{IdleInterval: time.Hour}, func(context.Context) (Result, error) { return Idle, nil })
		require.Equal(t, time.Minute, l.Config.BackoffInitial, "an initial backoff above the maximum is lowered to it")
	})

	t.Run("RejectsNegativeDurations", func(t *testing.T) {
		t.Parallel()
		require.PanicsWithValue(t, "poll: BusyInterval -1s is negative", func() {
			New(Config{BusyInterval: -time.Second}, func(context.Context) (Result, error) { return Idle, nil })
		})
		require.PanicsWithValue(t, "poll: no pass function", func() { New(Config{}, nil) })
	})

	t.Run("FirstPassAtOnceThenIntervals", func(t *testing.T) {
		t.Parallel()
		b := setup(t, Config{BusyInterval: time.Minute, IdleInterval: time.Hour})
		start(t, b)
		<-b.passing
		require.Empty(t, b.waits, "no wait before the first pass")
		require.Equal(t, Outcome{Result: Busy}, pass(t, b, reply{result: Busy}))
		require.Equal(t, time.Minute, nextWait(t, b), "after work, the busy interval")
		requireWaiting(t, b)
		require.Equal(t, Outcome{Result: Idle}, pass(t, b, reply{result: Idle}))
		require.Equal(t, time.Hour, nextWait(t, b), "after nothing, the idle interval")
		requireWaiting(t, b)
		require.Equal(t, Outcome{Result: Skipped}, pass(t, b, reply{result: Skipped}))
		require.Equal(t, time.Hour, nextWait(t, b), "skipped waits like idle")
		requireWaiting(t, b)
		pass(t, b, reply{result: Idle})
	})

	t.Run("ZeroBusyIntervalPassesAgainAtOnce", func(t *testing.T) {
		t.Parallel()
		b := setup(t, Config{IdleInterval: time.Hour})
		start(t, b)
		pass(t, b, reply{result: Busy})
		pass(t, b, reply{result: Busy})
		pass(t, b, reply{result: Idle})
		require.Equal(t, time.Hour, nextWait(t, b))
		require.Empty(t, b.waits, "no wait between the busy passes")
	})

	t.Run("FirstDelay", func(t *testing.T) {
		t.Parallel()
		b := setup(t, Config{FirstDelay: 30 * time.Minute, IdleInterval: time.Hour})
		start(t, b)
		require.Equal(t, 30*time.Minute, nextWait(t, b))
		requireWaiting(t, b)
		pass(t, b, reply{result: Idle})
		require.Equal(t, time.Hour, nextWait(t, b))
	})

	t.Run("UntilIdle", func(t *testing.T) {
		t.Parallel()
		b := setup(t, Config{IdleInterval: time.Hour, UntilIdle: true})
		start(t, b)
		pass(t, b, reply{result: Busy})
		pass(t, b, reply{result: Skipped})
		require.Equal(t, time.Hour, nextWait(t, b), "another daemon's work does not end an until-idle run")
		requireWaiting(t, b)
		pass(t, b, reply{err: errors.New("database on fire")})
		<-b.failures
		nextWait(t, b)
		requireWaiting(t, b)
		pass(t, b, reply{result: Idle})
		requireReturned(t, b)
	})

	t.Run("WakeEndsAnIdleWait", func(t *testing.T) {
		t.Parallel()
		b := setup(t, Config{IdleInterval: time.Hour})
		start(t, b)
		pass(t, b, reply{result: Idle})
		require.Equal(t, time.Hour, nextWait(t, b))
		b.wake <- struct{}{}
		pass(t, b, reply{result: Idle})

		// A wake-up during a pass ends the wait that follows it.
		require.Equal(t, time.Hour, nextWait(t, b))
		requireWaiting(t, b)
		b.wake <- struct{}{}
		pass(t, b, reply{result: Idle})
		require.Equal(t, time.Hour, nextWait(t, b))
		pass(t, b, reply{result: Idle})
	})

	t.Run("WakeChannelIsTakenBeforeThePass", func(t *testing.T) {
		t.Parallel()
		// A broadcast like Engine 2's: a wake-up closes the current channel and replaces it.
		b := setup(t, Config{IdleInterval: time.Hour})
		var mu sync.Mutex
		current := make(chan struct{})
		b.loop.Config.WakeFunc = func() <-chan struct{} {
			mu.Lock()
			defer mu.Unlock()
			return current
		}
		broadcast := func() {
			mu.Lock()
			defer mu.Unlock()
			close(current)
			current = make(chan struct{})
		}
		start(t, b)
		<-b.passing
		broadcast() // while the first pass runs
		pass(t, b, reply{result: Idle})
		require.Equal(t, time.Hour, nextWait(t, b))
		pass(t, b, reply{result: Idle}) // the wake-up during the first pass ended its wait
		require.Equal(t, time.Hour, nextWait(t, b))
		requireWaiting(t, b) // the second pass took a fresh channel: only the timer ends its wait
		pass(t, b, reply{result: Idle})
	})

	t.Run("WakeDoesNotCutABusyWaitShort", func(t *testing.T) {
		t.Parallel()
		b := setup(t, Config{BusyInterval: time.Minute, IdleInterval: time.Hour})
		start(t, b)
		b.wake <- struct{}{}
		pass(t, b, reply{result: Busy})
		require.Equal(t, time.Minute, nextWait(t, b))
		requireWaiting(t, b)
		pass(t, b, reply{result: Idle})
		require.Equal(t, time.Hour, nextWait(t, b))
		pass(t, b, reply{result: Idle}) // the wake-up left from before ends this wait
	})

	t.Run("WakeDoesNotCutABackoffShort", func(t *testing.T) {
		t.Parallel()
		b := setup(t, Config{IdleInterval: time.Hour})
		start(t, b)
		b.wake <- struct{}{}
		pass(t, b, reply{err: errors.New("database on fire")})
		nextWait(t, b)
		requireWaiting(t, b)
		pass(t, b, reply{result: Idle})
		require.Equal(t, time.Hour, nextWait(t, b))
		pass(t, b, reply{result: Idle}) // the wake-up left from before ends this wait
	})

	t.Run("BackoffGrowsWithJitterAndResets", func(t *testing.T) {
		t.Parallel()
		const initial, maxWait = time.Second, 10 * time.Second
		b := setup(t, Config{BackoffInitial: initial, BackoffMax: maxWait, IdleInterval: time.Hour})
		start(t, b)
		fail := func(t *testing.T, nominal time.Duration) {
			t.Helper()
			err := fmt.Errorf("failure expected to wait about %s", nominal)
			require.Equal(t, Outcome{Err: err, Result: Busy}, pass(t, b, reply{err: err, result: Busy}),
				"the result returned with an error is passed on, and ignored")
			f := <-b.failures
			require.Equal(t, err, f.err)
			d := nextWait(t, b)
			require.Equal(t, f.retryIn, d, "ErrorFunc is told the wait")
			low, high := max(initial, nominal/2), min(maxWait, nominal*3/2)
			require.True(t, d >= low && d <= high, "%s not within %s…%s", d, low, high)
			requireWaiting(t, b)
		}
		for _, nominal := range []time.Duration{initial, 2 * initial, 4 * initial, 8 * initial, maxWait, maxWait} {
			fail(t, nominal)
		}
		pass(t, b, reply{result: Busy})
		fail(t, initial)
		require.Empty(t, b.failures)
	})

	t.Run("EqualBoundsRetryAtAFixedInterval", func(t *testing.T) {
		t.Parallel()
		b := setup(t, Config{BackoffInitial: time.Nanosecond, BackoffMax: time.Nanosecond})
		start(t, b)
		for range 20 {
			pass(t, b, reply{err: errors.New("503")})
			require.Equal(t, time.Nanosecond, (<-b.failures).retryIn)
			require.Equal(t, time.Nanosecond, nextWait(t, b))
			requireWaiting(t, b)
		}
	})

	t.Run("FromStart", func(t *testing.T) {
		t.Parallel()
		b := setup(t, Config{FromStart: true, IdleInterval: time.Hour, BackoffInitial: time.Minute})
		start(t, b)
		pass(t, b, reply{result: Idle, advance: 20 * time.Minute})
		require.Equal(t, 40*time.Minute, nextWait(t, b), "the interval counts from the start of the pass")
		requireWaiting(t, b)
		pass(t, b, reply{result: Idle, advance: 2 * time.Hour})
		pass(t, b, reply{err: errors.New("503"), advance: 2 * time.Hour})
		require.Equal(t, time.Minute, nextWait(t, b),
			"a pass that overran is followed at once; a backoff counts from the end")
		require.Empty(t, b.waits)
	})

	t.Run("StopsWhileWaiting", func(t *testing.T) {
		t.Parallel()
		b := setup(t, Config{IdleInterval: time.Hour})
		start(t, b)
		pass(t, b, reply{result: Idle})
		nextWait(t, b)
		b.cancel()
		requireReturned(t, b)
	})

	t.Run("StopDuringAPassIsNotAFailure", func(t *testing.T) {
		t.Parallel()
		b := setup(t, Config{})
		start(t, b)
		<-b.passing
		b.cancel()
		require.Equal(t, Outcome{Err: context.Canceled}, b.loop.TestSignals.PassDone.WaitOrTimeout())
		requireReturned(t, b)
		require.Empty(t, b.failures, "ErrorFunc is not called")
		require.Empty(t, b.waits)
	})

	t.Run("StoppedBeforeTheFirstPass", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		l := New(Config{}, func(context.Context) (Result, error) { panic("no pass after the stop") })
		l.Run(ctx)
	})

	t.Run("RealTimer", func(t *testing.T) {
		t.Parallel()
		// Nanosecond intervals and the real timer: the loop makes progress and stops cleanly.
		var passes int
		l := New(Config{IdleInterval: time.Nanosecond, UntilIdle: true}, func(context.Context) (Result, error) {
			passes++
			if passes < 5 {
				return Skipped, nil
			}
			return Idle, nil
		})
		l.Run(context.Background())
		require.Equal(t, 5, passes)
	})
}

func TestResultString(t *testing.T) {
	t.Parallel()
	require.Equal(t, "idle", Idle.String())
	require.Equal(t, "busy", Busy.String())
	require.Equal(t, "skipped", Skipped.String())
	require.Equal(t, "Result(7)", Result(7).String())
}

// recordingTB records what a Signal reports to its test.
type recordingTB struct {
	mu     sync.Mutex
	errors []string
}

func (r *recordingTB) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errors = append(r.errors, fmt.Sprintf(format, args...))
}
func (r *recordingTB) Fatalf(format string, args ...any) { panic(fmt.Sprintf(format, args...)) }
func (r *recordingTB) Helper()                           {}

func TestSignal(t *testing.T) {
	t.Parallel()

	t.Run("ZeroValueDoesNothing", func(t *testing.T) {
		t.Parallel()
		var s Signal[int]
		s.Signal(1)
		require.Panics(t, func() { s.WaitOrTimeout() })
	})

	t.Run("KeepsValuesInOrder", func(t *testing.T) {
		t.Parallel()
		var s Signal[int]
		s.Init(t)
		copied := s
		s.Signal(1)
		copied.Signal(2)
		require.Equal(t, 1, s.WaitOrTimeout())
		require.Equal(t, 2, copied.WaitOrTimeout(), "a copy shares the values")
	})

	t.Run("FullBufferFailsTheTest", func(t *testing.T) {
		t.Parallel()
		tb := &recordingTB{}
		var s Signal[int]
		s.Init(tb)
		for i := range signalBuffer + 1 {
			s.Signal(i)
		}
		require.Len(t, tb.errors, 1)
		require.Contains(t, tb.errors[0], "buffer full")
		require.Equal(t, 0, s.WaitOrTimeout(), "the buffered values stay")
	})
}

func TestSleep(t *testing.T) {
	t.Parallel()
	require.NoError(t, Sleep(context.Background(), 0))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	require.ErrorIs(t, Sleep(ctx, time.Hour), context.Canceled, "a stop ends the wait at once")
}
