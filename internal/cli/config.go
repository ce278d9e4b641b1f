package cli

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"

	"github.com/viaduct-nys/viaduct/engines/e1"
	"github.com/viaduct-nys/viaduct/engines/e2"
	"github.com/viaduct-nys/viaduct/engines/e3"
	"github.com/viaduct-nys/viaduct/engines/e4"
	"github.com/viaduct-nys/viaduct/engines/e5"
	"github.com/viaduct-nys/viaduct/pkg/commcare"
	"github.com/viaduct-nys/viaduct/pkg/countylist"
	"github.com/viaduct-nys/viaduct/pkg/retention"
	"github.com/viaduct-nys/viaduct/pkg/status/report"
)

// defaultDatabaseURL is the local PostgreSQL that `make db` starts, with trust authentication.
const defaultDatabaseURL = "postgres://postgres@127.0.0.1:5432/viaduct?sslmode=disable"

// Config is everything the daemon and its subcommands are configured with. Each field's flag, environment variable
// and default are declared in the add* functions below, which are also what --help prints.
type Config struct {
	DatabaseURL string
	LogLevel    string
	LogFormat   string

	HTTPAddr        string
	RiverUIPassword string // secret: never logged
	ShutdownGrace   time.Duration
	UntilIdle       bool
	Migrate         bool
	Engines         [6]bool // Engines[n] enables engine n; index 0 is unused

	SQSQueueURL       string
	S3PathStyle       string // "auto", "true" or "false"
	VisibilityTimeout time.Duration
	SQSWaitTime       time.Duration
	BatchRows         int

	CommCareURL         string
	CommCareCredentials string // secret: never logged
	CommCareRootDomain  string
	CountyListFile      string
	CountyRefresh       time.Duration
	CommCareTimeout     time.Duration
	CommCareUsername    string
	CommCareUserID      string
	CommCarePosting     bool

	E2BatchSize    int
	E2Workers      int
	E2PollInterval time.Duration
	E2MaxAttempts  int
	E2IgnoreBefore string

	E1ResumeAfter      time.Duration
	E1MaxAttempts      int
	E1StaleAfter       time.Duration
	E3BatchSize        int
	E3BusyPollInterval time.Duration
	E3IdlePollInterval time.Duration

	E4Concurrency int
	E4JobTimeout  time.Duration
	E4RescueAfter time.Duration
	E4RetryBase   time.Duration
	E4RetryCap    time.Duration

	E5Interval    time.Duration
	E5Overlap     time.Duration
	E5FirstWindow time.Duration
	E5PageSize    int
	E5Domains     int
	OwnUserIDs    string

	WebhookAddr         string
	WebhookPassword     string // secret: never logged
	E5ImportConcurrency int

	Retention time.Duration // the daemon's daily purge (pkg/retention); 0: none
}

func addDatabase(s *OptionSet, c *Config) {
	AddDatabaseAs(s, c, "DATABASE_URL", defaultDatabaseURL, "PostgreSQL connection URL.")
}

// AddDatabaseAs declares --database-url with its own environment variable, default and help.
func AddDatabaseAs(s *OptionSet, c *Config, env, def, help string) {
	s.String(&c.DatabaseURL, "database-url", env, def, help)
	s.Check(func() error {
		// pgx's own parser, so every form it accepts is accepted (a URL or key/value settings); its errors mask
		// passwords.
		if _, err := pgxpool.ParseConfig(c.DatabaseURL); err != nil {
			return fmt.Errorf("--database-url (%s) is not a PostgreSQL connection string: %w", env, err)
		}
		return nil
	})
}

// AddLogging declares the logging options; format is the default log format.
func AddLogging(s *OptionSet, c *Config, format string) {
	s.String(&c.LogLevel, "log-level", "VIADUCT_LOG_LEVEL", "info", "Log level: debug, info, warn or error.")
	s.String(&c.LogFormat, "log-format", "VIADUCT_LOG_FORMAT", format, "Log format: json (one object per line) or console.")
	s.Check(func() error {
		var errs []error
		switch c.LogLevel {
		case "debug", "info", "warn", "error":
		default:
			errs = append(errs, fmt.Errorf("--log-level %q: use debug, info, warn or error", c.LogLevel))
		}
		switch c.LogFormat {
		case "json", "console":
		default:
			errs = append(errs, fmt.Errorf("--log-format %q: use json or console", c.LogFormat))
		}
		return errors.Join(errs...)
	})
}

