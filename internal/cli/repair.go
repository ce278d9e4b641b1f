package cli

// The repairs: what an operator once did with hand-written SQL, as commands. Each reads what it would change and
// prints it first, does more than a handful only with --yes, changes nothing with --dry-run, and records who asked
// and why as an event on every row it changes, in the transaction that changes it.
//
//	viaduct retry e2     failed test results made ready for Engine 2 again      retry_requested
//	viaduct resend       index cases handed to Engine 4 again                   resend_requested, send_to_commcare_enqueued
//	viaduct reimport     failed files set importing again, for Engine 1         reimport_requested

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os/user"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"

	"github.com/viaduct-nys/viaduct/pkg/casedb"
	"github.com/viaduct-nys/viaduct/pkg/daemons"
	"github.com/viaduct-nys/viaduct/pkg/eclrs"
)

// repairHandful is how many items a repair changes without --yes: more is likely a --since too early or a domain
// too wide, and is worth a second look at the plan.
const repairHandful = 10

// repairListed is how many items a plan lists one by one; the rest are counted.
const repairListed = 20

// errNotConfirmed is returned by a repair that needs --yes; the command exits 2 and changes nothing.
var errNotConfirmed = errors.New("--yes needed")

// repairOptions are the flags every repair has: who asked and why, recorded in its events, and whether to go ahead.
type repairOptions struct {
	By     string
	Reason string
	Yes    bool
	DryRun bool
}

func addRepair(s *OptionSet, c *Config, r *repairOptions) {
	addDatabase(s, c)
	s.String(&r.By, "by", "", osUser(), "Who asked: recorded in the events (default: the operating system user).")
	s.String(&r.Reason, "reason", "", "", "Why: recorded in the events.")
	s.Bool(&r.Yes, "yes", "", false, fmt.Sprintf("Go ahead with more than %d items.", repairHandful))
	s.Bool(&r.DryRun, "dry-run", "", false, "Print what would be done and change nothing.")
	s.Check(func() error {
		if strings.TrimSpace(r.By) == "" {
			return errors.New("--by must name who asked")
		}
		return nil
	})
}

// osUser is the login of the user running the command, or "unknown".
func osUser() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	return "unknown"
}

// asked describes who asked and why, for a plan's first line.
func (r *repairOptions) asked() string {
	if r.Reason == "" {
		return "asked by " + r.By
	}
	return fmt.Sprintf("asked by %s: %s", r.By, r.Reason)
}

// eventData is a repair event's data: who asked, why, and what the repair adds.
func (r *repairOptions) eventData(extra map[string]any) ([]byte, error) {
	data := map[string]any{"by": r.By}
	if r.Reason != "" {
		data["reason"] = r.Reason
	}
	for k, v := range extra {
		data[k] = v
	}
	return json.Marshal(data)
}

// proceed ends a plan of n items: it says whether to carry it out, which a dry run never does, and which beyond a
// handful needs --yes.
func (r *repairOptions) proceed(w io.Writer, n int, items string) (bool, error) {
	switch {
	case r.DryRun:
		fmt.Fprintln(w, "Dry run: nothing changed.")
		return false, nil
	case n > repairHandful && !r.Yes:
		return false, fmt.Errorf("%w: %d %s are more than %d; check the list above, then run the same command with --yes",
			errNotConfirmed, n, items, repairHandful)
	}
	return true, nil
}

// noteIdle says so when no live daemon runs engine (e1 …): what the repair hands it waits until one does.
func noteIdle(ctx context.Context, db daemons.DBTX, w io.Writer, engine, name string) error {
	ds, err := daemons.List(ctx, db)
	if err != nil {
		return err
	}
	if len(daemons.Running(ds, engine)) == 0 {
		fmt.Fprintf(w, "Note: no live daemon runs %s (viaduct run --%s); this waits until one does.\n", name, engine)
	}
	return nil
}

// parseSince reads --since: an RFC 3339 time, a date (midnight UTC, as --e2-ignore-before reads one), or a duration
// back from now.
func parseSince(v string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, v); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(v); err == nil && d > 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("--since %q: use an RFC 3339 time (2026-11-20T09:30:00Z), a date (2026-11-20, "+
		"midnight UTC) or a duration back from now (36h)", v)
}

