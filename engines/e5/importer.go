package e5

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"
	"go.uber.org/zap"

	"github.com/viaduct-nys/viaduct/pkg/commcare"
	"github.com/viaduct-nys/viaduct/pkg/countylist"
)

// ImportQueue is the River queue the importer of forwarded cases works.
const ImportQueue = "commcare_import"

// ImportMaxAttempts is how many times a forwarded case is tried before it is left to polling.
const ImportMaxAttempts = 12

// ImportArgs is the job the webhook queues for a case CommCare forwarded: merge what commcare_case_inbox holds for
// it. It names the case only; the case itself waits in the inbox, so a newer copy that arrives before the job runs
// is the one merged, and patient data never sits in river_job (or on River UI).
type ImportArgs struct {
	// Domain and CaseID name the forwarded case: its project space and CommCare case id.
	Domain string `json:"domain" river:"unique"`
	CaseID string `json:"case_id" river:"unique"`
}

// Kind names the job for River.
func (ImportArgs) Kind() string { return "commcare_case_import" }

// InsertOpts make a case's job unique among live jobs (waiting, running, or waiting to retry or after a snooze),
// whatever the rest of its args: one job per case at a time. A copy forwarded while the job runs is not lost: the
// job completes in the transaction that deletes the inbox row it merged, so the webhook, which waits for that row,
// finds no live job afterwards and queues another.
func (ImportArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{
		Queue:       ImportQueue,
		MaxAttempts: ImportMaxAttempts,
		UniqueOpts: river.UniqueOpts{
			ByArgs: true,
			ByState: []rivertype.JobState{rivertype.JobStateAvailable, rivertype.JobStatePending,
				rivertype.JobStateRunning, rivertype.JobStateRetryable, rivertype.JobStateScheduled},
		},
	}
}

// ImporterConfig configures the importer of forwarded cases.
type ImporterConfig struct {
	// OwnUserIDs are Viaduct's own CommCare user ids, as in Config.
	OwnUserIDs []string
	// Concurrency is how many forwarded cases this daemon merges at once. Defaults to 8: a merge is a few
	// milliseconds of PostgreSQL, so a handful keep up with any repeater.
	Concurrency int
	// JobTimeout bounds one attempt: the merge and, for a case new to Viaduct, one GET of it. Defaults to 1 minute.
	JobTimeout time.Duration
	// RetryBase is the wait after a failed attempt, doubling with each failure up to RetryCap. Default 1 second and
	// 5 minutes: ImportMaxAttempts then span about half an hour, after which polling is the safety net.
	RetryBase, RetryCap time.Duration
	// LagWait is how long a job waits when CommCare's case API has an older copy of a forwarded case than the
	// forwarder sent (the API reads an index that trails the forwarder), before it asks again. Defaults to 30
	// seconds (the original waited 3 minutes).
	LagWait time.Duration
	// MaxLagWaits bounds those waits for one case. After them the case is left to polling, which reads it with its
	// lab results once the API has it. Defaults to 10.
	MaxLagWaits int
	// PollInterval is how often this daemon looks for import jobs besides River's notifications, which a busy
	// queue's inserts only send every tenth of a second. Defaults to 100 ms, so a forwarded change is merged within
	// a fraction of a second; each look is one indexed query.
	PollInterval time.Duration
}

func (c *ImporterConfig) setDefaults() {
	if c.Concurrency == 0 {
		c.Concurrency = 8
	}
	if c.JobTimeout == 0 {
		c.JobTimeout = time.Minute
	}
	if c.RetryBase == 0 {
		c.RetryBase = time.Second
	}
	if c.RetryCap == 0 {
		c.RetryCap = 5 * time.Minute
	}
	if c.LagWait == 0 {
		c.LagWait = 30 * time.Second
	}
	if c.MaxLagWaits == 0 {
		c.MaxLagWaits = 10
	}
	if c.PollInterval == 0 {
		c.PollInterval = 100 * time.Millisecond
	}
}

// Validate reports every problem with c at once; zero fields take their defaults first.
func (c ImporterConfig) Validate() error {
	c.setDefaults()
	var errs []error
	if c.Concurrency < 1 || c.Concurrency > 1000 {
		errs = append(errs, fmt.Errorf("e5: import concurrency %d is outside 1 to 1,000", c.Concurrency))
	}
	if c.JobTimeout < time.Second {
		errs = append(errs, fmt.Errorf("e5: import job timeout %s is shorter than a second", c.JobTimeout))
	}
	if c.RetryBase <= 0 || c.RetryCap < c.RetryBase {
		errs = append(errs, fmt.Errorf("e5: import retry base %s must be positive and no longer than the retry cap %s",
			c.RetryBase, c.RetryCap))
	}
	if c.PollInterval < time.Millisecond {
		errs = append(errs, fmt.Errorf("e5: import poll interval %s is shorter than a millisecond", c.PollInterval))
	}
	if c.LagWait <= 0 || c.MaxLagWaits < 1 {
		errs = append(errs, fmt.Errorf("e5: the wait for CommCare's case API (%s, at most %d times) must be positive",
			c.LagWait, c.MaxLagWaits))
	}
	return errors.Join(errs...)
}

