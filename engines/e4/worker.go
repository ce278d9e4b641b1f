package e4

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"go.uber.org/zap"

	"github.com/viaduct-nys/viaduct/pkg/casedb"
	"github.com/viaduct-nys/viaduct/pkg/commcare"
	"github.com/viaduct-nys/viaduct/pkg/countylist"
)

// minSnooze and maxSnooze bound the wait after a 429: at least a second, as the original waited, and no more than
// an hour whatever Retry-After says, so a confused server cannot park a case for days.
const (
	minSnooze = time.Second
	maxSnooze = time.Hour
)

// recordTimeout bounds recording an outcome once the job's own context has ended.
const recordTimeout = 10 * time.Second

// dryRunResponse is recorded as the response of a post that was not made, as the original recorded it.
const dryRunResponse = "Sending to CommCare is not enabled"

// rateLimitedResponse is the response recorded for a post CommCare answered with 429: the job waits as asked.
const rateLimitedResponse = "rate_limited"

// database is where the worker reads and writes: the pool in production; in tests, a transaction that is rolled
// back, inside which the worker's own transactions become savepoints.
type database interface {
	casedb.DBTX
	Begin(ctx context.Context) (pgx.Tx, error)
}

// Worker works Engine 4's jobs.
type Worker struct {
	river.WorkerDefaults[casedb.CaseLoaderArgs]
	config   Config
	deps     Deps
	db       database
	commcare CommCare
	logger   *zap.Logger
	zone     *time.Location
	tally    tally
}

