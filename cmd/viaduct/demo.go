package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"

	"github.com/viaduct-nys/viaduct/pkg/awstest"
	"github.com/viaduct-nys/viaduct/pkg/commcare"
	"github.com/viaduct-nys/viaduct/pkg/commcare/commcaretest"
	"github.com/viaduct-nys/viaduct/pkg/eclrs/eclrsgen"
)

// runDemo is `make demo`: the daemon's real path on local stand-ins. It starts S3 and SQS stand-ins in this process
// (or uses AWS_ENDPOINT_URL when set) and uses the CommCare stand-in at --commcare-url (`make demo` starts
// `viaduct fake-commcare`; without the flag one is started in this process). It generates two overlapping ECLRS
// exports, uploads them and announces them as S3 would, runs Engines 1 to 4 in turn until each is idle, prints the
// status table, and asks CommCare how many cases arrived in each county's domain.
func runDemo(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var c config
	var rows int
	s := newOptionSet("demo", "[flags]",
		"Run Engines 1 to 4 end to end on local stand-ins for S3, SQS and CommCare with generated exports, then print the status table and the cases in each CommCare domain.", getenv)
	addDatabase(s, &c)
	addE2(s, &c)
	s.String(&c.CommCareURL, "commcare-url", "COMMCARE_BASE_URL", "",
		"The CommCare stand-in to use (`viaduct fake-commcare`); empty starts one in this process.")
	s.String(&c.CommCareCredentials, "commcare-api-key", "COMMCARE_API_KEY_CREDENTIALS", commcaretest.DefaultCredentials,
		"The stand-in's <username>:<api key>.")
	s.String(&c.CommCareRootDomain, "commcare-root-domain", "COMMCARE_ROOT_DOMAIN", commcaretest.DefaultRootDomain,
		"The stand-in's project space holding the county list.")
	addLogging(s, &c, "console")
	s.String(&c.HTTPAddr, "http-addr", "VIADUCT_HTTP_ADDR", "127.0.0.1:8080", "Address for /healthz, /readyz and /metrics while the demo runs; empty disables.")
	s.Int(&rows, "rows", "", 20_000, "Rows in each generated export.")
	s.check(func() error {
		if rows <= 0 {
			return fmt.Errorf("--rows %d must be positive", rows)
		}
		return nil
	})
	if err := s.parse(args, stdout); err != nil {
		return usageError(err)
	}
	logger := newLogger(&c, stderr)
	defer logger.Sync() //nolint:errcheck

	if err := ensureDatabase(ctx, c.DatabaseURL, logger); err != nil {
		return err
	}
	env, stop, err := awstest.Start(ctx)
	if err != nil {
		return fmt.Errorf("starting the S3/SQS stand-ins: %w", err)
	}
	defer stop()
	names := awstest.DefaultNames()
	res, err := env.CreateResources(ctx, names, nil)
	if err != nil {
		return fmt.Errorf("creating the bucket and queue: %w", err)
	}
	logger.Info("S3 and SQS stand-ins ready", zap.String("emulator", env.Emulator), zap.String("endpoint", env.Endpoint),
		zap.String("bucket", names.Bucket), zap.String("queue_url", res.QueueURL))

	// Two exports half an hour apart, as ECLRS sends them: the second repeats 95% of the first.
	start := time.Now().UTC().Add(-30 * time.Minute).Truncate(time.Minute)
	for i, first := range []int{0, rows / 20} {
		at := start.Add(time.Duration(i) * 30 * time.Minute)
		key := "COVID19_ECLRS_Export_positive_" + at.Format("2006-01-02 1504") + ".txt"
		pr, pw := io.Pipe()
		go func() { pw.CloseWithError(eclrsgen.Write(pw, eclrsgen.Options{Rows: rows, FirstRow: first, Seed: 1})) }()
		if err := env.Upload(ctx, names.Bucket, key, pr); err != nil {
			return fmt.Errorf("uploading %s: %w", key, err)
		}
		if err := env.Announce(ctx, res, names.Bucket, key, awstest.AnnounceOpts{EventTime: at}); err != nil {
			return fmt.Errorf("announcing %s: %w", key, err)
		}
		logger.Info("export uploaded and announced", zap.String("key", key), zap.Int("rows", rows))
	}

	// CommCare: the stand-in serves New York's county list, the case API and the form receiver over HTTP, so the
	// daemon talks to it as to CommCare HQ.
	if c.CommCareURL == "" {
		commcareLn, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return fmt.Errorf("starting the CommCare stand-in: %w", err)
		}
		fake := commcaretest.NewServer(commcaretest.Options{})
		fakeCtx, stopFake := context.WithCancel(ctx)
		fakeDone := make(chan error, 1)
		go func() { fakeDone <- fake.Serve(fakeCtx, commcareLn) }()
		defer func() {
			stopFake()
			<-fakeDone
		}()
		c.CommCareURL = "http://" + commcareLn.Addr().String()
		c.CommCareCredentials = fake.Credentials()
		c.CommCareRootDomain = fake.RootDomain()
	}
	c.CountyRefresh = 30 * time.Minute
	c.CommCareTimeout = 30 * time.Second
	logger.Info("CommCare stand-in", zap.String("url", c.CommCareURL))

	c.Engines[1] = true
	c.Engines[2] = true
	c.Engines[3] = true
	c.Engines[4] = true
	c.E3BatchSize, c.E3BusyPollInterval, c.E3IdlePollInterval = 500, time.Millisecond, 100*time.Millisecond
	c.CommCareUsername, c.CommCareUserID, c.CommCarePosting = "viaduct-demo", "viaduct-demo-user-id", true
	c.E4Concurrency, c.E4JobTimeout, c.E4RetryBase, c.E4RetryCap = 50, time.Minute, time.Second, time.Minute
	c.UntilIdle = true
	c.Migrate = true
	c.SQSQueueURL = res.QueueURL
	c.SQSWaitTime = time.Second
	c.VisibilityTimeout = 5 * time.Minute
	c.ShutdownGrace = 30 * time.Second
	c.BatchRows = 10_000
	c.S3PathStyle = "true"
	if err := c.validateEngines(); err != nil {
		return err
	}
	hooks := daemonHooks{getenv: getenv, aws: &awsSetup{config: env.AWSConfig, s3: env.S3}}
	if err := daemon(ctx, &c, logger, hooks); err != nil {
		return err
	}

	fmt.Fprintln(stdout)
	if err := writeStatus(ctx, c.DatabaseURL, stdout, false); err != nil {
		return err
	}
	fmt.Fprintln(stdout)
	if err := writeCommCareCases(ctx, &c, stdout); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "\nThe database is %s; `go run ./cmd/viaduct status` shows these counts again.\n", redactURL(c.DatabaseURL))
	return nil
}