func addAWS(s *OptionSet, c *Config) {
	s.String(&c.S3PathStyle, "s3-path-style", "S3_USE_PATH_STYLE", "auto",
		"Address S3 buckets by path (true) or virtual host (false); auto means path style when AWS_ENDPOINT_URL* is set.")
	s.Check(func() error {
		switch c.S3PathStyle {
		case "auto", "true", "false":
			return nil
		}
		return fmt.Errorf("--s3-path-style %q: use auto, true or false", c.S3PathStyle)
	})
}

func addBatchRows(s *OptionSet, c *Config) {
	s.Int(&c.BatchRows, "batch-rows", "VIADUCT_E1_BATCH_ROWS", 10_000, "Rows de-duplicated and inserted per batch.")
	s.Check(func() error {
		if c.BatchRows <= 0 {
			return fmt.Errorf("--batch-rows %d must be positive", c.BatchRows)
		}
		return nil
	})
}

func addE1(s *OptionSet, c *Config) {
	s.String(&c.SQSQueueURL, "sqs-queue-url", "VIADUCT_SQS_QUEUE_URL", "", "URL of the SQS queue S3 announces ECLRS exports on (required with --e1).")
	s.Duration(&c.VisibilityTimeout, "sqs-visibility-timeout", "VIADUCT_SQS_VISIBILITY_TIMEOUT", 5*time.Minute,
		"How long each extension keeps a message being imported hidden from other consumers.")
	s.Duration(&c.SQSWaitTime, "sqs-wait-time", "VIADUCT_SQS_WAIT_TIME", 20*time.Second, "SQS long-poll wait per receive (0 to 20s).")
	s.Duration(&c.E1ResumeAfter, "e1-resume-after", "VIADUCT_E1_RESUME_AFTER", 5*time.Minute,
		"How long an announced export may stay importing with no import under way (a failed attempt, a dead daemon) "+
			"before it is read again from S3.")
	s.Int(&c.E1MaxAttempts, "e1-max-attempts", "VIADUCT_E1_MAX_ATTEMPTS", 5,
		"Import attempts an export gets; after the last fails it is marked failed with the reason.")
	addBatchRows(s, c)
}

// addStatusRules declares the threshold of the status rules (pkg/status/report) that has a flag of its own; the
// daemon's /status page and `viaduct status` both take it.
func addStatusRules(s *OptionSet, c *Config) {
	s.Duration(&c.E1StaleAfter, "e1-stale-after", "VIADUCT_E1_STALE_AFTER", report.DefaultE1StaleAfter,
		"How long without an imported export turns Engine 1 red on /status and in viaduct status; ECLRS sends one "+
			"about every 30 minutes.")
	s.Check(func() error {
		if c.E1StaleAfter < time.Minute {
			return fmt.Errorf("--e1-stale-after %s must be at least 1m", c.E1StaleAfter)
		}
		return nil
	})
}

// statusThresholds are the status rules' thresholds under this configuration: --e1-stale-after, a job running past
// Engine 4's rescue time, and a domain with no round completed within three Engine 5 intervals. Settings a command
// does not have keep their defaults.
func (c *Config) statusThresholds() report.Thresholds {
	th := report.Defaults()
	if c.E1StaleAfter > 0 {
		th.E1StaleAfter = report.Duration(c.E1StaleAfter)
	}
	if c.E4RescueAfter > 0 {
		th.E4RunningLongerThan = report.Duration(c.E4RescueAfter)
	} else if c.E4JobTimeout > 0 {
		th.E4RunningLongerThan = report.Duration(c.E4JobTimeout + time.Minute)
	}
	if c.E5Interval > 0 {
		th.E5CurrentWithin = report.Duration(3 * c.E5Interval)
	}
	return th
}