// parseIDs reads a comma-separated list of positive ids.
func parseIDs(flag, v string) ([]int64, error) {
	var ids []int64
	for f := range strings.SplitSeq(v, ",") {
		id, err := strconv.ParseInt(strings.TrimSpace(f), 10, 64)
		if err != nil || id <= 0 {
			return nil, fmt.Errorf("--%s %q: use ids (positive numbers), comma-separated", flag, v)
		}
		ids = append(ids, id)
	}
	return ids, nil
}

// listed writes at most repairListed rows through a tabwriter, then how many were left out.
func listed[T any](w io.Writer, header string, items []T, row func(T) string) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  "+header)
	for _, it := range items[:min(len(items), repairListed)] {
		fmt.Fprintln(tw, "  "+row(it))
	}
	_ = tw.Flush()
	if len(items) > repairListed {
		fmt.Fprintf(w, "  … and %d more\n", len(items)-repairListed)
	}
}

// repairTime is how a plan shows a time.
func repairTime(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// --- viaduct retry e2 ---

func runRetry(ctx context.Context, args []string, getenv func(string) string, stdout, _ io.Writer) error {
	var c Config
	var r repairOptions
	var since, only string
	var sinceT time.Time
	var ids []int64
	s := NewOptionSet("retry", "e2 [--since T] [--test-result ID,…] [--reason TEXT] [--yes] [flags]",
		"Make the test results Engine 2 gave up on (processing_failed) ready again, once the cause is fixed: each gets\n"+
			"a retry_requested event with who asked and why, and waits in test_result_attempts, due at once and with\n"+
			"every attempt again, so that Engine 2 claims it at its next pass. The processing_failed event stays as\n"+
			"history. More than 10 results need --yes.", getenv)
	addRepair(s, &c, &r)
	s.String(&since, "since", "", "", "Only results that failed at or after this: an RFC 3339 time, a date (midnight UTC) or a duration back from now (36h).")
	s.String(&only, "test-result", "", "", "Only these test results (ids, comma-separated).")
	args, rest := s.interspersed(args)
	s.Check(func() error {
		var errs []error
		var target string
		if len(rest) > 0 {
			target, rest = rest[0], rest[1:]
		}
		switch {
		case target == "":
			errs = append(errs, errors.New("retry what? `viaduct retry e2` retries Engine 2's failed test results "+
				"(Engine 4's cases are sent again with `viaduct resend`)"))
		case target != "e2":
			errs = append(errs, fmt.Errorf("cannot retry %q: only e2 (Engine 2's failed test results); Engine 4's cases "+
				"are sent again with `viaduct resend`, failed files imported again with `viaduct reimport`", target))
		}
		if len(rest) > 0 {
			errs = append(errs, fmt.Errorf("unexpected argument %q", rest[0]))
		}
		var err error
		if since != "" {
			if sinceT, err = parseSince(since, time.Now()); err != nil {
				errs = append(errs, err)
			}
		}
		if only != "" {
			if ids, err = parseIDs("test-result", only); err != nil {
				errs = append(errs, err)
			}
		}
		return errors.Join(errs...)
	})
	if err := s.Parse(args, stdout); err != nil {
		return UsageError(err)
	}
	pool, err := openCurrentPool(ctx, c.DatabaseURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	return retryE2(ctx, pool, stdout, &r, sinceT, ids)
}

// failedResult is a test result Engine 2 gave up on, with its final processing_failed event.
type failedResult struct {
	id, fileID, line, eventID int64
	failedAt                  time.Time
	reason                    string
}

func retryE2(ctx context.Context, pool *pgxpool.Pool, w io.Writer, r *repairOptions, since time.Time, ids []int64) error {
	var sinceArg *time.Time
	if !since.IsZero() {
		sinceArg = &since
	}
	// From the events by type and time (an index), to their join rows by event id (the key): it costs what failed,
	// not what the history holds.
	rows, err := pool.Query(ctx, `SELECT tr.id, tr.file_id, coalesce(tr.line_number, 0), e.id, e.inserted_at,
		       coalesce(e.data->>'reason', '')
		  FROM events e JOIN test_result_events j ON j.event_id = e.id JOIN test_results tr ON tr.id = j.test_result_id
		 WHERE e.type = $1 AND j.finished AND ($2::timestamptz IS NULL OR e.inserted_at >= $2)
		   AND ($3::bigint[] IS NULL OR tr.id = ANY($3))
		 ORDER BY tr.id`, eclrs.EventProcessingFailed, sinceArg, ids)
	if err != nil {
		return fmt.Errorf("reading the failed test results: %w", err)
	}
	failed, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (failedResult, error) {
		var f failedResult
		err := row.Scan(&f.id, &f.fileID, &f.line, &f.eventID, &f.failedAt, &f.reason)
		return f, err
	})
	if err != nil {
		return fmt.Errorf("reading the failed test results: %w", err)
	}
	if len(ids) > 0 {
		var missing []string
		for _, id := range ids {
			if !slices.ContainsFunc(failed, func(f failedResult) bool { return f.id == id }) {
				missing = append(missing, strconv.FormatInt(id, 10))
			}
		}
		if len(missing) > 0 {
			return fmt.Errorf("not failed (no processing_failed event that finished them%s), so nothing to retry: "+
				"test result %s; `viaduct trace` shows what became of each", sinceNote(since), strings.Join(missing, ", "))
		}
	}
	if len(failed) == 0 {
		fmt.Fprintf(w, "No failed test results%s: nothing to retry.\n", sinceNote(since))
		return nil
	}

	fmt.Fprintf(w, "Engine 2 is to take %d failed test result%s%s again (%s):\n", len(failed), plural(len(failed)),
		sinceNote(since), r.asked())
	listed(w, "TEST RESULT\tFILE\tLINE\tFAILED AT\tREASON", failed, func(f failedResult) string {
		return fmt.Sprintf("%d\t%d\t%d\t%s\t%s", f.id, f.fileID, f.line, repairTime(f.failedAt), f.reason)
	})
	if err := noteIdle(ctx, pool, w, "e2", "Engine 2"); err != nil {
		return err
	}
	if ok, err := r.proceed(w, len(failed), "failed test results"); !ok || err != nil {
		return err
	}

	data, err := r.eventData(nil)
	if err != nil {
		return err
	}
	n, err := retryFailed(ctx, pool, failed, data)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "Done: %d test result%s ready for Engine 2 again (%s recorded on each).\n", n, plural(n),
		eclrs.EventRetryRequested)
	if n < len(failed) {
		fmt.Fprintf(w, "%d had been retried by someone else meanwhile.\n", len(failed)-n)
	}
	return nil
}

