package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"

	"github.com/viaduct-nys/viaduct/engines/e5"
	"github.com/viaduct-nys/viaduct/internal/cli"
	"github.com/viaduct-nys/viaduct/pkg/awstest"
	"github.com/viaduct-nys/viaduct/pkg/casedb"
	"github.com/viaduct-nys/viaduct/pkg/commcare"
	"github.com/viaduct-nys/viaduct/pkg/commcare/commcaretest"
	"github.com/viaduct-nys/viaduct/pkg/eclrs"
	"github.com/viaduct-nys/viaduct/pkg/eclrs/eclrsgen"
	"github.com/viaduct-nys/viaduct/pkg/status/report"
)

// runDemo is `make demo`: the whole story on the daemon's real path, with local stand-ins. It starts S3 and SQS
// stand-ins in this process (or uses AWS_ENDPOINT_URL when set) and uses the CommCare stand-in at --commcare-url
// (`make demo` starts `viaduct fake-commcare`; without the flag one is started in this process). It generates two
// overlapping ECLRS exports, uploads them and announces them as S3 would, and runs all five engines in one cli.Daemon,
// printing the /status URL. Once the exports have reached CommCare, a contact tracer edits a case there; once
// Engine 5 has merged the edit back, the cli.Daemon stops and the demo prints the status table and how many cases
// arrived in each county's domain.
func runDemo(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var c cli.Config
	var rows int
	s := cli.NewOptionSet("demo", "[flags]",
		"Run all five engines on local stand-ins for S3, SQS and CommCare: generated exports flow to CommCare, a contact tracer's edit flows back; then print the status table and the cases in each CommCare domain.", getenv)
	// Its own variable, so a DATABASE_URL in the environment (perhaps a real one) is never the demo's.
	cli.AddDatabaseAs(s, &c, "VIADUCT_DEMO_DATABASE_URL", demoDatabaseURL,
		"PostgreSQL database for the demo: dropped and created afresh on every run when it is named "+demoDatabase+
			", else created when missing and required to hold no imports.")
	cli.AddE2(s, &c)
	s.String(&c.CommCareURL, "commcare-url", "COMMCARE_BASE_URL", "",
		"The CommCare stand-in to use (`viaduct fake-commcare`); empty starts one in this process.")
	s.String(&c.CommCareCredentials, "commcare-api-key", "COMMCARE_API_KEY_CREDENTIALS", commcaretest.DefaultCredentials,
		"The stand-in's <username>:<api key>.")
	s.String(&c.CommCareRootDomain, "commcare-root-domain", "COMMCARE_ROOT_DOMAIN", commcaretest.DefaultRootDomain,
		"The stand-in's project space holding the county list.")
	cli.AddLogging(s, &c, "console")
	s.String(&c.HTTPAddr, "http-addr", "VIADUCT_HTTP_ADDR", "127.0.0.1:8080", "Address for /status, /riverui/, /metrics, /healthz and /readyz while the demo runs; empty disables.")
	s.String(&c.WebhookAddr, "webhook-addr", "VIADUCT_WEBHOOK_ADDR", demoWebhookAddr,
		"Address of the webhook the CommCare stand-in forwards changed cases to, so a tracer's edit arrives in about a "+
			"second; empty leaves it to polling. An external stand-in (--commcare-url) must forward there itself "+
			"(`viaduct fake-commcare --forward-to`), with the password in VIADUCT_WEBHOOK_PASSWORD.")
	s.Int(&rows, "rows", "", 20_000, "Rows in each generated export.")
	s.Check(func() error {
		if rows <= 0 {
			return fmt.Errorf("--rows %d must be positive", rows)
		}
		return nil
	})
	if err := s.Parse(args, stdout); err != nil {
		return cli.UsageError(err)
	}
	logger := cli.NewLogger(&c, stderr)
	defer logger.Sync() //nolint:errcheck
	if c.WebhookAddr != "" {
		if c.WebhookPassword = getenv("VIADUCT_WEBHOOK_PASSWORD"); c.WebhookPassword == "" {
			c.WebhookPassword = rand.Text() // the in-process stand-in is told it; an external one cannot know it
		}
	}

	if err := prepareDemoDatabase(ctx, c.DatabaseURL, logger); err != nil {
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
		if err := uploadGenerated(ctx, env.Upload, names.Bucket, key, eclrsgen.Options{Rows: rows, FirstRow: first, Seed: 1}); err != nil {
			return err
		}
		if err := env.Announce(ctx, res, names.Bucket, key, awstest.AnnounceOpts{EventTime: at}); err != nil {
			return fmt.Errorf("announcing %s: %w", key, err)
		}
		logger.Info("export uploaded and announced", zap.String("key", key), zap.Int("rows", rows))
	}

	// CommCare: the stand-in serves New York's county list, the case API and the form receiver over HTTP, so the
	// cli.Daemon talks to it as to CommCare HQ.
	var fake *commcaretest.Server // the in-process stand-in, when there is one
	if c.CommCareURL == "" {
		commcareLn, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return fmt.Errorf("starting the CommCare stand-in: %w", err)
		}
		fake = commcaretest.NewServer(commcaretest.Options{})
		fakeCtx, stopFake := context.WithCancel(ctx)
		fakeDone := make(chan error, 1)
		go func() { fakeDone <- fake.Serve(fakeCtx, commcareLn) }()
		defer func() {
			stopFake()
			if err := <-fakeDone; err != nil {
				logger.Warn("the fake CommCare stopped with an error", zap.Error(err))
			}
		}()
		c.CommCareURL = "http://" + commcareLn.Addr().String()
		c.CommCareCredentials = fake.Credentials()
		c.CommCareRootDomain = fake.RootDomain()
	}
	c.CountyRefresh = 30 * time.Minute
	c.CommCareTimeout = 30 * time.Second
	logger.Info("CommCare stand-in", zap.String("url", c.CommCareURL))

	for n := 1; n <= 5; n++ {
		c.Engines[n] = true
	}
	c.E3BatchSize, c.E3BusyPollInterval, c.E3IdlePollInterval = 500, time.Millisecond, 100*time.Millisecond
	c.CommCareUsername, c.CommCareUserID, c.CommCarePosting = "viaduct-demo", "viaduct-demo-user-id", true
	c.E4Concurrency, c.E4JobTimeout, c.E4RetryBase, c.E4RetryCap = 50, time.Minute, time.Second, time.Minute
	// A round every few seconds instead of every five minutes, so the tracer's edit comes back while you watch; with
	// forwarding on, polling is the safety net and can wait longer.
	c.E5Interval, c.E5Overlap, c.E5FirstWindow, c.E5PageSize, c.E5Domains = demoE5Interval, 2*time.Minute, 48*time.Hour, 100, 4
	if c.WebhookAddr != "" {
		c.E5Interval = demoE5IntervalForwarding
	}
	c.Migrate = true
	c.SQSQueueURL = res.QueueURL
	c.SQSWaitTime = time.Second
	c.VisibilityTimeout = 5 * time.Minute
	c.ShutdownGrace = 30 * time.Second
	c.BatchRows = 10_000
	c.S3PathStyle = "true"
	if err := c.ValidateEngines(); err != nil {
		return err
	}

	// The cli.Daemon runs as `viaduct run --e1 … --e5` would, until the story is told.
	ready, webhookReady := make(chan string, 1), make(chan string, 1)
	daemonCtx, stopDaemon := context.WithCancel(ctx)
	defer stopDaemon()
	done := make(chan error, 1)
	hooks := cli.DaemonHooks{Getenv: getenv, AWS: &cli.AWSSetup{Config: env.AWSConfig, S3: env.S3}, Ready: ready,
		Webhook: webhookReady}
	go func() { done <- cli.Daemon(daemonCtx, &c, logger, hooks) }()
	select {
	case addr := <-ready:
		if addr != "" {
			fmt.Fprintf(stdout, "\nAll five engines are running. Watch them at http://%s/status (River UI at /riverui/, metrics at /metrics).\n\n", addr)
		}
	case err := <-done:
		return fmt.Errorf("the cli.Daemon stopped before it started: %w", err)
	}
	if c.WebhookAddr != "" {
		// Bound before the engines started, so it is waiting.
		webhookURL := "http://" + <-webhookReady + e5.WebhookPath
		if fake != nil {
			forwarder, err := fake.ForwardTo(commcaretest.ForwardOptions{URL: webhookURL, Password: c.WebhookPassword})
			if err != nil {
				return err
			}
			defer forwarder.Close()
		}
		fmt.Fprintf(stdout, "CommCare forwards changed cases to %s; Engine 5 also polls every %s.\n\n", webhookURL,
			c.E5Interval)
	}
	pool, err := cli.OpenPool(ctx, c.DatabaseURL)
	if err != nil {
		return err
	}
	defer pool.Close()

	// 1. The exports flow through Engines 1 to 4 into CommCare.
	settled := func(_ context.Context, r *report.Status) (bool, error) {
		return r.E1.Files[eclrs.FileImported]+r.E1.Files[eclrs.FileSkipped]+r.E1.Files[eclrs.FileFailed] >= 2 &&
			r.E2.Waiting == 0 && r.E3.Waiting == 0 && r.E4.Jobs["completed"] > 0 &&
			r.E4.Queued()+r.E4.Jobs["running"] == 0, nil
	}
	if err := demoWait(ctx, pool, done, stdout, "the exports to reach CommCare", settled); err != nil {
		return err
	}

	// 2. A contact tracer edits one of the cases in CommCare; CommCare forwards the change to the webhook, and Engine 5
	// merges it back (or its next round does).
	editedAt := time.Now()
	edited, err := demoTracerEdit(ctx, &c, pool)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "\nA contact tracer set interview_status=completed on case %s in %s.\n",
		edited.caseID, edited.domain)
	back := func(ctx context.Context, _ *report.Status) (bool, error) {
		var status string
		err := pool.QueryRow(ctx, `SELECT coalesce(data->>'interview_status', '') FROM index_cases WHERE case_id = $1`,
			edited.caseID).Scan(&status)
		return status == demoInterviewStatus, err
	}
	if err := demoWait(ctx, pool, done, stdout, "Engine 5 to bring the tracer's edit back", back); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Index case %d now reads interview_status=%s, recorded as updated_from_commcare.\n", edited.id, demoInterviewStatus)
	if err := demoWhichPath(ctx, pool, stdout, edited.caseID, editedAt); err != nil {
		return err
	}

	stopDaemon()
	if err := <-done; err != nil {
		return err
	}
	fmt.Fprintln(stdout)
	if err := cli.WriteStatus(ctx, c.DatabaseURL, stdout, false); err != nil {
		return err
	}
	fmt.Fprintln(stdout)
	if err := writeCommCareCases(ctx, &c, stdout); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "\nThe database is %[1]s; `go run ./cmd/viaduct status --database-url '%[1]s'` shows these counts again.\n",
		cli.RedactDSN(c.DatabaseURL))
	return nil
}