// ImporterDeps are the importer's collaborators.
type ImporterDeps struct {
	// Pool is the database, which also holds River's jobs.
	Pool *pgxpool.Pool
	// CommCare is asked for a case in full when what was forwarded lacks what creating it needs.
	CommCare CommCare
	// Counties maps a domain to its county.
	Counties countylist.Provider
	// Logger is Engine 5's named logger.
	Logger *zap.Logger
	// Metrics records what the importer does; nil records nothing. Share Engine 5's.
	Metrics *Metrics
}

// Importer is the River worker that merges the cases CommCare forwards (Webhook) into Viaduct's, with the rules
// polling merges by.
type Importer struct {
	river.WorkerDefaults[ImportArgs]
	config ImporterConfig
	deps   ImporterDeps
	merger merger
	// beforeLock and beforeCommit, set by tests, run in each merge's transaction: before the inbox row is locked,
	// and once the job is completed, before the commit.
	beforeLock, beforeCommit func()
}

// NewImporter validates config and returns the importer. Register it in the config of the process's River client
// before the client is built.
func NewImporter(config ImporterConfig, deps ImporterDeps) (*Importer, error) {
	config.setDefaults()
	errs := []error{config.Validate()}
	if deps.Pool == nil {
		errs = append(errs, errors.New("e5: a database pool is required"))
	}
	if deps.CommCare == nil {
		errs = append(errs, errors.New("e5: a CommCare client is required"))
	}
	if deps.Counties == nil {
		errs = append(errs, errors.New("e5: a county list is required"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if deps.Logger == nil {
		deps.Logger = zap.NewNop()
	}
	return &Importer{config: config, deps: deps, merger: merger{own: config.OwnUserIDs}}, nil
}

// Register adds the importer and its queue to rc, the config of the process's one River client. Its jobs' timeout
// and retries are the importer's own (Timeout, NextRetry, ImportArgs.InsertOpts), whatever the client's defaults.
func (imp *Importer) Register(rc *river.Config) error {
	if rc.Workers == nil {
		rc.Workers = river.NewWorkers()
	}
	if err := river.AddWorkerSafely(rc.Workers, imp); err != nil {
		return fmt.Errorf("e5: %w", err)
	}
	if rc.Queues == nil {
		rc.Queues = map[string]river.QueueConfig{}
	}
	// A queue's fetches wait at least FetchCooldown for each other, and take as many jobs as it has idle workers: at
	// River's default (100 ms) that caps a queue at ten times Concurrency jobs a second, whatever PostgreSQL could do.
	rc.Queues[ImportQueue] = river.QueueConfig{MaxWorkers: imp.config.Concurrency,
		FetchCooldown: min(importFetchCooldown, imp.config.PollInterval), FetchPollInterval: imp.config.PollInterval}
	return nil
}

// importFetchCooldown is the least time between two fetches of import jobs.
const importFetchCooldown = 5 * time.Millisecond

// Timeout bounds one attempt.
func (imp *Importer) Timeout(*river.Job[ImportArgs]) time.Duration { return imp.config.JobTimeout }

// NextRetry waits RetryBase·2^(n−1) after failed attempt n, at most RetryCap, ±10%.
func (imp *Importer) NextRetry(job *river.Job[ImportArgs]) time.Time {
	d := imp.config.RetryBase
	for i := 1; i < job.Attempt && d < imp.config.RetryCap; i++ {
		d *= 2
	}
	d = min(d, imp.config.RetryCap)
	return time.Now().Add(d + time.Duration((rand.Float64()*0.2-0.1)*float64(d)))
}

// What an import job did, for metrics and logs; the merge outcomes' names are polling's.
const (
	importNothing     = "nothing"      // the inbox held nothing: an earlier job merged the change
	importStale       = "stale"        // older than the change Viaduct merged last
	importLagging     = "lagging"      // CommCare's case API is behind the forwarder: waiting for it
	importRateLimited = "rate_limited" // CommCare's case API asked to slow down: waiting as asked
	importLeft        = "left_to_poll" // given up on (the API stayed behind, or the county left): polling has it
	importFailed      = "failed"
)

// maxRateLimitSnooze bounds a wait CommCare's Retry-After asks for, so a confused server cannot park a case for days.
const maxRateLimitSnooze = time.Hour

// Work merges the newest forwarded copy of a case (§7.3): under the inbox row's lock, in one transaction that also
// deletes the row and completes the job. A case Viaduct does not have, forwarded without what creating it needs, is
// fetched from CommCare's case API outside the transaction and merged from there, unless the API's copy is older than
// the forwarded one: then the job waits (snoozes) for the API to catch up.
func (imp *Importer) Work(ctx context.Context, job *river.Job[ImportArgs]) error {
	out, err := imp.work(ctx, job)
	imp.deps.Metrics.observeImport(out)
	if out == importFailed && job.Attempt >= job.MaxAttempts && ctx.Err() == nil {
		// River discards the job now: what it held goes too, rather than wait in the inbox with no job. Polling
		// reads the case as CommCare has it.
		imp.deps.Logger.Error("giving a forwarded case up to polling after its last attempt",
			zap.String("case_id", job.Args.CaseID), zap.String("domain", job.Args.Domain), zap.Error(err))
		if _, derr := imp.deps.Pool.Exec(ctx, `DELETE FROM commcare_case_inbox WHERE domain = $1 AND case_id = $2`,
			job.Args.Domain, job.Args.CaseID); derr != nil {
			err = errors.Join(err, fmt.Errorf("deleting the case from the inbox: %w", derr))
		}
	}
	return err
}

func (imp *Importer) work(ctx context.Context, job *river.Job[ImportArgs]) (string, error) {
	args := job.Args
	log := imp.deps.Logger.With(zap.String("case_id", args.CaseID), zap.String("domain", args.Domain),
		zap.Int64("job_id", job.ID))
	county, ok := imp.deps.Counties.Current().ByDomain(args.Domain)
	if !ok || !county.Participating {
		log.Warn("a forwarded case's domain is no participating county's any more; leaving it")
		return importLeft, imp.finish(ctx, job)
	}
	fips, err := county.FIPSCode()
	if err != nil {
		return importFailed, err
	}
	var fetched *commcare.Case // the case API's copy, once asked for
	// A few turns at most: a lost race to create the case, or a newer copy forwarded while the API was asked.
	for turn := 1; ; turn++ {
		out, err := imp.mergeOnce(ctx, job, fips, fetched)
		var need *needFetch
		switch {
		case err == nil:
			if out != importNothing {
				log.Debug("merged a forwarded case", zap.String("outcome", out))
			}
			return out, nil
		case turn == maxImportTurns:
			return importFailed, err
		case isUniqueViolation(err):
			// Polling (or another daemon) created the case or its person first: merge again, as a known case.
			continue
		case !errors.As(err, &need):
			return importFailed, err
		}
		var why string
		if fetched, why, err = imp.fetch(ctx, job, need.forwarded, log); err != nil {
			return why, err
		}
		if why == importLeft {
			return importLeft, imp.finish(ctx, job)
		}
	}
}

// maxImportTurns bounds the merges one attempt tries.
const maxImportTurns = 4

// mergeOnce runs mergeInbox in a transaction of its own.
func (imp *Importer) mergeOnce(ctx context.Context, job *river.Job[ImportArgs], fips int64,
	fetched *commcare.Case) (string, error) {
	tx, err := imp.deps.Pool.Begin(ctx)
	if err != nil {
		return "", fmt.Errorf("beginning a transaction: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck
	if imp.beforeLock != nil {
		imp.beforeLock()
	}
	out, err := imp.mergeInbox(ctx, tx, job, fips, fetched)
	if err != nil {
		return "", err
	}
	if imp.beforeCommit != nil {
		imp.beforeCommit()
	}
	if err := tx.Commit(ctx); err != nil {
		return "", fmt.Errorf("committing case %s: %w", job.Args.CaseID, err)
	}
	return out, nil
}

// needFetch: the forwarded copy lacks what creating the case needs; the API's copy must be at least as new.
type needFetch struct {
	forwarded *commcare.Case
}

func (n *needFetch) Error() string { return errNeedsFullCase.Error() }

// mergeInbox merges what the inbox holds for job's case, in tx, then deletes it and completes the job. fetched is
// the case API's copy when the job has one: merged instead of the forwarded copy unless that is newer.
func (imp *Importer) mergeInbox(ctx context.Context, tx pgx.Tx, job *river.Job[ImportArgs], fips int64,
	fetched *commcare.Case) (string, error) {
	var payload []byte
	err := tx.QueryRow(ctx, `SELECT payload FROM commcare_case_inbox WHERE domain = $1 AND case_id = $2 FOR UPDATE`,
		job.Args.Domain, job.Args.CaseID).Scan(&payload)
	if errors.Is(err, pgx.ErrNoRows) {
		return importNothing, completeJob(ctx, tx, job)
	}
	if err != nil {
		return "", fmt.Errorf("reading the forwarded case: %w", err)
	}
	var forwarded commcare.Case
	if err := json.Unmarshal(payload, &forwarded); err != nil {
		// The webhook decoded it before storing it; this cannot happen short of someone editing the row.
		return "", fmt.Errorf("decoding the forwarded case: %w", err)
	}
	forwarded.Domain = job.Args.Domain
	c, m, fetchable := &forwarded, imp.merger, true
	if fetched != nil && !newer(&forwarded, fetched) {
		// The API's copy includes the forwarded change, whoever changed the case since: not Viaduct's own post
		// coming back, since the change forwarded was not Viaduct's.
		c, m, fetchable = fetched, merger{}, false
	}
	out, err := m.mergeTx(ctx, tx, c, fips, fetchable)
	if errors.Is(err, errNeedsFullCase) {
		return "", &needFetch{forwarded: &forwarded}
	}
	if err != nil {
		return "", err
	}
	if _, err := tx.Exec(ctx, `DELETE FROM commcare_case_inbox WHERE domain = $1 AND case_id = $2`,
		job.Args.Domain, job.Args.CaseID); err != nil {
		return "", fmt.Errorf("deleting the merged case from the inbox: %w", err)
	}
	return outcomeName(out), completeJob(ctx, tx, job)
}

// completeJob completes job in tx, so that the job ends exactly when the inbox row it merged does.
func completeJob(ctx context.Context, tx pgx.Tx, job *river.Job[ImportArgs]) error {
	if _, err := river.JobCompleteTx[*riverpgxv5.Driver](ctx, tx, job); err != nil {
		return fmt.Errorf("completing the job: %w", err)
	}
	return nil
}

// fetch gets the case from CommCare's case API for a forwarded copy that lacks what creating it needs. While the
// API lags the forwarder (it has no copy, or an older one) or asks to slow down, it returns a snooze and why
// (importLagging, importRateLimited); once the API has lagged MaxLagWaits times, no case and importLeft.
func (imp *Importer) fetch(ctx context.Context, job *river.Job[ImportArgs], forwarded *commcare.Case,
	log *zap.Logger) (*commcare.Case, string, error) {
	got, err := imp.deps.CommCare.GetCase(ctx, job.Args.Domain, job.Args.CaseID)
	switch {
	case errors.Is(err, commcare.ErrRateLimited):
		wait := min(max(commcare.RetryAfter(err), time.Second), maxRateLimitSnooze)
		log.Debug("CommCare's case API asked to slow down; waiting", zap.Duration("wait", wait))
		return nil, importRateLimited, river.JobSnooze(wait)
	case errors.Is(err, commcare.ErrNotFound):
		got = nil
	case err != nil:
		return nil, importFailed, fmt.Errorf("getting the case from CommCare: %w", err)
	}
	if got != nil && !newer(forwarded, got) {
		got.Domain = job.Args.Domain
		return got, "", nil
	}
	if n := snoozes(job); n >= imp.config.MaxLagWaits {
		log.Warn("CommCare's case API is still behind its forwarder; leaving the case to polling", zap.Int("waits", n))
		return nil, importLeft, nil
	}
	log.Debug("CommCare's case API is behind its forwarder; waiting for it", zap.Duration("wait", imp.config.LagWait))
	return nil, importLagging, river.JobSnooze(imp.config.LagWait)
}

// finish deletes what the inbox holds for job's case and completes the job, for a case left to polling.
func (imp *Importer) finish(ctx context.Context, job *river.Job[ImportArgs]) error {
	tx, err := imp.deps.Pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("beginning a transaction: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck
	if _, err := tx.Exec(ctx, `DELETE FROM commcare_case_inbox WHERE domain = $1 AND case_id = $2`,
		job.Args.Domain, job.Args.CaseID); err != nil {
		return fmt.Errorf("deleting the case from the inbox: %w", err)
	}
	if err := completeJob(ctx, tx, job); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// newer reports whether a was changed after b, by date_modified; a copy without one is never newer.
func newer(a, b *commcare.Case) bool {
	ta, okA := dateModified(a)
	tb, okB := dateModified(b)
	return okA && (!okB || ta.After(tb))
}

// snoozes is how often River has snoozed job (its metadata's "snoozes").
func snoozes(job *river.Job[ImportArgs]) int {
	var meta struct {
		Snoozes int `json:"snoozes"`
	}
	_ = json.Unmarshal(job.Metadata, &meta)
	return meta.Snoozes
}

// outcomeName names a merge outcome as polling's metrics do.
func outcomeName(o outcome) string {
	switch o {
	case outcomeUpdated:
		return "updated"
	case outcomeUnchanged:
		return "unchanged"
	case outcomeCreated:
		return "created"
	case outcomeOwn:
		return "own_post"
	case outcomeStale:
		return importStale
	default:
		return "skipped"
	}
}