// sinceNote is " since T", or "" without --since.
func sinceNote(since time.Time) string {
	if since.IsZero() {
		return ""
	}
	return " since " + repairTime(since)
}

// retryFailed makes the failed results ready again in one transaction and returns how many it changed. Un-finishing
// the processing_failed event's join row takes it off the rule that finished them (unfinished in engines/e2); the
// test_result_attempts row, due now with no attempt spent, is where Engine 2 claims a result below its claim floor,
// which a failed result usually is. A result another retry took meanwhile is left alone (its join row is no longer
// finished). The NOTIFY wakes idle Engine 2 workers, as Engine 1's does.
func retryFailed(ctx context.Context, pool *pgxpool.Pool, failed []failedResult, data []byte) (int, error) {
	eventIDs := make([]int64, len(failed))
	reasons := map[int64]string{}
	for i, f := range failed {
		eventIDs[i] = f.eventID
		reasons[f.eventID] = f.reason
	}
	var n int
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `UPDATE test_result_events SET finished = false WHERE event_id = ANY($1) AND finished
			RETURNING test_result_id, event_id`, eventIDs)
		if err != nil {
			return fmt.Errorf("un-finishing the failed test results: %w", err)
		}
		var results, failedEvents []int64
		var lastErrors []string
		var result, event int64
		if _, err := pgx.ForEachRow(rows, []any{&result, &event}, func() error {
			results, failedEvents = append(results, result), append(failedEvents, event)
			lastErrors = append(lastErrors, reasons[event])
			return nil
		}); err != nil {
			return fmt.Errorf("un-finishing the failed test results: %w", err)
		}
		if len(results) == 0 {
			return nil
		}
		if _, err := tx.Exec(ctx, `INSERT INTO test_result_attempts (test_result_id, attempts, last_error, next_attempt_at)
			SELECT t, 0, e, now() FROM unnest($1::bigint[], $2::text[]) AS u(t, e)
			ON CONFLICT (test_result_id) DO UPDATE
			   SET attempts = 0, last_error = excluded.last_error, next_attempt_at = now(), updated_at = now()`,
			results, lastErrors); err != nil {
			return fmt.Errorf("queueing the retries: %w", err)
		}
		if _, err := tx.Exec(ctx, `WITH ids AS (SELECT t, f, nextval('events_id_seq') AS e
		                                       FROM unnest($2::bigint[], $3::bigint[]) AS u(t, f)),
			     ev AS (INSERT INTO events (id, type, data)
			            SELECT e, $1, $4::jsonb || jsonb_build_object('failed_event_id', f) FROM ids)
			INSERT INTO test_result_events (test_result_id, event_id) SELECT t, e FROM ids`,
			eclrs.EventRetryRequested, results, failedEvents, string(data)); err != nil {
			return fmt.Errorf("recording the retries: %w", err)
		}
		if _, err := tx.Exec(ctx, `SELECT pg_notify($1, 'retry')`, eclrs.NotifyChannel); err != nil {
			return fmt.Errorf("waking Engine 2: %w", err)
		}
		n = len(results)
		return nil
	})
	return n, err
}

