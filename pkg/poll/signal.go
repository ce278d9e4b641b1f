package poll

import "time"

// TestSignals are what a Loop signals as it runs, for tests to wait on. The zero value signals nothing.
type TestSignals struct {
	// PassDone is signalled after every pass with what it reported, once the loop has acted on it (ErrorFunc
	// called) and before the wait that follows.
	PassDone Signal[Outcome]
}

// Init readies every signal for tb. Only tests call it.
func (ts *TestSignals) Init(tb TB) {
	ts.PassDone.Init(tb)
}

// TB is the part of testing.TB a Signal uses, so that production code need not import package testing.
type TB interface {
	Errorf(format string, args ...any)
	Fatalf(format string, args ...any)
	Helper()
}

// signalBuffer is how many values a Signal holds before a test must take some: a test that lets more pile up is
// failed, as River's testsignal does.
const signalBuffer = 100

// signalTimeout is how long WaitOrTimeout waits before it fails the test: far longer than any pass a test runs.
const signalTimeout = 20 * time.Second

// Signal is a test signal, modelled on River's testsignal.TestSignal: production code calls Signal at a point tests
// want to wait for, which does nothing until a test has called Init; from then on each value is kept for the test to
// take with WaitOrTimeout. A Signal copied after Init shares its values with the original.
type Signal[T any] struct {
	c  chan T
	tb TB
}

// Init readies s for tb. Only tests call it.
func (s *Signal[T]) Init(tb TB) {
	s.c = make(chan T, signalBuffer)
	s.tb = tb
}

// Signal records v for a test, and does nothing when s is not initialised. It never blocks: a full buffer fails the
// test instead.
func (s *Signal[T]) Signal(v T) {
	if s.c == nil {
		return
	}
	select {
	case s.c <- v:
	default:
		s.tb.Errorf("poll: test signal buffer full (%d values): the test does not take the values it asked for",
			signalBuffer)
	}
}

// WaitOrTimeout returns the next value signalled, and fails the test if none comes within signalTimeout. It panics
// when s is not initialised.
func (s *Signal[T]) WaitOrTimeout() T {
	if s.c == nil {
		panic("poll: WaitOrTimeout on a test signal that was never initialised")
	}
	s.tb.Helper()
	t := time.NewTimer(signalTimeout)
	defer t.Stop()
	select {
	case v := <-s.c:
		return v
	case <-t.C:
		s.tb.Fatalf("poll: no test signal within %s", signalTimeout)
	}
	var zero T
	return zero
}
