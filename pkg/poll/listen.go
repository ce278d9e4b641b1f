package poll

import (
	"context"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Waker broadcasts a wake-up to every loop whose Config.WakeFunc is its Channel: Wake closes the channel those loops
// hold and replaces it. The zero value is not ready; build one with NewWaker.
type Waker struct {
	mu sync.Mutex
	ch chan struct{}
}

// NewWaker returns a Waker ready to use.
func NewWaker() *Waker { return &Waker{ch: make(chan struct{})} }

// Channel returns the channel the next Wake closes. It is a Config.WakeFunc.
func (w *Waker) Channel() <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.ch
}

// Wake ends the wait of every loop waiting on the channel Channel returned.
func (w *Waker) Wake() {
	w.mu.Lock()
	defer w.mu.Unlock()
	close(w.ch)
	w.ch = make(chan struct{})
}

// ListenConfig configures Listen.
type ListenConfig struct {
	// Channel is the PostgreSQL NOTIFY channel listened on: a constant of the package that owns the contract
	// (eclrs.NotifyChannel, casedb.ChangedChannel).
	Channel string
	// ErrorFunc, when set, is called after listening failed, with the error and the wait before Listen tries
	// again, for the caller's log line. It is not called when ctx is done.
	ErrorFunc func(err error, retryIn time.Duration)
	// NotifiedFunc, when set, is called on each notification, before the wake-up, for the caller's debug line.
	NotifiedFunc func()
	// ListeningFunc, when set, is called each time LISTEN has taken effect, after the wake-up that follows it: tests
	// wait on it.
	ListeningFunc func()
}

// Listen wakes w on every notification on config.Channel until ctx is done. A notification is only a shortcut:
// the loops it wakes poll anyway, so when listening fails Listen reconnects with a jittered backoff from a second
// up to a minute, and polling carries on meanwhile. Each time LISTEN takes effect w is woken once, so that what was
// committed before (while no one listened) is found by the pass that follows. The listening connection leaves pool
// for good: a session stays in LISTEN mode until it is closed, so Listen closes it when it stops.
func Listen(ctx context.Context, pool *pgxpool.Pool, w *Waker, config ListenConfig) {
	// listenOnce returns only when listening failed, so every pass is a failure.
	New(Config{
		BackoffInitial: time.Second,
		BackoffMax:     time.Minute,
		ErrorFunc:      config.ErrorFunc,
	}, func(ctx context.Context) (Result, error) {
		return Idle, listenOnce(ctx, pool, w, config)
	}).Run(ctx)
}

func listenOnce(ctx context.Context, pool *pgxpool.Pool, w *Waker, config ListenConfig) error {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return err
	}
	pc := conn.Hijack()
	defer pc.Close(context.WithoutCancel(ctx)) //nolint:errcheck
	if _, err := pc.Exec(ctx, "LISTEN "+config.Channel); err != nil {
		return err
	}
	w.Wake()
	if config.ListeningFunc != nil {
		config.ListeningFunc()
	}
	for {
		if _, err := pc.WaitForNotification(ctx); err != nil {
			return err
		}
		if config.NotifiedFunc != nil {
			config.NotifiedFunc()
		}
		w.Wake()
	}
}