// newWorker returns the worker for config (already defaulted) and deps that uses db.
func newWorker(config Config, deps Deps, db database) (*Worker, error) {
	if deps.Logger == nil {
		deps.Logger = zap.NewNop()
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	zone, err := time.LoadLocation("America/New_York")
	if err != nil {
		return nil, fmt.Errorf("e4: loading New York's time zone: %w", err)
	}
	return &Worker{config: config, deps: deps, db: db, commcare: deps.CommCare, logger: deps.Logger, zone: zone}, nil
}

// Work hands one index case to CommCare (§5.2, §5.7): it follows the case's transfer chain, then creates or updates
// the case it ends at, in that case's domain. Its result tells River what next: nil completes the job, a snooze
// waits out a rate limit without spending an attempt, a cancel gives up on what can never succeed, and any other
// error is retried by RetryPolicy.
func (w *Worker) Work(ctx context.Context, job *river.Job[casedb.CaseLoaderArgs]) error {
	start := time.Now()
	outcome, err := w.work(ctx, job)
	if outcome == outcomeFailed && job.Attempt >= job.MaxAttempts {
		outcome = outcomeDiscarded
	}
	w.logFailure(ctx, job, outcome, err)
	w.deps.Metrics.observeJob(outcome, time.Since(start))
	w.tally.add(outcome)
	return err
}

// logFailure logs an attempt that failed, once: River's own line for it is lowered to Debug by the daemon, so this
// is the one line per retry, with when the next attempt comes. A stop (the daemon shutting down, the job's
// timeout while stopping) is not a failure: River makes the job available again.
func (w *Worker) logFailure(ctx context.Context, job *river.Job[casedb.CaseLoaderArgs], out outcome, err error) {
	if err == nil || errors.Is(ctx.Err(), context.Canceled) {
		return
	}
	fields := []zap.Field{zap.String("case_id", job.Args.CaseID), zap.Int64("county_id", job.Args.CountyID),
		zap.Int64("job_id", job.ID), zap.Int("attempt", job.Attempt), zap.Int("max_attempts", job.MaxAttempts),
		zap.Error(err)}
	switch out {
	case outcomeFailed:
		// River adds up to 10% either way (RetryPolicy.NextRetry); the nominal wait is what an operator needs.
		wait := w.config.Retry.Delay(job.Attempt)
		w.logger.Warn("case loader attempt failed; retrying", append(fields, zap.Duration("retry_in", wait),
			zap.Time("next_attempt_at", time.Now().Add(wait).UTC().Truncate(time.Second)))...)
	case outcomeDiscarded:
		w.logger.Error("case loader attempt failed, the last one: giving the case up until it changes again",
			fields...)
	}
}

// outcome names how a job attempt ended, for metrics and logs.
type outcome string

const (
	outcomePosted    outcome = "posted"
	outcomeUnchanged outcome = "unchanged"
	outcomeDryRun    outcome = "dry_run"
	outcomeSnoozed   outcome = "snoozed"
	outcomeCancelled outcome = "cancelled"
	outcomeFailed    outcome = "failed"
	// outcomeDiscarded is a failed last attempt: River discards the job.
	outcomeDiscarded outcome = "discarded"
)

func (w *Worker) work(ctx context.Context, job *river.Job[casedb.CaseLoaderArgs]) (outcome, error) {
	args := job.Args
	log := w.logger.WithLazy(zap.String("case_id", args.CaseID), zap.Int64("county_id", args.CountyID),
		zap.Int64("job_id", job.ID), zap.Int("attempt", job.Attempt))
	counties := w.deps.Counties.Current()
	county, resolution, err := counties.Resolve(args.CountyID)
	if err != nil || resolution == countylist.NonParticipating {
		// The list may change back; the original retried too.
		if err == nil {
			err = fmt.Errorf("county %d does not participate", args.CountyID)
		}
		return outcomeFailed, fmt.Errorf("the case's county has no CommCare domain: %w", err)
	}
	// Read with what posting it takes, as a case CommCare lacks is posted as it is read here.
	source, err := findCaseToPost(ctx, w.db, args.CaseID, county.Domain)
	if errors.Is(err, errCaseMissing) {
		log.Error("the job names an index case that does not exist; cancelling it")
		return outcomeCancelled, river.JobCancel(err)
	}
	if err != nil {
		return outcomeFailed, err
	}

	ch := w.followTransfers(ctx, counties, identifier{caseID: source.caseID, domain: county.Domain})
	end := ch.end()
	switch {
	case end.kind == linkNotFound && !ch.transferred():
		return w.postCase(ctx, job, log, source.indexCase, source, county, actionCreate)
	case end.kind == linkFound && !ch.transferred():
		target, err := w.mergeFromCommCare(ctx, source.id, county.Domain, end.c, log)
		if err != nil {
			return outcomeFailed, err
		}
		return w.postCase(ctx, job, log, source.indexCase, target, county, actionUpdate)
	case end.kind == linkNotFound:
		return outcomeFailed, fmt.Errorf("CommCare case %s in %s was transferred but the target case was not found in %s",
			source.caseID, county.Domain, end.domain)
	case end.kind == linkFound:
		return w.transfer(ctx, job, log, counties, source.indexCase, ch)
	case end.kind == linkCycle:
		log.Error("case transfer cycle detected; cancelling the job", zap.Error(end.err))
		if _, err := casedb.RecordEvent(ctx, w.db, source.id, casedb.EventSendToCommCareDiscarded,
			map[string]any{"reason": "cycle_detected", "detail": end.err.Error(), "job_id": job.ID}, ""); err != nil {
			return outcomeFailed, err
		}
		return outcomeCancelled, river.JobCancel(end.err)
	case errors.Is(end.err, commcare.ErrRateLimited):
		d := snooze(end.err)
		log.Debug("CommCare is rate limiting; snoozing the job", zap.Duration("snooze", d))
		return outcomeSnoozed, river.JobSnooze(d)
	case commcare.IsPermanent(end.err):
		// A 4xx other than 404 (not found: created above), 401, 403 and the like: asking again gets the same answer.
		log.Error("CommCare rejected a lookup for good; cancelling the job", zap.Error(end.err))
		if _, err := casedb.RecordEvent(ctx, w.db, source.id, casedb.EventSendToCommCareDiscarded,
			map[string]any{"reason": end.err.Error(), "domain": end.domain, "job_id": job.ID}, ""); err != nil {
			return outcomeFailed, err
		}
		return outcomeCancelled, river.JobCancel(end.err)
	default:
		return outcomeFailed, fmt.Errorf("following the case's transfer chain: %w", end.err)
	}
}

// snooze is how long to wait after a 429: what Retry-After asked, within bounds.
func snooze(err error) time.Duration {
	return min(max(commcare.RetryAfter(err), minSnooze), maxSnooze)
}

// action says whether a post creates the case in CommCare or updates it.
type action string

const (
	actionCreate action = "create"
	actionUpdate action = "update"
)

// post reads target again, with its newest change, its lab results and its last post to county's domain, and posts
// it (postCase).
func (w *Worker) post(ctx context.Context, job *river.Job[casedb.CaseLoaderArgs], log *zap.Logger,
	source, target *indexCase, county countylist.County, act action) (outcome, error) {
	c, err := loadCaseToPost(ctx, w.db, target.id, county.Domain)
	if err != nil {
		return outcomeFailed, err
	}
	return w.postCase(ctx, job, log, source, c, county, act)
}

// postCase sends c, with its lab results, to county's domain, and records the outcome on c. job's case is source (c
// itself, or the case it was transferred from), as read when the job began. c was read after the job began,
// with its newest change: a case CommCare lacks as the job began, one CommCare has under its person's lock as
// CommCare's values were merged into it, a transfer's destination after the transfer was recorded. So what is
// posted is at least as new as the change handed off, and finish posts again what changed since.
func (w *Worker) postCase(ctx context.Context, job *river.Job[casedb.CaseLoaderArgs], log *zap.Logger,
	source *indexCase, c *caseToPost, county countylist.County, act action) (outcome, error) {
	target := c.indexCase
	now := w.deps.Now().UTC().Truncate(time.Second)
	p, err := w.buildForm(c, county, now)
	if err != nil {
		// A property name no XML element can have: the same data fails every time.
		log.Error("the case cannot be written as a CommCare form; cancelling the job", zap.Error(err))
		if _, rerr := casedb.RecordEvent(ctx, w.db, target.id, casedb.EventSendToCommCareDiscarded,
			map[string]any{"action": act, "reason": err.Error(), "domain": county.Domain, "job_id": job.ID}, ""); rerr != nil {
			return outcomeFailed, rerr
		}
		return outcomeCancelled, river.JobCancel(err)
	}
	log = log.WithLazy(zap.String("domain", county.Domain), zap.String("action", string(act)),
		zap.Int("lab_results", len(c.labs)))

	// Only an update can be skipped: a case CommCare lacks is created whatever was posted before (CommCare may
	// have lost it, e.g. when its form was archived).
	if c.posted && c.lastSum == p.fingerprint && act == actionUpdate {
		data := eventData(act, county, now)
		data["skipped"] = "unchanged since the last successful post to " + county.Domain + " at " +
			c.lastAt.UTC().Format(time.RFC3339)
		log.Debug("the case is unchanged since its last post; not posting it again")
		return w.finish(ctx, job, source, target, county, data, "", nil, outcomeUnchanged)
	}

	if w.config.DryRun {
		data := eventData(act, county, now)
		data["response"] = dryRunResponse
		data["status"] = 900
		log.Debug("posting is switched off; recorded the case as sent without posting it")
		return w.finish(ctx, job, source, target, county, data, string(p.xml), nil, outcomeDryRun)
	}

	res, err := w.commcare.SubmitForm(ctx, county.Domain, p.xml)
	if err != nil {
		return w.failed(ctx, log, job.ID, target, county, act, now, string(p.xml), err)
	}
	data := eventData(act, county, now)
	data["response"] = res.Body
	log.Debug("case sent to CommCare")
	return w.finish(ctx, job, source, target, county, data, string(p.xml), &p.fingerprint, outcomePosted)
}

// eventData is what every post event records.
func eventData(act action, county countylist.County, now time.Time) map[string]any {
	return map[string]any{"action": act, "domain": county.Domain, "timestamp": now.Format(time.RFC3339)}
}

// finish records the post of target as succeeded and, with fp, as the payload now in CommCare, and completes the
// job in the same transaction. It holds the people's locks, as every writer of a person's cases does, so that a
// change committed before it is seen below and one committed after it gets a later event id. If target, or source
// on a transfer, changed after it was read, the job is run again at once instead of completed: Engine 3 would not
// requeue a case whose newest hand-off is this one, and the change must reach CommCare. The outcome is recorded
// even when ctx has just ended (the job timed out or the daemon is stopping): the post went through, and
// forgetting it would post it again.
func (w *Worker) finish(ctx context.Context, job *river.Job[casedb.CaseLoaderArgs], source, target *indexCase,
	county countylist.County, data map[string]any, stash string, fp *[32]byte, out outcome) (outcome, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
	defer cancel()
	tx, err := w.db.Begin(ctx)
	if err != nil {
		return outcomeFailed, fmt.Errorf("beginning a transaction: %w", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck
	if err := casedb.LockPeople(ctx, tx, []int64{source.personID, target.personID}); err != nil {
		return outcomeFailed, err
	}
	again, err := recordSuccess(ctx, tx, source, target, county.Domain, data, stash, fp, w.deps.Now())
	if err != nil {
		return outcomeFailed, err
	}
	if !again {
		if _, err := river.JobCompleteTx[*riverpgxv5.Driver](ctx, tx, job); err != nil {
			return outcomeFailed, fmt.Errorf("completing the job: %w", err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return outcomeFailed, fmt.Errorf("committing the post's outcome: %w", err)
	}
	if again {
		w.logger.Debug("the case changed while it was being sent; sending it again", zap.String("case_id", source.caseID))
		return out, river.JobSnooze(0)
	}
	return out, nil
}

// failed records a post that CommCare did not accept and decides what becomes of the job: a 429 snoozes it, an
// answer that can never change cancels it, anything else is retried.
func (w *Worker) failed(ctx context.Context, log *zap.Logger, jobID int64, target *indexCase, county countylist.County,
	act action, now time.Time, stash string, postErr error) (outcome, error) {
	data := eventData(act, county, now)
	data["job_id"] = jobID // the status page links the failure to its job
	var httpErr *commcare.HTTPError
	if errors.As(postErr, &httpErr) {
		data["status"] = httpErr.StatusCode
		data["response"] = httpErr.Body
	} else {
		data["response"] = postErr.Error()
	}
	typ, out := casedb.EventSendToCommCareFailed, outcomeFailed
	var result error
	switch {
	case errors.Is(postErr, commcare.ErrRateLimited):
		d := snooze(postErr)
		data["response"] = rateLimitedResponse
		data["snoozed"] = d.String()
		out, result = outcomeSnoozed, river.JobSnooze(d)
		log.Debug("CommCare is rate limiting; snoozing the job", zap.Duration("snooze", d))
	case commcare.IsPermanent(postErr):
		data["reason"] = postErr.Error()
		typ, out, result = casedb.EventSendToCommCareDiscarded, outcomeCancelled, river.JobCancel(postErr)
		log.Error("CommCare rejected the case for good; cancelling the job", zap.Error(postErr))
	default:
		result = fmt.Errorf("posting the case to %s: %w", county.Domain, postErr)
	}
	// Recorded even when ctx is done (a timeout): the attempt happened.
	recordCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
	defer cancel()
	if _, err := casedb.RecordEvent(recordCtx, w.db, target.id, typ, data, stash); err != nil {
		return outcomeFailed, errors.Join(postErr, err)
	}
	return out, result
}

// mergeFromCommCare merges the case CommCare holds into the local index case (§5.8) under the person's lock:
// CommCare's values win where it has them, so an update never overwrites a contact tracer's edit; local values
// fill CommCare's blanks. A change is recorded as updated_from_commcare. It returns the case as stored, with what
// posting it to domain takes, read under the lock.
func (w *Worker) mergeFromCommCare(ctx context.Context, id int64, domain string, c *commcare.Case, log *zap.Logger) (*caseToPost, error) {
	tx, err := w.db.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("beginning a transaction: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck
	if err := casedb.LockIndexCase(ctx, tx, id); err != nil {
		return nil, err
	}
	ic, err := loadCaseToPost(ctx, tx, id, domain)
	if err != nil {
		return nil, err
	}
	changed, err := applyCommCare(ctx, tx, ic.indexCase, c)
	if err != nil {
		return nil, err
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("committing the merge from CommCare: %w", err)
	}
	if len(changed) > 0 {
		log.Debug("merged CommCare's values into the index case", zap.Int("properties_changed", len(changed)))
	}
	return ic, nil
}

// applyCommCare merges c into ic, which the caller has locked (casedb.MergeIntoIndexCase), and updates ic.
func applyCommCare(ctx context.Context, tx pgx.Tx, ic *indexCase, c *commcare.Case) ([]string, error) {
	merged, changed, err := casedb.MergeIntoIndexCase(ctx, tx, ic.id, ic.data, ic.closed, c)
	if err != nil {
		return nil, err
	}
	ic.data, ic.closed = merged, c.Closed
	return changed, nil
}