// addCommCare declares where the county list (and, for later engines, CommCare itself) is.
func addCommCare(s *OptionSet, c *Config) {
	s.String(&c.CommCareURL, "commcare-url", "COMMCARE_BASE_URL", "", "CommCare HQ base URL, e.g. https://www.commcarehq.org.")
	s.String(&c.CommCareCredentials, "commcare-api-key", "COMMCARE_API_KEY_CREDENTIALS", "",
		"CommCare API credentials as <username>:<api key>; prefer the environment variable, flags show up in ps.")
	s.String(&c.CommCareRootDomain, "commcare-root-domain", "COMMCARE_ROOT_DOMAIN", "ny-statewide-cdcms",
		"CommCare project space holding the county_list lookup table.")
	s.String(&c.CountyListFile, "county-list-file", "VIADUCT_COUNTY_LIST_FILE", "",
		"Read the county list from this JSON file (CommCare's fixture API response) instead of from CommCare.")
	s.Duration(&c.CountyRefresh, "county-refresh", "VIADUCT_COUNTY_REFRESH", 30*time.Minute,
		"How often the county list is fetched again; a failed refresh keeps the last good list.")
	s.Duration(&c.CommCareTimeout, "commcare-timeout", "COMMCARE_TIMEOUT", 30*time.Second,
		"Time limit for one CommCare request; GETs that fail are retried for up to 10s more.")
	s.Check(func() error {
		var errs []error
		if c.CommCareURL != "" {
			if u, err := url.Parse(c.CommCareURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				errs = append(errs, fmt.Errorf("--commcare-url %q must be an absolute http(s) URL", c.CommCareURL))
			}
		}
		if c.CommCareCredentials != "" {
			if user, key, ok := strings.Cut(c.CommCareCredentials, ":"); !ok || user == "" || key == "" {
				errs = append(errs, errors.New("--commcare-api-key (COMMCARE_API_KEY_CREDENTIALS) must look like <username>:<api key>"))
			}
		}
		if c.CountyRefresh < time.Minute {
			errs = append(errs, fmt.Errorf("--county-refresh %s must be at least 1m", c.CountyRefresh))
		}
		if c.CommCareTimeout < 100*time.Millisecond {
			errs = append(errs, fmt.Errorf("--commcare-timeout %s must be at least 100ms", c.CommCareTimeout))
		}
		return errors.Join(errs...)
	})
}

// needsCounties reports whether an enabled engine routes by county.
func (c *Config) needsCounties() bool { return c.Engines[2] || c.Engines[4] || c.Engines[5] }

// needsCommCare reports whether an enabled engine talks to CommCare itself, not only for the county list.
func (c *Config) needsCommCare() bool { return c.Engines[4] || c.Engines[5] }

// CommCareClient is the CommCare API client for the configured instance.
func (c *Config) CommCareClient() (*commcare.Client, error) {
	return commcare.NewClient(commcare.ClientConfig{
		BaseURL: c.CommCareURL, Credentials: c.CommCareCredentials, RootDomain: c.CommCareRootDomain,
		Timeout: c.CommCareTimeout,
	})
}

// AddE2 declares Engine 2's options.
func AddE2(s *OptionSet, c *Config) {
	s.Int(&c.E2BatchSize, "e2-batch-size", "VIADUCT_E2_BATCH_SIZE", e2.DefaultBatchSize, "Test results Engine 2 claims and processes per transaction.")
	s.Int(&c.E2Workers, "e2-workers", "VIADUCT_E2_WORKERS", 2, "Engine 2 batches in flight at once.")
	s.Duration(&c.E2PollInterval, "e2-poll-interval", "VIADUCT_E2_POLL_INTERVAL", 5*time.Second,
		"How often idle Engine 2 looks for test results; Engine 1's NOTIFY wakes it sooner.")
	s.Int(&c.E2MaxAttempts, "e2-max-attempts", "VIADUCT_E2_MAX_ATTEMPTS", 8,
		"Attempts at a test result before it is marked processing_failed.")
	s.String(&c.E2IgnoreBefore, "e2-ignore-before", "VIADUCT_E2_IGNORE_BEFORE", e2.DefaultIgnoreBefore.Format(time.DateOnly),
		"Ignore test results ECLRS created on or before this date (YYYY-MM-DD, UTC midnight) or RFC 3339 time.")
	s.Check(func() error {
		_, err := c.ignoreBefore()
		return errors.Join(err, c.e2Config().Validate())
	})
}