const (
	// demoE5Interval is how often the demo's Engine 5 polls CommCare; demoE5IntervalForwarding, how often it does
	// when CommCare forwards changes, so that the demo shows which path brought the tracer's edit.
	demoE5Interval           = 3 * time.Second
	demoE5IntervalForwarding = time.Minute
	// demoWebhookAddr is where the demo's webhook listens: `make demo` tells the CommCare stand-in to forward there.
	demoWebhookAddr = "127.0.0.1:8081"
	// demoInterviewStatus is what the demo's contact tracer records on a case.
	demoInterviewStatus = "completed"
	// demoTracerID is the demo's contact tracer: a CommCare user other than Viaduct's, whose edits Engine 5 takes.
	demoTracerID = "demo-tracer-user-id"
)

// demoWait waits until cond says the demo can go on, printing where the pipeline stands every few seconds. It
// fails if the cli.Daemon stops or ten minutes pass.
func demoWait(ctx context.Context, pool *pgxpool.Pool, daemonDone <-chan error, w io.Writer, what string,
	cond func(context.Context, *report.Status) (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	var printed time.Time
	for {
		r, err := cli.ReadStatus(ctx, pool)
		if err != nil {
			return err
		}
		ok, err := cond(ctx, r)
		if err != nil {
			return err
		}
		if ok {
			fmt.Fprintf(w, "done waiting for %s.\n", what)
			return nil
		}
		if time.Since(printed) >= 3*time.Second {
			printed = time.Now()
			fmt.Fprintf(w, "waiting for %s: %d of 2 files imported, %d test results for Engine 2, %d cases for Engine 3, "+
				"%d jobs for Engine 4, %d posted, %d updated from CommCare (last hour)\n", what,
				r.E1.Files[eclrs.FileImported], r.E2.Waiting, r.E3.Waiting,
				r.E4.Queued()+r.E4.Jobs["running"], r.E4.Posted, r.E5.UpdatedLastHour)
		}
		select {
		case err := <-daemonDone:
			if err == nil {
				return fmt.Errorf("the cli.Daemon stopped while waiting for %s", what)
			}
			return fmt.Errorf("the cli.Daemon stopped while waiting for %s: %w", what, err)
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w", what, ctx.Err())
		case <-tick.C:
		}
	}
}

// demoWhichPath says how the tracer's edit of caseID, made at editedAt, came back: by forwarding (an import job for
// the case finished after the edit) or by polling, and how long it took.
func demoWhichPath(ctx context.Context, pool *pgxpool.Pool, w io.Writer, caseID string, editedAt time.Time) error {
	var merged time.Time
	err := pool.QueryRow(ctx, `SELECT e.inserted_at FROM events e JOIN index_case_events j ON j.event_id = e.id
		JOIN index_cases ic ON ic.id = j.index_case_id
		WHERE ic.case_id = $1 AND e.type = $2 ORDER BY e.id DESC LIMIT 1`, caseID, casedb.EventUpdatedFromCommCare).Scan(&merged)
	if err != nil {
		return fmt.Errorf("reading when the edit was merged: %w", err)
	}
	var forwarded bool
	if err := pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM river_job WHERE kind = $1 AND args->>'case_id' = $2
		AND state = 'completed' AND finalized_at >= $3)`, e5.ImportArgs{}.Kind(), caseID, editedAt).Scan(&forwarded); err != nil {
		return fmt.Errorf("reading how the edit came back: %w", err)
	}
	path := "by Engine 5's polling"
	if forwarded {
		path = "by CommCare's data forwarding, through the webhook"
	}
	fmt.Fprintf(w, "The edit came back %s, %s after it was made in CommCare.\n", path,
		merged.Sub(editedAt).Round(time.Millisecond))
	return nil
}

// demoEdit is the case the demo's contact tracer edited.
type demoEdit struct {
	id             int64
	caseID, domain string
}

// demoTracerEdit edits one posted case in CommCare as a contact tracer would: a form from another CommCare user
// that records the interview, submitted to the case's county domain.
func demoTracerEdit(ctx context.Context, c *cli.Config, pool *pgxpool.Pool) (*demoEdit, error) {
	var e demoEdit
	var fips int64
	err := pool.QueryRow(ctx, `SELECT ic.id, ic.case_id, ic.county_id FROM index_cases ic
		 WHERE EXISTS (SELECT 1 FROM index_case_events j JOIN events ev ON ev.id = j.event_id
		                WHERE j.index_case_id = ic.id AND ev.type = $1 AND ev.data ? 'response')
		 ORDER BY ic.id LIMIT 1`, casedb.EventSendToCommCareSucceeded).Scan(&e.id, &e.caseID, &fips)
	if err != nil {
		return nil, fmt.Errorf("finding a case Engine 4 posted: %w", err)
	}
	client, err := c.CommCareClient()
	if err != nil {
		return nil, err
	}
	counties, err := client.CountyList(ctx)
	if err != nil {
		return nil, err
	}
	county, ok := counties.ByFIPS(strconv.FormatInt(fips, 10))
	if !ok {
		return nil, fmt.Errorf("county %d is not in CommCare's county list", fips)
	}
	e.domain = county.Domain
	now := time.Now().UTC()
	form, err := commcare.Form{
		Cases: []commcare.CaseBlock{{CaseID: e.caseID, DateModified: now, UserID: demoTracerID, CaseType: "patient",
			Update: map[string]any{"interview_status": demoInterviewStatus}}},
		Now: now, Username: "demo-tracer", UserID: demoTracerID, InstanceID: commcare.NewInstanceID(),
	}.XML()
	if err != nil {
		return nil, err
	}
	if _, err := client.SubmitForm(ctx, e.domain, form); err != nil {
		return nil, fmt.Errorf("submitting the tracer's form: %w", err)
	}
	return &e, nil
}

// writeCommCareCases asks CommCare, through its case API, how many patient and lab result cases each county's
// domain holds, and prints the domains that have any.
func writeCommCareCases(ctx context.Context, c *cli.Config, w io.Writer) error {
	client, err := c.CommCareClient()
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

const (
	// demoDatabase is the demo's own database, made afresh on every run so the story starts from nothing.
	demoDatabase = "viaduct_demo"
	// demoDatabaseURL is demoDatabase on the local PostgreSQL that `make db` starts.
	demoDatabaseURL = "postgres://postgres@127.0.0.1:5432/" + demoDatabase + "?sslmode=disable"
)

// prepareDemoDatabase gives the demo an empty database: demoDatabase is dropped and created again; any other is
// created when missing and refused when it already holds imports, since the demo's story needs a clean slate and
// must never drop a database it does not own.
func prepareDemoDatabase(ctx context.Context, databaseURL string, logger *zap.Logger) error {
	u, err := url.Parse(databaseURL)
	if err != nil {
		return fmt.Errorf("parsing the database URL: %w", err)
	}
	name := strings.TrimPrefix(u.Path, "/")
	admin := *u
	admin.Path = "/postgres"
	conn, err := pgx.Connect(ctx, admin.String())
	if err != nil {
		return fmt.Errorf("connecting to %s (is PostgreSQL running? `make db` starts it): %w", admin.Redacted(), err)
	}
	defer conn.Close(ctx)
	if name == demoDatabase {
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			return fmt.Errorf("dropping the last demo's database %s: %w", name, err)
		}
	}
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, name).Scan(&exists); err != nil {
		return err
	}
	if !exists {
		if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
			return fmt.Errorf("creating database %s: %w", name, err)
		}
		logger.Info("created database", zap.String("database", name))
		return nil
	}
	db, err := pgx.Connect(ctx, databaseURL)
	if err != nil {
		return fmt.Errorf("connecting to %s: %w", cli.RedactDSN(databaseURL), err)
	}
	defer db.Close(ctx)
	var imported bool
	if err := db.QueryRow(ctx, `SELECT to_regclass('public.files') IS NOT NULL`).Scan(&imported); err != nil {
		return err
	}
	if imported {
		if err := db.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM files)`).Scan(&imported); err != nil {
			return err
		}
	}
	if imported {
		return fmt.Errorf("the demo needs an empty database, and %s already holds imports: point --database-url at "+
			"another, or leave it out for %s, which every run makes afresh", cli.RedactDSN(databaseURL), demoDatabase)
	}
	return nil
}

// uploadGenerated streams a generated export into bucket/key with upload (an S3 stand-in's). The generator writes
// into a pipe the upload reads; whichever way the upload ends, the pipe is closed and the generator waited for, so
// a failed upload leaves no goroutine blocked on the pipe.
func uploadGenerated(ctx context.Context, upload func(ctx context.Context, bucket, key string, r io.Reader) error,
	bucket, key string, o eclrsgen.Options) error {
	pr, pw := io.Pipe()
	generated := make(chan error, 1)
	go func() {
		err := eclrsgen.Write(pw, o)
		pw.CloseWithError(err)
		generated <- err
	}()
	err := upload(ctx, bucket, key, pr)
	pr.CloseWithError(errors.New("the upload ended")) // a generator still writing gets an error, not a block
	if genErr := <-generated; err == nil && genErr != nil {
		err = genErr
	}
	if err != nil {
		return fmt.Errorf("uploading %s: %w", key, err)
	}
	return nil
}