// --- viaduct resend ---

func runResend(ctx context.Context, args []string, getenv func(string) string, stdout, _ io.Writer) error {
	var c Config
	var r repairOptions
	var caseIDs, domain, since string
	var sinceT time.Time
	s := NewOptionSet("resend", "(--case-id ID,… | --domain DOMAIN --since T) [--reason TEXT] [--yes] [flags]",
		"Hand index cases to Engine 4 again, as Engine 3 hands a changed case: a River job and a\n"+
			"send_to_commcare_enqueued event in one transaction, with a resend_requested event saying who asked and why.\n"+
			"A case whose job waits to retry has it run now; one whose job is waiting or running has nothing added (the\n"+
			"job sends the case's newest data). Engine 4 then posts the case as it posts any: one CommCare lacks is\n"+
			"created; one unchanged since its last accepted post is not posted again. --domain needs the county list\n"+
			"(--county-list-file, or --commcare-url and --commcare-api-key) to find the domain's county, and takes its\n"+
			"index cases with an event (created, changed, handed off, posted, merged) since --since. More than 10 cases\n"+
			"need --yes.", getenv)
	addRepair(s, &c, &r)
	addCommCare(s, &c)
	s.String(&caseIDs, "case-id", "", "", "The index cases to send (their CommCare case ids, comma-separated).")
	s.String(&domain, "domain", "", "", "Every index case of this CommCare domain's county with an event since --since.")
	s.String(&since, "since", "", "", "With --domain: an RFC 3339 time, a date (midnight UTC) or a duration back from now (36h).")
	s.Check(func() error {
		var errs []error
		switch {
		case caseIDs != "" && domain != "":
			errs = append(errs, errors.New("--case-id and --domain: give one or the other"))
		case caseIDs == "" && domain == "":
			errs = append(errs, errors.New("name the cases: --case-id ID[,ID…], or --domain DOMAIN --since T"))
		case domain != "" && since == "":
			errs = append(errs, errors.New("--domain needs --since: the cases with an event since then are sent"))
		case caseIDs != "" && since != "":
			errs = append(errs, errors.New("--since goes with --domain; --case-id sends the cases named"))
		}
		if domain != "" && c.CountyListFile == "" && (c.CommCareURL == "" || c.CommCareCredentials == "") {
			errs = append(errs, errors.New("--domain needs the county list, to find the domain's county: "+
				"--county-list-file (VIADUCT_COUNTY_LIST_FILE), or --commcare-url and --commcare-api-key "+
				"(COMMCARE_BASE_URL, COMMCARE_API_KEY_CREDENTIALS)"))
		}
		if since != "" {
			var err error
			if sinceT, err = parseSince(since, time.Now()); err != nil {
				errs = append(errs, err)
			}
		}
		if rest := s.fs.Args(); len(rest) > 0 {
			errs = append(errs, fmt.Errorf("unexpected argument %q", rest[0]))
		}
		return errors.Join(errs...)
	})
	if err := s.Parse(args, stdout); err != nil {
		return UsageError(err)
	}
	pool, err := openCurrentPool(ctx, c.DatabaseURL)
	if err != nil {
		return err
	}
	defer pool.Close()

	var cases []resendCase
	var what string
	if domain != "" {
		source, err := c.countySource()
		if err != nil {
			return err
		}
		list, err := source.FetchCounties(ctx)
		if err != nil {
			return fmt.Errorf("reading the county list: %w", err)
		}
		county, ok := list.ByDomain(domain)
		if !ok {
			return fmt.Errorf("no county in the county list has the domain %q", domain)
		}
		fips, err := county.FIPSCode()
		if err != nil {
			return err
		}
		if cases, err = domainCases(ctx, pool, fips, sinceT); err != nil {
			return err
		}
		what = fmt.Sprintf(" of %s (county %d) with an event since %s", domain, fips, repairTime(sinceT))
	} else {
		var ids []string
		for id := range strings.SplitSeq(caseIDs, ",") {
			if id = strings.TrimSpace(id); id != "" && !slices.Contains(ids, id) {
				ids = append(ids, id)
			}
		}
		if cases, err = namedCases(ctx, pool, ids); err != nil {
			return err
		}
	}
	return resend(ctx, pool, stdout, &r, cases, what)
}

