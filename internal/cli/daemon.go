package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/google/uuid"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"go.uber.org/zap"

	"github.com/viaduct-nys/viaduct/engines/e1"
	"github.com/viaduct-nys/viaduct/engines/e2"
	"github.com/viaduct-nys/viaduct/engines/e3"
	"github.com/viaduct-nys/viaduct/engines/e4"
	"github.com/viaduct-nys/viaduct/engines/e5"
	"github.com/viaduct-nys/viaduct/migrations"
	"github.com/viaduct-nys/viaduct/pkg/countylist"
	"github.com/viaduct-nys/viaduct/pkg/daemons"
	"github.com/viaduct-nys/viaduct/pkg/jobqueue"
	"github.com/viaduct-nys/viaduct/pkg/pgpool"
	"github.com/viaduct-nys/viaduct/pkg/retention"
)

func runDaemon(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var c Config
	s := NewOptionSet("run", "[flags]", "Run the enabled engines until SIGINT/SIGTERM, or with --until-idle until none finds ready work.", getenv)
	addDatabase(s, &c)
	AddLogging(s, &c, "json")
	addRun(s, &c)
	addAWS(s, &c)
	addE1(s, &c)
	addCommCare(s, &c)
	AddE2(s, &c)
	addE3(s, &c)
	addE4(s, &c)
	addE5(s, &c)
	addWebhook(s, &c)
	addStatusRules(s, &c)
	addRetention(s, &c)
	if err := s.Parse(args, stdout); err != nil {
		return UsageError(err)
	}
	logger := NewLogger(&c, stderr)
	defer logger.Sync() //nolint:errcheck
	return Daemon(ctx, &c, logger, DaemonHooks{Getenv: getenv})
}

// DaemonHooks are what the daemon takes from its surroundings besides its config: the environment for the AWS SDK,
// or a ready AWS setup (the demo's stand-ins); a channel told the ops address once the engines run (tests); and one
// told the webhook's address once it is bound (the demo, tests), when there is one.
type DaemonHooks struct {
	Getenv  func(string) string
	AWS     *AWSSetup
	Ready   chan<- string
	Webhook chan<- string
}

