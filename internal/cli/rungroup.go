package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"
)

// runGroup is what the daemon runs: the enabled engines, in pipeline order, and the background work that serves
// them while they run (the county list's refresh).
type runGroup struct {
	engines    []stage
	background []func(context.Context) error
}

// stage is an engine's Run under its name.
type stage struct {
	name string
	run  func(context.Context) error
}

// addEngine adds an engine; engines are added in pipeline order.
func (g *runGroup) addEngine(name string, run func(context.Context) error) {
	g.engines = append(g.engines, stage{name, run})
}

// addBackground adds work that runs while the engines do and is stopped when they have all stopped. It returns
// nil when stopped.
func (g *runGroup) addBackground(run func(context.Context) error) {
	g.background = append(g.background, run)
}

// runOptions say how the group runs.
type runOptions struct {
	// untilIdle runs the engines one after another, each until it finds no ready work, instead of all at once.
	untilIdle bool
	// grace is how long the engines have to stop after a signal.
	grace  time.Duration
	logger *zap.Logger
	// server, when not nil, serves on listener while the engines run.
	server   *http.Server
	listener net.Listener
	// ready, when not nil, is told the ops address ("" without one) once the engines have started.
	ready chan<- string
}

// run runs the group until every engine has stopped: on its own (until idle), on the first engine's failure, or on
// a signal (ctx), after which the engines have the grace period to finish or roll back what they have in flight.
func (g *runGroup) run(ctx context.Context, o runOptions) error {
	logger := o.logger
	// Engines run on a context of their own: a signal cancels it below, after logging, and the grace period starts
	// from there.
	engineCtx, cancelEngines := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelEngines()
	eg, gctx := errgroup.WithContext(engineCtx)

	runStage := func(st stage) error {
		err := st.run(gctx)
		switch {
		case err != nil:
			return fmt.Errorf("%s: %w", st.name, err)
		case !o.untilIdle && gctx.Err() == nil:
			return fmt.Errorf("%s stopped although nothing asked it to", st.name)
		}
		logger.Debug("engine stopped", zap.String("engine", st.name))
		return nil
	}
	if o.untilIdle {
		// In pipeline order, so that each engine finds what the one before it left.
		eg.Go(func() error {
			for _, st := range g.engines {
				if err := runStage(st); err != nil || gctx.Err() != nil {
					return err
				}
			}
			return nil
		})
	} else {
		for _, st := range g.engines {
			eg.Go(func() error { return runStage(st) })
		}
	}
	backgroundCtx, stopBackground := context.WithCancel(gctx)
	defer stopBackground()
	var background errgroup.Group
	for _, run := range g.background {
		background.Go(func() error { return run(backgroundCtx) })
	}

	var httpDone chan error
	if o.server != nil {
		httpDone = make(chan error, 1)
		go func() { httpDone <- o.server.Serve(o.listener) }()
		addr := o.listener.Addr().String()
		logger.Info("serving the status page, River UI, metrics, health and readiness", zap.String("addr", addr),
			zap.String("status_url", "http://"+addr+"/status"))
		if o.ready != nil {
			o.ready <- addr
		}
	} else if o.ready != nil {
		o.ready <- ""
	}

	engineErr := make(chan error, 1)
	go func() {
		err := eg.Wait()
		stopBackground()
		err = errors.Join(err, background.Wait())
		engineErr <- err
	}()
	var err error
	select {
	case err = <-engineErr:
		if err == nil {
			logger.Info("all engines idle; exiting")
		}
	case <-ctx.Done():
		logger.Info("signal received; stopping engines", zap.Duration("grace", o.grace))
		cancelEngines()
		select {
		case err = <-engineErr:
		case <-time.After(o.grace):
			err = fmt.Errorf("engines did not stop within the %s grace period", o.grace)
		}
	}

	if o.server != nil {
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = o.server.Shutdown(shutdownCtx)
		cancel()
		if serveErr := <-httpDone; serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
			err = errors.Join(err, fmt.Errorf("http server: %w", serveErr))
		}
	}
	if err != nil {
		logger.Error("stopped with an error", zap.Error(err))
		return err
	}
	logger.Info("stopped")
	return nil
}