// resendCase is an index case to hand to Engine 4 again, with its live job, if any.
type resendCase struct {
	id       int64
	caseID   string
	countyID int64
	job      *rivertype.JobRow // nil when the case has no job waiting, running or retrying
}

// namedCases reads the index cases with these CommCare case ids; a case id no index case has is an error.
func namedCases(ctx context.Context, db casedb.DBTX, caseIDs []string) ([]resendCase, error) {
	cases, err := readCases(ctx, db, `SELECT id, case_id, county_id FROM index_cases WHERE case_id = ANY($1) ORDER BY id`, caseIDs)
	if err != nil {
		return nil, err
	}
	var missing []string
	for _, id := range caseIDs {
		if !slices.ContainsFunc(cases, func(c resendCase) bool { return c.caseID == id }) {
			missing = append(missing, id)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("no index case has the CommCare case id %s", strings.Join(missing, ", "))
	}
	return cases, nil
}

// domainCases reads the index cases of county fips with an event since since. It reads the county's cases and
// each one's events through their keys: seconds for a county of a hundred thousand cases, which a repair can afford.
func domainCases(ctx context.Context, db casedb.DBTX, fips int64, since time.Time) ([]resendCase, error) {
	return readCases(ctx, db, `SELECT ic.id, ic.case_id, ic.county_id FROM index_cases ic
		 WHERE ic.county_id = $1
		   AND EXISTS (SELECT 1 FROM index_case_events j JOIN events e ON e.id = j.event_id
		                WHERE j.index_case_id = ic.id AND e.inserted_at >= $2)
		 ORDER BY ic.id`, fips, since)
}

func readCases(ctx context.Context, db casedb.DBTX, query string, args ...any) ([]resendCase, error) {
	rows, err := db.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("reading the index cases: %w", err)
	}
	cases, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (resendCase, error) {
		var c resendCase
		err := row.Scan(&c.id, &c.caseID, &c.countyID)
		return c, err
	})
	if err != nil {
		return nil, fmt.Errorf("reading the index cases: %w", err)
	}
	if len(cases) == 0 {
		return cases, nil
	}
	// The cases' live jobs, for the plan: one read of River's unfinished jobs.
	ids := make([]string, len(cases))
	for i := range cases {
		ids[i] = cases[i].caseID
	}
	rows, err = db.Query(ctx, `SELECT DISTINCT ON (args->>'case_id') args->>'case_id', id, state, attempt, scheduled_at
		  FROM river_job WHERE kind = $1 AND args->>'case_id' = ANY($2)
		   AND state IN ('available', 'pending', 'running', 'retryable', 'scheduled')
		 ORDER BY args->>'case_id', id DESC`, casedb.CaseLoaderArgs{}.Kind(), ids)
	if err != nil {
		return nil, fmt.Errorf("reading the cases' jobs: %w", err)
	}
	jobs := map[string]*rivertype.JobRow{}
	var caseID string
	var job rivertype.JobRow
	if _, err := pgx.ForEachRow(rows, []any{&caseID, &job.ID, &job.State, &job.Attempt, &job.ScheduledAt}, func() error {
		j := job
		jobs[caseID] = &j
		return nil
	}); err != nil {
		return nil, fmt.Errorf("reading the cases' jobs: %w", err)
	}
	for i := range cases {
		cases[i].job = jobs[cases[i].caseID]
	}
	return cases, nil
}