// writeCommCareCases asks CommCare, through its case API, how many patient and lab result cases each county's
// domain holds, and prints the domains that have any.
func writeCommCareCases(ctx context.Context, c *config, w io.Writer) error {
	client, err := c.commCareClient()
	if err != nil {
		return err
	}
	counties, err := client.CountyList(ctx)
	if err != nil {
		return err
	}
	count := func(domain, caseType string) (int, error) {
		page, err := client.ListCases(ctx, domain, commcare.CaseQuery{Type: caseType, Limit: 1})
		if err != nil {
			return 0, err
		}
		return page.Meta.TotalCount, nil
	}
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "COMMCARE DOMAIN\tCOUNTY\tPATIENT CASES\tLAB RESULTS\t")
	var patients, labs int
	for _, county := range counties.Participating() {
		p, err := count(county.Domain, "patient")
		if err != nil {
			return err
		}
		l, err := count(county.Domain, "lab_result")
		if err != nil {
			return err
		}
		if p+l == 0 {
			continue
		}
		patients, labs = patients+p, labs+l
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t\n", county.Domain, county.Display, p, l)
	}
	fmt.Fprintf(tw, "all domains\t\t%d\t%d\t\n", patients, labs)
	return tw.Flush()
}

// ensureDatabase creates the database named in databaseURL when the server does not have it yet, so the demo needs
// nothing but a running server.
func ensureDatabase(ctx context.Context, databaseURL string, logger *zap.Logger) error {
	u, err := url.Parse(databaseURL)
	if err != nil {
		return fmt.Errorf("parsing the database URL: %w", err)
	}
	name := strings.TrimPrefix(u.Path, "/")
	if name == "" || name == "postgres" {
		return nil
	}
	admin := *u
	admin.Path = "/postgres"
	conn, err := pgx.Connect(ctx, admin.String())
	if err != nil {
		return fmt.Errorf("connecting to %s (is PostgreSQL running? `make db` starts it): %w", admin.Redacted(), err)
	}
	defer conn.Close(ctx)
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, name).Scan(&exists); err != nil {
		return err
	}
	if exists {
		return nil
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		var already interface{ SQLState() string }
		if errors.As(err, &already) && already.SQLState() == "42P04" {
			return nil // created meanwhile by another process
		}
		return fmt.Errorf("creating database %s: %w", name, err)
	}
	logger.Info("created database", zap.String("database", name))
	return nil
}
