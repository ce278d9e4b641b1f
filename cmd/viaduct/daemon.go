package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/viaduct-nys/viaduct/engines/e1"
	"github.com/viaduct-nys/viaduct/engines/e2"
	"github.com/viaduct-nys/viaduct/engines/e3"
	"github.com/viaduct-nys/viaduct/engines/e4"
	"github.com/viaduct-nys/viaduct/engines/e5"
	"github.com/viaduct-nys/viaduct/migrations"
	"github.com/viaduct-nys/viaduct/pkg/countylist"
)

func runDaemon(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var c config
	s := newOptionSet("run", "[flags]", "Run the enabled engines until SIGINT/SIGTERM, or with --until-idle until none finds ready work.", getenv)
	addDatabase(s, &c)
	addLogging(s, &c, "json")
	addRun(s, &c)
	addAWS(s, &c)
	addE1(s, &c)
	addCommCare(s, &c)
	addE2(s, &c)
	addE3(s, &c)
	addE4(s, &c)
	addE5(s, &c)
	if err := s.parse(args, stdout); err != nil {
		return usageError(err)
	}
	logger := newLogger(&c, stderr)
	defer logger.Sync() //nolint:errcheck
	return daemon(ctx, &c, logger, daemonHooks{getenv: getenv})
}

// daemonHooks are what the daemon takes from its surroundings besides its config: the environment for the AWS SDK,
// or a ready AWS setup (the demo's stand-ins); and a channel told the ops address once the engines run (tests).
type daemonHooks struct {
	getenv func(string) string
	aws    *awsSetup
	ready  chan<- string
}

