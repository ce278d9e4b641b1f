// Package poll is the loop every polling component runs: Engine 2's workers, Engine 3, Engine 5, the county cache
// and the NOTIFY listeners that wake Engines 2 and 3 (Listen). A Loop calls a pass function over and over until its
// context is done, and decides how long to wait between passes:
//
//   - the first pass comes at once (after Config.FirstDelay, when set);
//   - after a pass that did work (Busy), Config.BusyInterval, so a backlog is drained quickly;
//   - after a pass that found nothing (Idle, or Skipped because another daemon held the work), Config.IdleInterval;
//   - the idle wait is cut short by a wake-up on Config.WakeFunc's channel: a Waker's, woken by Listen on the
//     NOTIFY the engine before sends at commit (Engine 1's for Engine 2, Engine 2's for Engine 3); the busy one is
//     not, so that it keeps the passes of a backlog apart;
//   - after a failed pass, a jittered exponential backoff (github.com/cenkalti/backoff/v4) from
//     Config.BackoffInitial up to Config.BackoffMax, reset by the next pass that succeeds.
//
// With Config.UntilIdle, Run returns after the first pass that reports Idle: the one-shot mode the daemon's
// until-idle runs and most engine tests use. Otherwise Run returns once its context is done, whatever the pass was
// doing; a pass that fails because of that is not reported as a failure. A stop is not an error, so Run returns
// none: an engine's Run returns nil after it.
//
// The loop logs nothing itself. A pass logs what it did (at Info only when it did work, as River's maintenance
// services do), and Config.ErrorFunc logs a failed pass with the wait before the next.
//
// # Example
//
//	loop := poll.New(poll.Config{IdleInterval: 5 * time.Second, UntilIdle: config.UntilIdle,
//		ErrorFunc: func(err error, retryIn time.Duration) {
//			logger.Error("enqueuing failed; retrying", zap.Error(err), zap.Duration("retry_in", retryIn))
//		},
//	}, func(ctx context.Context) (poll.Result, error) {
//		n, err := enqueue(ctx)
//		if err != nil || n == 0 {
//			return poll.Idle, err
//		}
//		logger.Info("enqueued", zap.Int("enqueued", n))
//		return poll.Busy, nil
//	})
//	loop.Run(ctx)
//	return nil
//
// # Test signals
//
// A Loop's TestSignals, modelled on River's testsignal package, let tests wait for a pass instead of sleeping or
// polling the database: the zero value signals nothing, and a test that calls TestSignals.Init can wait on
// TestSignals.PassDone. Engines expose them as their own TestSignals field.
package poll