// What a resend does with a case's job, recorded in resend_requested's data (job).
const (
	resendQueued  = "queued"  // a new job
	resendWaiting = "waiting" // the job is waiting (or scheduled: a rate limit CommCare asked to wait out): it sends the newest data
	resendDueNow  = "due_now" // the job was waiting to retry: it runs now
	resendRunning = "running" // the job is running: it posts the case now; no hand-off is recorded
)

// resendAction is what a resend does with a case whose live job is in state (nil: none).
func resendAction(job *rivertype.JobRow) string {
	switch {
	case job == nil:
		return resendQueued
	case job.State == rivertype.JobStateRunning:
		return resendRunning
	case job.State == rivertype.JobStateRetryable:
		return resendDueNow
	default:
		return resendWaiting
	}
}

// resendPlanned says what will become of a case's job.
func resendPlanned(job *rivertype.JobRow) string {
	switch resendAction(job) {
	case resendQueued:
		return "a new job"
	case resendRunning:
		return fmt.Sprintf("job %d is running: it posts the case now", job.ID)
	case resendDueNow:
		return fmt.Sprintf("job %d waits to retry (attempt %d, due %s): run it now", job.ID, job.Attempt+1,
			repairTime(job.ScheduledAt))
	default:
		return fmt.Sprintf("job %d is %s (due %s): it sends the newest data", job.ID, job.State, repairTime(job.ScheduledAt))
	}
}

// resendBatch is how many cases one transaction hands off.
const resendBatch = 500

func resend(ctx context.Context, pool *pgxpool.Pool, w io.Writer, r *repairOptions, cases []resendCase, what string) error {
	if len(cases) == 0 {
		fmt.Fprintf(w, "No index cases%s: nothing to send.\n", what)
		return nil
	}
	fmt.Fprintf(w, "Engine 4 is to send %d index case%s%s again (%s):\n", len(cases), plural(len(cases)), what, r.asked())
	listed(w, "INDEX CASE\tCOMMCARE CASE\tCOUNTY\tJOB", cases, func(c resendCase) string {
		return fmt.Sprintf("%d\t%s\t%d\t%s", c.id, c.caseID, c.countyID, resendPlanned(c.job))
	})
	if err := noteIdle(ctx, pool, w, "e4", "Engine 4"); err != nil {
		return err
	}
	if ok, err := r.proceed(w, len(cases), "index cases"); !ok || err != nil {
		return err
	}

	// Insert-only: the daemons' clients work the jobs.
	jobs, err := river.NewClient(riverpgxv5.New(pool), &river.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return fmt.Errorf("creating the River client: %w", err)
	}
	done := map[string]int{}
	for batch := range slices.Chunk(cases, resendBatch) {
		if err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error { return resendTx(ctx, tx, jobs, r, batch, done) }); err != nil {
			return err
		}
	}
	fmt.Fprintf(w, "Done: %d index case%s handed to Engine 4 (%d new jobs, %d run now, %d already waiting, %d being posted); "+
		"%s recorded on each.\n", len(cases), plural(len(cases)), done[resendQueued], done[resendDueNow],
		done[resendWaiting], done[resendRunning], casedb.EventResendRequested)
	return nil
}