// Daemon runs the enabled engines as one group: the first engine to fail stops the others, and a signal (ctx)
// stops them all, each finishing or rolling back what it has in flight within the grace period. Its shape is
// Prometheus's main: check what can be checked before anything starts (the schema, the ops port), build each
// enabled engine in its own block, then run them together.
func Daemon(ctx context.Context, c *Config, logger *zap.Logger, hooks DaemonHooks) error {
	logger.Info("starting", c.logFields()...)
	pool, err := OpenPool(ctx, c.DatabaseURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := checkSchema(ctx, c, pool, logger); err != nil {
		return err
	}

	// The ops listener is bound before any engine is built or started, so that a port already in use stops the
	// daemon before it has taken a message off the queue.
	var ln net.Listener
	if c.HTTPAddr != "" {
		if ln, err = net.Listen("tcp", c.HTTPAddr); err != nil {
			return fmt.Errorf("listening on %s (--http-addr): %w", c.HTTPAddr, err)
		}
		defer ln.Close() //nolint:errcheck // the server closes it once it serves; this covers a failed start
	}
	// So is the webhook's, on an address of its own: CommCare reaches it, and should reach nothing else.
	var webhookLn net.Listener
	if c.WebhookAddr != "" {
		if webhookLn, err = net.Listen("tcp", c.WebhookAddr); err != nil {
			return fmt.Errorf("listening on %s (--webhook-addr): %w", c.WebhookAddr, err)
		}
		defer webhookLn.Close() //nolint:errcheck // as the ops listener
		if hooks.Webhook != nil {
			hooks.Webhook <- webhookLn.Addr().String()
		}
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	var group runGroup

	// Engine 1: ECLRS extractor.
	var extractor *e1.Engine
	if c.Engines[1] {
		setup := hooks.AWS
		if setup == nil {
			if setup, err = loadAWS(ctx, c, hooks.Getenv, logger); err != nil {
				return err
			}
		}
		engine, err := e1.New(c.e1Config(), e1.Deps{
			Pool:            pool,
			AWSConfig:       setup.Config,
			SQSOptFns:       setup.SQSOptFns,
			S3:              setup.S3,
			Logger:          logger.Named("e1"),
			WatermillLogger: watermillLogger(logger.Named("watermill")),
			Metrics:         e1.NewMetrics(reg),
		})
		if err != nil {
			return err
		}
		extractor = engine
		group.addEngine("e1", engine.Run)
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
		group.addBackground(counties.Run)
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
		group.addEngine("e2", engine.Run)
	}

	// The job queue: one River client for the process, run by the daemon. Engine 3 inserts jobs with it, Engine 4's
	// worker works them and River UI reads through it. River needs its workers before the client is built, so Engine
	// 4's worker is registered here.
	riverLogger := slogFor(logger.Named("river"))
	riverConfig := &river.Config{Logger: riverLogger}
	// Engine 5's metrics, shared by its poller, its importer of forwarded cases and its webhook.
	var e5Metrics *e5.Metrics
	if c.Engines[5] {
		e5Metrics = e5.NewMetrics(reg)
	}
	var caseLoader *e4.Worker
	if c.Engines[4] {
		client, err := c.CommCareClient()
		if err != nil {
			return err
		}
		caseLoader, err = e4.NewWorker(c.e4Config(), e4.Deps{
			Pool:     pool,
			CommCare: client,
			Counties: counties,
			Logger:   logger.Named("e4"),
			Metrics:  e4.NewMetrics(reg),
		})
		if err != nil {
			return err
		}
		if err := caseLoader.Register(riverConfig); err != nil {
			return err
		}
	}
	// Engine 5's importer merges the cases CommCare forwards to the webhook (of this daemon or another), so every
	// daemon running Engine 5 works its queue.
	if c.Engines[5] {
		client, err := c.CommCareClient()
		if err != nil {
			return err
		}
		importer, err := e5.NewImporter(c.e5ImporterConfig(), e5.ImporterDeps{Pool: pool, CommCare: client,
			Counties: counties, Logger: logger.Named("e5"), Metrics: e5Metrics})
		if err != nil {
			return err
		}
		if err := importer.Register(riverConfig); err != nil {
			return err
		}
	}
	jobs, err := river.NewClient(riverpgxv5.New(pool), riverConfig)
	if err != nil {
		return fmt.Errorf("creating the River client: %w", err)
	}
	if len(riverConfig.Queues) > 0 {
		// The client works the registered queues while the engines run. Once they stop, jobs in flight have three
		// quarters of the grace period to finish, and the rest to record that they were cut off.
		group.addBackground(func(ctx context.Context) error {
			return jobqueue.Run(ctx, jobs, c.ShutdownGrace*3/4, logger.Named("river"))
		})
	}

	// Engine 3: CommCare enqueuer.
	if c.Engines[3] {
		engine, err := e3.New(c.e3Config(), e3.Deps{Pool: pool, Jobs: jobs, Logger: logger.Named("e3"), Metrics: e3.NewMetrics(reg)})
		if err != nil {
			return err
		}
		group.addEngine("e3", engine.Run)
	}

	// Engine 4: CommCare case loader.
	if c.Engines[4] {
		engine, err := e4.New(c.e4Config(), e4.Deps{Pool: pool, Worker: caseLoader, Logger: logger.Named("e4")})
		if err != nil {
			return err
		}
		group.addEngine("e4", engine.Run)
	}

	// Engine 5: CommCare extractor.
	if c.Engines[5] {
		client, err := c.CommCareClient()
		if err != nil {
			return err
		}
		engine, err := e5.New(c.e5Config(), e5.Deps{Pool: pool, CommCare: client, Counties: counties, Logger: logger.Named("e5"),
			Metrics: e5Metrics})
		if err != nil {
			return err
		}
		group.addEngine("e5", engine.Run)
	}

	// The webhook CommCare's data forwarding posts changed cases to: kept and queued for Engine 5's importer.
	if webhookLn != nil {
		webhook, err := e5.NewWebhook(e5.WebhookConfig{Password: c.WebhookPassword, OwnUserIDs: c.e5Config().OwnUserIDs},
			e5.WebhookDeps{Pool: pool, Jobs: jobs, Counties: counties, Logger: logger.Named("e5"), Metrics: e5Metrics})
		if err != nil {
			return err
		}
		srv := &http.Server{Handler: webhook, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
			WriteTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10}
		group.addBackground(func(ctx context.Context) error {
			logger.Info("serving CommCare's forwarded cases", zap.String("addr", webhookLn.Addr().String()),
				zap.String("path", e5.WebhookPath))
			return serveUntilDone(ctx, srv, webhookLn)
		})
	}

	// The ops server: status page, River UI, metrics, health and readiness.
	var srv *http.Server
	if ln != nil {
		uiCtx, stopUI := context.WithCancel(ctx)
		defer stopUI()
		ui, err := newRiverUI(uiCtx, jobs, riverLogger, c.RiverUIPassword)
		if err != nil {
			return err
		}
		srv = &http.Server{Handler: newOpsHandler(pool, reg, ui, c.statusThresholds()), ReadHeaderTimeout: 10 * time.Second}
	}

	// The retention purge, when --retention is set: once a day, in one daemon at a time (its advisory lock).
	if c.Retention > 0 {
		purger, err := retention.New(c.retentionConfig(), retention.Deps{Pool: pool, Logger: logger.Named("retention")})
		if err != nil {
			return err
		}
		group.addBackground(purger.Run)
	}

	// The heartbeat: which engines this daemon runs, and what only it knows (Engine 1 unable to read its queue), so
	// that the status page of any daemon can tell an engine nothing runs from one with nothing to do.
	heartbeat := &daemons.Heartbeat{ID: uuid.New(), Version: buildVersion(), Engines: c.engineNames(),
		Logger: logger.Named("daemons"), ProblemsFunc: func() daemons.Problems {
			problems := daemons.Problems{}
			if extractor != nil {
				if p := extractor.ReceiveProblem(); p != nil {
					problems["e1"] = p
				}
			}
			return problems
		}}
	group.addBackground(func(ctx context.Context) error { return heartbeat.Run(ctx, pool) })

	return group.run(ctx, runOptions{
		untilIdle: c.UntilIdle,
		grace:     c.ShutdownGrace,
		logger:    logger,
		server:    srv,
		listener:  ln,
		ready:     hooks.Ready,
	})
}

// serveUntilDone serves srv on ln until ctx is done, then shuts it down, letting requests in flight finish for a few
// seconds. It returns nil after a clean stop.
func serveUntilDone(ctx context.Context, srv *http.Server, ln net.Listener) error {
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return fmt.Errorf("serving on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		_ = srv.Close()
	}
	if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serving on %s: %w", ln.Addr(), err)
	}
	return nil
}

// checkSchema applies the migrations when --migrate asks for it, and refuses to run on a schema that is not
// current.
func checkSchema(ctx context.Context, c *Config, pool *pgxpool.Pool, logger *zap.Logger) error {
	if c.Migrate {
		if err := migrate(ctx, pool, logger); err != nil {
			return err
		}
	}
	pending, err := migrations.Pending(ctx, pool)
	if err != nil {
		return err
	}
	return notCurrent(pending, ", or pass --migrate")
}

// OpenPool connects to databaseURL, with pgpool's defaults, and checks that the server answers; errors name the
// database with its password masked.
func OpenPool(ctx context.Context, databaseURL string) (*pgxpool.Pool, error) {
	cfg, err := pgpool.ParseConfig(databaseURL)
	if err != nil {
		return nil, fmt.Errorf("parsing the database URL: %w", err)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connecting to %s: %w", RedactDSN(databaseURL), err)
	}
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := pool.Ping(pingCtx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connecting to %s: %w", RedactDSN(databaseURL), err)
	}
	return pool, nil
}