// ignoreBefore parses --e2-ignore-before.
func (c *Config) ignoreBefore() (time.Time, error) {
	if t, err := time.Parse(time.DateOnly, c.E2IgnoreBefore); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.RFC3339, c.E2IgnoreBefore); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("--e2-ignore-before %q: use YYYY-MM-DD or an RFC 3339 time", c.E2IgnoreBefore)
}

func (c *Config) e2Config() e2.Config {
	ignoreBefore, _ := c.ignoreBefore() // validated by parse
	return e2.Config{
		BatchSize:    c.E2BatchSize,
		Workers:      c.E2Workers,
		PollInterval: c.E2PollInterval,
		MaxAttempts:  c.E2MaxAttempts,
		IgnoreBefore: ignoreBefore,
		UntilIdle:    c.UntilIdle,
		Listen:       true,
	}
}

func addE3(s *OptionSet, c *Config) {
	s.Int(&c.E3BatchSize, "e3-batch-size", "VIADUCT_E3_BATCH_SIZE", 100, "Changed index cases Engine 3 enqueues per transaction.")
	s.Duration(&c.E3BusyPollInterval, "e3-busy-poll-interval", "VIADUCT_E3_BUSY_POLL_INTERVAL", 100*time.Millisecond,
		"Pause after a pass of Engine 3 that handed cases off.")
	s.Duration(&c.E3IdlePollInterval, "e3-idle-poll-interval", "VIADUCT_E3_IDLE_POLL_INTERVAL", 500*time.Millisecond,
		"Pause after a pass of Engine 3 that found nothing changed (a pass reads only what changed since the last).")
	s.Check(func() error { return c.e3Config().Validate() })
}

func (c *Config) e3Config() e3.Config {
	return e3.Config{BatchSize: c.E3BatchSize, BusyPollInterval: c.E3BusyPollInterval,
		IdlePollInterval: c.E3IdlePollInterval, UntilIdle: c.UntilIdle}
}

func addE4(s *OptionSet, c *Config) {
	s.String(&c.CommCareUsername, "commcare-username", "COMMCARE_USERNAME", "viaduct",
		"CommCare user name Engine 4's forms are submitted as (meta/username).")
	s.String(&c.CommCareUserID, "commcare-user-id", "COMMCARE_USER_ID", "",
		"CommCare user id Engine 4's forms are submitted as; required with --e4. Engine 5 recognises Viaduct's own changes by it.")
	s.Bool(&c.CommCarePosting, "commcare-posting", "COMMCARE_POSTING_ENABLED", true,
		"Post cases to CommCare; false is a dry run that looks cases up, builds the forms and records them as not sent.")
	s.Int(&c.E4Concurrency, "e4-concurrency", "VIADUCT_E4_CONCURRENCY", e4.DefaultConcurrency, "Engine 4 jobs this daemon works at once.")
	s.Duration(&c.E4JobTimeout, "e4-job-timeout", "VIADUCT_E4_JOB_TIMEOUT", 2*time.Minute,
		"Time limit for one Engine 4 attempt: its CommCare lookups, the post and the recording.")
	s.Duration(&c.E4RescueAfter, "e4-rescue-after", "VIADUCT_E4_RESCUE_AFTER", 0,
		"How long an Engine 4 job may stay running before it is taken for abandoned by a dead daemon and worked "+
			"again (default: --e4-job-timeout plus a minute).")
	s.Duration(&c.E4RetryBase, "e4-retry-base", "VIADUCT_E4_RETRY_BASE", 15*time.Second,
		"Wait after an Engine 4 job's first failed attempt; it doubles with each failure up to --e4-retry-cap.")
	s.Duration(&c.E4RetryCap, "e4-retry-cap", "VIADUCT_E4_RETRY_CAP", 24*time.Hour,
		"Longest wait between two attempts of an Engine 4 job.")
	s.Check(func() error {
		// The user id is required only when Engine 4 runs, and named here as every other setting is, by its flag
		// and variable; the rest is checked either way.
		cfg := c.e4Config()
		var errs []error
		if cfg.UserID == "" {
			if c.Engines[4] {
				errs = append(errs, errors.New("--commcare-user-id (COMMCARE_USER_ID) is required with --e4: forms are "+
					"submitted as that user"))
			}
			cfg.UserID = "-"
		}
		return errors.Join(append(errs, cfg.Validate())...)
	})
}