// resendTx hands the cases to Engine 4 in tx, as Engine 3 does: their rows locked in id order (waiting for a
// writer that holds one, never skipping it), a job each (River's uniqueness finds the job a case already has), and
// the hand-off event, with resend_requested before it. A running job gets no hand-off event: it may have read the
// case before a change still to be handed off, which Engine 3 must still see as not handed off.
func resendTx(ctx context.Context, tx pgx.Tx, jobs *river.Client[pgx.Tx], r *repairOptions, cases []resendCase,
	done map[string]int) error {
	ids := make([]int64, len(cases))
	params := make([]river.InsertManyParams, len(cases))
	for i, c := range cases {
		ids[i] = c.id
		params[i] = river.InsertManyParams{Args: casedb.CaseLoaderArgs{CaseID: c.caseID, CountyID: c.countyID}}
	}
	if _, err := tx.Exec(ctx, `SELECT id FROM index_cases WHERE id = ANY($1) ORDER BY id FOR UPDATE`, ids); err != nil {
		return fmt.Errorf("locking the index cases: %w", err)
	}
	inserted, err := jobs.InsertManyTx(ctx, tx, params)
	if err != nil {
		return fmt.Errorf("inserting %d jobs: %w", len(params), err)
	}
	for i, res := range inserted {
		c, action := cases[i], resendQueued
		if res.UniqueSkippedAsDuplicate {
			action = resendAction(res.Job)
		}
		if action == resendDueNow {
			if _, err := jobs.JobRetryTx(ctx, tx, res.Job.ID); err != nil {
				return fmt.Errorf("making job %d due now: %w", res.Job.ID, err)
			}
		}
		data, err := r.eventData(map[string]any{"job_id": res.Job.ID, "job": action})
		if err != nil {
			return err
		}
		if _, err := casedb.RecordEvent(ctx, tx, c.id, casedb.EventResendRequested, json.RawMessage(data), ""); err != nil {
			return err
		}
		if action != resendRunning {
			// Engine 3's hand-off event, with who asked: a trace tells the two apart by it.
			if _, err := casedb.RecordEvent(ctx, tx, c.id, casedb.EventSendToCommCareEnqueued, map[string]any{"by": r.By}, ""); err != nil {
				return err
			}
		}
		done[action]++
	}
	return nil
}

// --- viaduct reimport ---