// daemon runs the enabled engines as one group: the first engine to fail stops the others, and a signal (ctx)
// stops them all, each finishing or rolling back what it has in flight within the grace period. ready, when not
// nil, is told the ops address once the engines have started.
func daemon(ctx context.Context, c *config, logger *zap.Logger, hooks daemonHooks) error {
	ready := hooks.ready
	logger.Info("starting", c.logFields()...)
	pool, err := openPool(ctx, c.DatabaseURL)
	if err != nil {
		return err
	}
	defer pool.Close()

	if c.Migrate {
		if err := migrate(ctx, pool, logger); err != nil {
			return err
		}
	}
	pending, err := migrations.Pending(ctx, pool)
	if err != nil {
		return err
	}
	if len(pending) > 0 {
		return fmt.Errorf("the database schema is not current (%s): run `viaduct migrate` first, or pass --migrate",
			strings.Join(pending, "; "))
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	// Engines run on a context of their own: a signal cancels it below, after logging, and the grace period starts
	// from there.
	engineCtx, cancelEngines := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelEngines()
	g, gctx := errgroup.WithContext(engineCtx)

	var stages []stage

	// Engine 1: ECLRS extractor.
	if c.Engines[1] {
		setup := hooks.aws
		if setup == nil {
			if setup, err = loadAWS(ctx, c, hooks.getenv, logger); err != nil {
				return err
			}
		}
		engine, err := e1.New(c.e1Config(), e1.Deps{
			Pool:            pool,
			AWSConfig:       setup.config,
			SQSOptFns:       setup.sqsOptFns,
			S3:              setup.s3,
			Logger:          logger.Named("e1"),
			WatermillLogger: watermillLogger(logger.Named("watermill")),
			Metrics:         e1.NewMetrics(reg),
		})
		if err != nil {
			return err
		}
		stages = append(stages, stage{"e1", engine.Run})
	}

	// The county list, for the engines that route by county: loaded before they start, refreshed while they run.
	var counties *countylist.Cache
	if c.needsCounties() {
		source, err := c.countySource()
		if err != nil {
			return err
		}
		counties, err = countylist.NewCache(countylist.CacheConfig{Refresh: c.CountyRefresh},
			countylist.CacheDeps{DB: pool, Logger: logger.Named("counties"), Source: source})
		if err != nil {
			return err
		}
		if err := counties.Load(ctx); err != nil {
			return err
		}
	}

	// Engine 2: ECLRS → CommCare transformer.
	if c.Engines[2] {
		engine, err := e2.New(c.e2Config(), e2.Deps{
			Pool:     pool,
			Counties: counties,
			Logger:   logger.Named("e2"),
			Metrics:  e2.NewMetrics(reg),
		})
		if err != nil {
			return err
		}
		stages = append(stages, stage{"e2", engine.Run})
	}

	// One River client for the process. With Engine 4 it is Engine 4's, which works the commcare queue; without,
	// it only inserts jobs (Engine 3) and answers River UI.
	var jobs *river.Client[pgx.Tx]
	var e4Stage stage
	riverLogger := slogFor(logger.Named("river"))

	// Engine 4: CommCare case loader.
	if c.Engines[4] {
		client, err := c.commCareClient()
		if err != nil {
			return err
		}
		engine, err := e4.New(c.e4Config(), e4.Deps{
			Pool:     pool,
			CommCare: client,
			Counties: counties,
			Logger:   logger.Named("e4"),
			Metrics:  e4.NewMetrics(reg),
		})
		if err != nil {
			return err
		}
		jobs = engine.Client()
		e4Stage = stage{"e4", engine.Run} // after Engine 3's, in pipeline order
	}
	if jobs == nil {
		if jobs, err = river.NewClient(riverpgxv5.New(pool), &river.Config{Logger: riverLogger}); err != nil {
			return fmt.Errorf("creating the River client: %w", err)
		}
	}

	// Engine 3: CommCare enqueuer.
	if c.Engines[3] {
		engine, err := e3.New(c.e3Config(), e3.Deps{Pool: pool, Jobs: jobs, Logger: logger.Named("e3")})
		if err != nil {
			return err
		}
		stages = append(stages, stage{"e3", engine.Run})
	}
	if e4Stage.run != nil {
		stages = append(stages, e4Stage)
	}

	// Engine 5: CommCare extractor.
	if c.Engines[5] {
		client, err := c.commCareClient()
		if err != nil {
			return err
		}
		engine, err := e5.New(c.e5Config(), e5.Deps{Pool: pool, CommCare: client, Counties: counties, Logger: logger.Named("e5"),
			Metrics: e5.NewMetrics(reg)})
		if err != nil {
			return err
		}
		stages = append(stages, stage{"e5", engine.Run})
	}

	runStage := func(st stage) error {
		err := st.run(gctx)
		switch {
		case err != nil:
			return fmt.Errorf("%s: %w", st.name, err)
		case !c.UntilIdle && gctx.Err() == nil:
			return fmt.Errorf("%s stopped although nothing asked it to", st.name)
		}
		logger.Debug("engine stopped", zap.String("engine", st.name))
		return nil
	}
	if c.UntilIdle {
		// In pipeline order, so that each engine finds what the one before it left.
		g.Go(func() error {
			for _, st := range stages {
				if err := runStage(st); err != nil || gctx.Err() != nil {
					return err
				}
			}
			return nil
		})
	} else {
		for _, st := range stages {
			g.Go(func() error { return runStage(st) })
		}
	}
	backgroundCtx, stopBackground := context.WithCancel(gctx)
	defer stopBackground()
	backgroundDone := make(chan struct{})
	go func() {
		defer close(backgroundDone)
		if counties != nil {
			_ = counties.Run(backgroundCtx) // returns nil when stopped
		}
	}()

	var httpDone chan error
	var srv *http.Server
	if c.HTTPAddr != "" {
		ln, err := net.Listen("tcp", c.HTTPAddr)
		if err != nil {
			cancelEngines()
			_ = g.Wait()
			stopBackground()
			<-backgroundDone
			return fmt.Errorf("listening on %s (--http-addr): %w", c.HTTPAddr, err)
		}
		ui, err := newRiverUI(backgroundCtx, jobs, riverLogger, c.RiverUIPassword)
		if err != nil {
			cancelEngines()
			_ = g.Wait()
			stopBackground()
			<-backgroundDone
			return err
		}
		srv = &http.Server{Handler: newOpsHandler(pool, reg, ui), ReadHeaderTimeout: 10 * time.Second}
		httpDone = make(chan error, 1)
		go func() { httpDone <- srv.Serve(ln) }()
		logger.Info("serving the status page, River UI, metrics, health and readiness", zap.String("addr", ln.Addr().String()),
			zap.String("status_url", "http://"+ln.Addr().String()+"/status"))
		if ready != nil {
			ready <- ln.Addr().String()
		}
	} else if ready != nil {
		ready <- ""
	}

	engineErr := make(chan error, 1)
	go func() {
		err := g.Wait()
		stopBackground()
		<-backgroundDone
		engineErr <- err
	}()
	select {
	case err = <-engineErr:
		if err == nil {
			logger.Info("all engines idle; exiting")
		}
	case <-ctx.Done():
		logger.Info("signal received; stopping engines", zap.Duration("grace", c.ShutdownGrace))
		cancelEngines()
		select {
		case err = <-engineErr:
		case <-time.After(c.ShutdownGrace):
			err = fmt.Errorf("engines did not stop within the %s grace period", c.ShutdownGrace)
		}
	}

	if srv != nil {
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = srv.Shutdown(shutdownCtx)
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

// stage is an engine's Run under its name.
type stage struct {
	name string
	run  func(context.Context) error
}

func openPool(ctx context.Context, databaseURL string) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		return nil, fmt.Errorf("parsing the database URL: %w", err)
	}
	// Viaduct's queries are many and short. PostgreSQL compiles a query with JIT when its estimated cost is high,
	// and rules written for every case (a branch a pass never runs, a table not analyzed yet) are estimated high:
	// the compile then costs a third of a second where the query takes milliseconds.
	if _, set := cfg.ConnConfig.RuntimeParams["jit"]; !set {
		cfg.ConnConfig.RuntimeParams["jit"] = "off"
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connecting to %s: %w", redactDSN(databaseURL), err)
	}
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := pool.Ping(pingCtx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connecting to %s: %w", redactDSN(databaseURL), err)
	}
	return pool, nil
}