func (c *Config) e4Config() e4.Config {
	return e4.Config{
		Username: c.CommCareUsername, UserID: c.CommCareUserID, DryRun: !c.CommCarePosting,
		Concurrency: c.E4Concurrency, JobTimeout: c.E4JobTimeout, RescueAfter: c.E4RescueAfter,
		Retry:     e4.RetryPolicy{Base: c.E4RetryBase, Cap: c.E4RetryCap},
		UntilIdle: c.UntilIdle,
	}
}

func addE5(s *OptionSet, c *Config) {
	s.Duration(&c.E5Interval, "e5-interval", "VIADUCT_E5_INTERVAL", 5*time.Minute,
		"Time between the starts of two Engine 5 rounds over every participating CommCare domain.")
	s.Duration(&c.E5Overlap, "e5-overlap", "VIADUCT_E5_OVERLAP", 2*time.Minute,
		"How far before a domain's high-water mark the next round reads, against clock skew; reading twice is harmless.")
	s.Duration(&c.E5FirstWindow, "e5-first-window", "VIADUCT_E5_FIRST_WINDOW", 48*time.Hour,
		"How far back the first round reads a domain that has no mark yet.")
	s.Int(&c.E5PageSize, "e5-page-size", "VIADUCT_E5_PAGE_SIZE", 100, "Cases per CommCare case-list request.")
	s.Int(&c.E5Domains, "e5-domains", "VIADUCT_E5_DOMAINS", 4, "CommCare domains Engine 5 reads at once.")
	s.String(&c.OwnUserIDs, "commcare-own-user-ids", "VIADUCT_COMMCARE_OWN_USER_IDS", "",
		"Further CommCare user ids (comma-separated) whose changes are Viaduct's own, besides --commcare-user-id.")
	s.Check(func() error { return c.e5Config().Validate() })
}

// minWebhookPassword is the shortest webhook password accepted: the webhook faces CommCare, so it may face the
// internet.
const minWebhookPassword = 16

// addWebhook declares the endpoint CommCare's data forwarding posts changed cases to, and its importer.
func addWebhook(s *OptionSet, c *Config) {
	s.String(&c.WebhookAddr, "webhook-addr", "VIADUCT_WEBHOOK_ADDR", "",
		"Address for "+e5.WebhookPath+", where CommCare's data forwarding posts changed cases (needs --e5); a listener "+
			"of its own, not the ops address. Empty disables.")
	s.String(&c.WebhookPassword, "webhook-password", "VIADUCT_WEBHOOK_PASSWORD", "",
		"Password CommCare's forwarder sends (HTTP basic auth, user "+e5.WebhookUser+"); required with --webhook-addr. "+
			"Prefer the environment variable, flags show up in ps.")
	s.Int(&c.E5ImportConcurrency, "e5-import-concurrency", "VIADUCT_E5_IMPORT_CONCURRENCY", 8,
		"Forwarded cases Engine 5 merges at once in this daemon.")
	s.Check(func() error {
		var errs []error
		if c.WebhookAddr != "" {
			if !c.Engines[5] {
				errs = append(errs, errors.New("--webhook-addr needs --e5: Engine 5 merges the cases CommCare forwards"))
			}
			if c.WebhookPassword == "" {
				errs = append(errs, errors.New("--webhook-addr needs a password: set VIADUCT_WEBHOOK_PASSWORD "+
					"(or --webhook-password), and the same in CommCare's forwarding connection"))
			} else if len(c.WebhookPassword) < minWebhookPassword {
				errs = append(errs, fmt.Errorf("the webhook password (VIADUCT_WEBHOOK_PASSWORD) must be at least %d characters",
					minWebhookPassword))
			}
			if c.WebhookAddr == c.HTTPAddr {
				errs = append(errs, fmt.Errorf("--webhook-addr %s is the ops address (--http-addr): the webhook needs a "+
					"listener of its own", c.WebhookAddr))
			}
		}
		return errors.Join(append(errs, c.e5ImporterConfig().Validate())...)
	})
}

// e5ImporterConfig configures Engine 5's importer of forwarded cases.
func (c *Config) e5ImporterConfig() e5.ImporterConfig {
	return e5.ImporterConfig{OwnUserIDs: c.e5Config().OwnUserIDs, Concurrency: c.E5ImportConcurrency}
}