func runReimport(ctx context.Context, args []string, getenv func(string) string, stdout, _ io.Writer) error {
	var c Config
	var r repairOptions
	var ids []int64
	s := NewOptionSet("reimport", "FILE_ID… [--reason TEXT] [--yes] [flags]",
		"Have Engine 1 import failed files again, once the cause is fixed: each is set importing with its attempts\n"+
			"and failure reason cleared (both kept in a reimport_requested event, with who asked and why), and the next\n"+
			"resume pass of a daemon running Engine 1, within a minute, reads it again from S3 with every attempt again.\n"+
			"Only announced S3 files: a local file is imported by `viaduct extract` alone. FILE_ID is files.id, as\n"+
			"/status, `viaduct status` and `viaduct extract` show it. More than 10 files need --yes.", getenv)
	addRepair(s, &c, &r)
	args, positional := s.interspersed(args)
	s.Check(func() error {
		var errs []error
		for _, a := range positional {
			id, err := strconv.ParseInt(a, 10, 64)
			if err != nil || id <= 0 {
				errs = append(errs, fmt.Errorf("%q is not a file id (files.id, a positive number)", a))
				continue
			}
			if !slices.Contains(ids, id) {
				ids = append(ids, id)
			}
		}
		if len(positional) == 0 {
			errs = append(errs, errors.New("name at least one file by its id (files.id)"))
		}
		return errors.Join(errs...)
	})
	if err := s.Parse(args, stdout); err != nil {
		return UsageError(err)
	}
	pool, err := openCurrentPool(ctx, c.DatabaseURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	return reimport(ctx, pool, stdout, &r, ids)
}

// reimportFile is a failed file to import again.
type reimportFile struct {
	eclrs.File
	bucket string
	newer  *eclrs.File // an export announced later and imported already: Engine 1 will skip this one
}

func reimport(ctx context.Context, pool *pgxpool.Pool, w io.Writer, r *repairOptions, ids []int64) error {
	files := make([]reimportFile, 0, len(ids))
	var problems []error
	for _, id := range ids {
		f, err := eclrs.GetFile(ctx, pool, id)
		if errors.Is(err, pgx.ErrNoRows) {
			problems = append(problems, fmt.Errorf("file %d: no such file", id))
			continue
		}
		if err != nil {
			return err
		}
		rf := reimportFile{File: *f}
		if err := pool.QueryRow(ctx, `SELECT bucket FROM files WHERE id = $1`, id).Scan(&rf.bucket); err != nil {
			return fmt.Errorf("reading file %d: %w", id, err)
		}
		switch {
		case f.Status == eclrs.FileImporting:
			problems = append(problems, fmt.Errorf("file %d (%s) is still importing (%d attempts so far): Engine 1 "+
				"resumes it by itself", id, f.Filename, f.Attempts))
		case f.Status != eclrs.FileFailed:
			problems = append(problems, fmt.Errorf("file %d (%s) is %s, not failed: nothing to import again", id,
				f.Filename, f.Status))
		case rf.bucket == "":
			problems = append(problems, fmt.Errorf("file %d (%s) is a local file, which no daemon can read: "+
				"import it with `viaduct extract %s` (a changed file is a new import)", id, f.Filename, f.Filename))
		}
		if f.EventTime != nil {
			if rf.newer, err = eclrs.NewerImportedFile(ctx, pool, *f.EventTime); err != nil {
				return err
			}
		}
		files = append(files, rf)
	}
	if len(problems) > 0 {
		return fmt.Errorf("nothing changed:\n%w", errors.Join(problems...))
	}

	fmt.Fprintf(w, "Engine 1 is to import %d failed file%s again from S3 (%s):\n", len(files), plural(len(files)), r.asked())
	listed(w, "FILE\tNAME\tATTEMPTS\tFAILED WITH", files, func(f reimportFile) string {
		return fmt.Sprintf("%d\t%s\t%d\t%s", f.ID, f.Filename, f.Attempts, f.FailureReason)
	})
	for _, f := range files {
		if f.newer != nil {
			fmt.Fprintf(w, "Note: file %d will be marked skipped, not imported: file %d (%s), announced later, is imported, "+
				"and each export holds the whole window.\n", f.ID, f.newer.ID, f.newer.Filename)
		}
	}
	if err := noteIdle(ctx, pool, w, "e1", "Engine 1"); err != nil {
		return err
	}
	if ok, err := r.proceed(w, len(files), "files"); !ok || err != nil {
		return err
	}

	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		for _, f := range files {
			ok, err := eclrs.RequeueFailedFile(ctx, tx, f.ID)
			if err != nil {
				return err
			}
			if !ok {
				return fmt.Errorf("file %d is no longer failed: someone else changed it meanwhile; nothing changed", f.ID)
			}
			data, err := r.eventData(map[string]any{"failure_reason": f.FailureReason, "attempts": f.Attempts})
			if err != nil {
				return err
			}
			if err := eclrs.RecordFileEvent(ctx, tx, f.ID, eclrs.EventReimportRequested, data); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "Done: %d file%s set importing again (%s recorded on each); `viaduct status` shows how the import goes.\n",
		len(files), plural(len(files)), eclrs.EventReimportRequested)
	return nil
}

// repairAsker words who asked for a repair and why, from its event's data, for `viaduct trace`.
func repairAsker(data map[string]any) string {
	by, _ := data["by"].(string)
	if reason, _ := data["reason"].(string); reason != "" {
		return fmt.Sprintf("%s (%s)", cmp.Or(by, "someone"), reason)
	}
	return cmp.Or(by, "someone")
}