func (c *Config) e5Config() e5.Config {
	var own []string
	for _, id := range append(strings.Split(c.OwnUserIDs, ","), c.CommCareUserID) {
		if id = strings.TrimSpace(id); id != "" {
			own = append(own, id)
		}
	}
	return e5.Config{Interval: c.E5Interval, Overlap: c.E5Overlap, FirstWindow: c.E5FirstWindow, PageSize: c.E5PageSize,
		Domains: c.E5Domains, OwnUserIDs: own, UntilIdle: c.UntilIdle}
}

// addRetention declares the daemon's retention schedule: off unless set. `viaduct purge --older-than` reads the same
// variable, so a purge run by hand and the daemon's agree.
func addRetention(s *OptionSet, c *Config) {
	s.window(&c.Retention, "retention", "VIADUCT_RETENTION",
		"Once a day (the first 10 minutes after start), purge the personal data older than this, as viaduct purge "+
			"--older-than does: a number of days (90d) or a duration (2160h), at least 14d. Empty: never.")
	s.Check(func() error {
		if c.Retention == 0 {
			return nil
		}
		return c.retentionConfig().Validate()
	})
}

// retentionConfig configures the daemon's daily purge.
func (c *Config) retentionConfig() retention.Config {
	return retention.Config{Window: c.Retention}
}

func addRun(s *OptionSet, c *Config) {
	s.String(&c.HTTPAddr, "http-addr", "VIADUCT_HTTP_ADDR", "127.0.0.1:8080", "Address for /status, /riverui/, /metrics, /healthz and /readyz; empty disables.")
	s.String(&c.RiverUIPassword, "riverui-password", "VIADUCT_RIVERUI_PASSWORD", "",
		"Password for River UI at /riverui/ (HTTP basic auth, any user); without one River UI is read-only.")
	s.Duration(&c.ShutdownGrace, "shutdown-grace", "VIADUCT_SHUTDOWN_GRACE", 30*time.Second,
		"After SIGINT/SIGTERM, how long engines may take to finish or roll back their work.")
	s.Bool(&c.UntilIdle, "until-idle", "VIADUCT_UNTIL_IDLE", false,
		"Run the enabled engines one after another in pipeline order, each until it finds no ready work, then exit.")
	s.Bool(&c.Migrate, "migrate", "VIADUCT_MIGRATE", false, "Apply database migrations before starting.")
	for n := 1; n <= 5; n++ {
		s.Bool(&c.Engines[n], fmt.Sprintf("e%d", n), fmt.Sprintf("VIADUCT_E%d_ENABLED", n), false, engineHelp[n])
	}
	s.Check(func() error {
		if c.ShutdownGrace <= 0 {
			return fmt.Errorf("--shutdown-grace %s must be positive", c.ShutdownGrace)
		}
		return nil
	})
	s.Check(c.ValidateEngines)
}

var engineHelp = [6]string{1: "Enable Engine 1, the ECLRS extractor (SQS → S3 → test_results).",
	2: "Enable Engine 2, the ECLRS → CommCare transformer.", 3: "Enable Engine 3, the CommCare enqueuer.",
	4: "Enable Engine 4, the CommCare case loader.", 5: "Enable Engine 5, the CommCare extractor."}

// engineNames names the enabled engines as the heartbeat and the status page name them: "e1", "e2", ….
func (c *Config) engineNames() []string {
	var names []string
	for n := 1; n < len(c.Engines); n++ {
		if c.Engines[n] {
			names = append(names, fmt.Sprintf("e%d", n))
		}
	}
	return names
}

// ValidateEngines reports every problem with the set of enabled engines at once.
func (c *Config) ValidateEngines() error {
	var errs []error
	if !slices.Contains(c.Engines[1:], true) {
		errs = append(errs, errors.New("no engine enabled: pass at least one of --e1 … --e5 (or VIADUCT_E1_ENABLED=true …)"))
	}
	if c.Engines[1] && c.SQSQueueURL == "" {
		errs = append(errs, errors.New("--e1 needs --sqs-queue-url (VIADUCT_SQS_QUEUE_URL)"))
	}
	if c.needsCounties() && c.CountyListFile == "" && (c.CommCareURL == "" || c.CommCareCredentials == "") {
		who := engineList(c.Engines[2], c.Engines[4], c.Engines[5])
		errs = append(errs, errors.New(who+" the county list: --county-list-file (VIADUCT_COUNTY_LIST_FILE), "+
			"or --commcare-url and --commcare-api-key (COMMCARE_BASE_URL, COMMCARE_API_KEY_CREDENTIALS)"))
	}
	if c.needsCommCare() && (c.CommCareURL == "" || c.CommCareCredentials == "") {
		errs = append(errs, errors.New(engineList(false, c.Engines[4], c.Engines[5])+" CommCare: --commcare-url and "+
			"--commcare-api-key (COMMCARE_BASE_URL, COMMCARE_API_KEY_CREDENTIALS)"))
	}
	return errors.Join(errs...)
}

// engineList names the enabled ones of Engines 2, 4 and 5 as the subject of a sentence: "--e2 needs",
// "--e4 and --e5 need".
func engineList(e2, e4, e5 bool) string {
	var names []string
	for n, on := range map[int]bool{2: e2, 4: e4, 5: e5} {
		if on {
			names = append(names, fmt.Sprintf("--e%d", n))
		}
	}
	slices.Sort(names)
	if len(names) == 1 {
		return names[0] + " needs"
	}
	return strings.Join(names[:len(names)-1], ", ") + " and " + names[len(names)-1] + " need"
}

// logFields are the effective settings logged at start; nothing secret goes here (the database URL is redacted).
func (c *Config) logFields() []zap.Field {
	enabled := []string{}
	for n := 1; n <= 5; n++ {
		if c.Engines[n] {
			enabled = append(enabled, fmt.Sprintf("e%d", n))
		}
	}
	return []zap.Field{
		zap.String("version", buildVersion()),
		zap.Strings("engines", enabled), zap.String("database", RedactDSN(c.DatabaseURL)), zap.String("http_addr", c.HTTPAddr),
		zap.String("webhook_addr", c.WebhookAddr),
		zap.Bool("until_idle", c.UntilIdle), zap.Duration("shutdown_grace", c.ShutdownGrace),
		zap.String("sqs_queue_url", c.SQSQueueURL), zap.Duration("sqs_visibility_timeout", c.VisibilityTimeout),
		zap.Duration("sqs_wait_time", c.SQSWaitTime), zap.Int("batch_rows", c.BatchRows), zap.String("s3_path_style", c.S3PathStyle),
	}
}

func (c *Config) e1Config() e1.Config {
	return e1.Config{
		QueueURL:          c.SQSQueueURL,
		VisibilityTimeout: c.VisibilityTimeout,
		WaitTime:          c.SQSWaitTime,
		UntilIdle:         c.UntilIdle,
		ResumeAfter:       c.E1ResumeAfter,
		MaxAttempts:       c.E1MaxAttempts,
		Importer:          e1.ImporterConfig{BatchRows: c.BatchRows},
	}
}

// RedactDSN returns the connection string with every password pgx would read masked: a URL's user-info password
// and its password or sslpassword query values, or the password and sslpassword settings of a key/value string.
func RedactDSN(raw string) string {
	const mask = "xxxxx"
	if !strings.HasPrefix(raw, "postgres://") && !strings.HasPrefix(raw, "postgresql://") {
		return kvPassword.ReplaceAllString(raw, "${1}="+mask)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "(a URL that does not parse)"
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), mask)
	}
	q := u.Query() // decoded, so pass%77ord is found too
	for key := range q {
		if k := strings.ToLower(key); k == "password" || k == "sslpassword" {
			q[key] = []string{mask}
		}
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// kvPassword finds the password settings of a key/value connection string, quoted or not.
var kvPassword = regexp.MustCompile(`(?i)\b((?:ssl)?password)\s*=\s*(?:'(?:[^'\\]|\\.)*'|\S*)`)

// countySource is where the daemon gets the county list: the file when one is named, else CommCare.
func (c *Config) countySource() (countylist.Source, error) {
	if c.CountyListFile != "" {
		return countylist.FileSource{Path: c.CountyListFile}, nil
	}
	return c.CommCareClient()
}
