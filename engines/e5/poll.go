package e5

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"

	"github.com/viaduct-nys/viaduct/pkg/commcare"
	"github.com/viaduct-nys/viaduct/pkg/countylist"
)

const (
	// maxPages bounds one domain's round, so a server whose pages never end cannot hold the round forever: at 100 a
	// page it is ten million cases.
	maxPages = 100_000
	// rateLimitWait is how long a 429 without a Retry-After CommCare's client could read is waited out.
	rateLimitWait = 5 * time.Second
	// maxRateLimitWait caps one wait: the client accepts a Retry-After of up to an hour, which would hold the round
	// (and every other domain's next round) for as long. A domain's waits in one round are bounded by Interval too.
	maxRateLimitWait = time.Minute
)

// errRateLimitBudget ends a domain's reading when waiting out CommCare's rate limits would take longer, in all, than
// a round lasts (Interval).
var errRateLimitBudget = errors.New("rate limited past the round's budget")

// pollDomain reads every patient case changed in county's domain since its mark, page by page to the end, and
// merges each. The mark advances to when the reading started only once every page is merged, so a failed round
// reads the same changes again next time; merging them twice changes nothing. A 429 is waited out as CommCare asks
// and the same page asked again; only when the round's waits would pass Interval does the domain stop, keeping the
// progress made (advanceMark), to continue next round.
func (e *Engine) pollDomain(ctx context.Context, county countylist.County) (Stats, error) {
	var stats Stats
	started := e.deps.Now().UTC()
	mark, err := e.startRound(ctx, county.Domain, started)
	if err != nil {
		return stats, err
	}
	since := started.Add(-e.config.FirstWindow)
	if mark != nil {
		since = mark.Add(-e.config.Overlap)
	}
	fips, err := county.FIPSCode()
	if err != nil {
		return stats, err
	}
	log := e.logger.With(zap.String("domain", county.Domain))
	list := caseList{key: since, seen: make(map[string]bool)}
	var waited time.Duration
	q := commcare.CaseQuery{Type: "patient", ChildCases: true, Limit: e.config.PageSize}
	for page := 0; ; page++ {
		if page == maxPages {
			err = fmt.Errorf("more than %d pages", maxPages)
			break
		}
		q.ServerModifiedSince, q.Offset = list.key, list.offset
		var p *commcare.CasePage
		if p, err = e.listCases(ctx, county.Domain, q, &stats, &waited); err != nil {
			break
		}
		for i := range p.Objects {
			if list.read(&p.Objects[i]) {
				continue
			}
			outcome, cerr := e.mergeCase(ctx, &p.Objects[i], county.Domain, fips)
			if cerr != nil {
				if ctx.Err() != nil {
					err = ctx.Err()
					break
				}
				// One case that cannot be merged must not hold back the domain's mark forever: it is counted,
				// logged by id, and read again only if it changes.
				stats.Failed++
				log.Error("merging a case from CommCare failed", zap.String("case_id", p.Objects[i].CaseID), zap.Error(cerr))
				continue
			}
			stats.count(outcome)
		}
		if err != nil || p.Meta.Next == nil || len(p.Objects) == 0 {
			break
		}
		list.advance(p.Objects)
	}
	if err != nil && ctx.Err() != nil {
		// Stopping is not a failure of the domain: its mark stays and the next round reads the rest.
		return stats, ctx.Err()
	}
	if errors.Is(err, errRateLimitBudget) {
		if err := e.advanceMark(ctx, county.Domain, list.key, since, started); err != nil {
			return stats, err
		}
		stats.Deferred++
		log.Warn("rate limited past the round's budget; the domain continues next round",
			zap.Duration("waited", waited), zap.Int("rate_limited", stats.RateLimited), zap.Time("read_to", list.key))
		return stats, nil
	}
	if err != nil {
		return stats, errors.Join(err, e.failRound(ctx, county.Domain, err))
	}
	return stats, e.completeRound(ctx, county.Domain, started)
}

// caseList is where the reading of a domain's case list stands. CommCare lists cases by server_date_modified, then
// case id, and an edit moves a case to the end: paging by offset, every case behind an edited one moves up a place,
// so the case at the next page's boundary is never read (issue 14). So each request asks instead for the cases
// modified at or after key, the latest stamp read, and the cases read at that instant are passed over. An edit
// during the round then moves a case past key, to be read again (merging is idempotent), and never moves an unread
// one behind it.
//
// One instant can hold more cases than a page (a bulk import stamps many cases alike); CommCare has no filter past
// a case id, so within the instant the reading goes on by offset, each request overlapping the previous by half a
// page and passing over what it read already. The offset grows with every request, so the reading ends. The risk
// left: a case of such an instant is skipped, and lost until it changes again, when more than half a page of the
// instant's cases before it are edited between two requests.
type caseList struct {
	key    time.Time       // the latest server_date_modified read: the next request asks from it, inclusive
	seen   map[string]bool // the cases read stamped exactly at key
	offset int             // where in key's instant the next request starts: 0 unless more than half a page shares it
}

// read reports whether c, as stamped now, was read already.
func (l *caseList) read(c *commcare.Case) bool {
	t, err := commcare.ParseTime(c.ServerDateModified)
	return err == nil && t.Equal(l.key) && l.seen[c.CaseID]
}

// advance moves past page, which CommCare says is not the last. The next request starts half a page before the end
// of what was read of key's instant: at its start unless a page's worth of cases share it. A case whose stamp cannot
// be read (CommCare always writes one) moves nothing: it is merged again if the next request lists it once more.
func (l *caseList) advance(page []commcare.Case) {
	latest := l.key
	stamps := make([]time.Time, len(page))
	for i := range page {
		if t, err := commcare.ParseTime(page[i].ServerDateModified); err == nil {
			stamps[i] = t
			if t.After(latest) {
				latest = t
			}
		}
	}
	moved := latest.After(l.key)
	if moved {
		l.key, l.seen = latest, make(map[string]bool)
	}
	atKey := 0
	for i, t := range stamps {
		if t.Equal(l.key) {
			l.seen[page[i].CaseID] = true
			atKey++
		}
	}
	if moved {
		// The page's cases stamped latest are the first of that instant.
		l.offset = max(atKey-len(page)/2, 0)
	} else {
		// The whole page was of key's instant; the offset grows with each request, so the instant's reading ends.
		l.offset += len(page) - len(page)/2
	}
}

// listCases asks CommCare for one page of domain's case list. A 429 is waited out as its Retry-After asks
// (rateLimitWait without one, maxRateLimitWait at most) and the same page asked again, until the domain's waits this
// round (*waited) would pass Interval: then it returns errRateLimitBudget.
func (e *Engine) listCases(ctx context.Context, domain string, q commcare.CaseQuery, stats *Stats,
	waited *time.Duration) (*commcare.CasePage, error) {
	for {
		p, err := e.deps.CommCare.ListCases(ctx, domain, q)
		if !errors.Is(err, commcare.ErrRateLimited) {
			return p, err
		}
		stats.RateLimited++
		e.deps.Metrics.rateLimited(domain)
		d := commcare.RetryAfter(err)
		if d <= 0 {
			d = rateLimitWait
		}
		d = min(d, maxRateLimitWait)
		if *waited+d > e.config.Interval {
			return nil, errRateLimitBudget
		}
		e.logger.Debug("CommCare is rate limiting; waiting as it asks", zap.String("domain", domain),
			zap.Duration("wait", d))
		if err := e.deps.SleepFunc(ctx, d); err != nil {
			return nil, err
		}
		*waited += d
	}
}

// startRound records that a round for domain started and returns its high-water mark (nil before the first
// complete round).
func (e *Engine) startRound(ctx context.Context, domain string, started time.Time) (*time.Time, error) {
	var mark *time.Time
	err := e.deps.Pool.QueryRow(ctx, `INSERT INTO commcare_sync_marks (domain, round_started_at) VALUES ($1, $2)
		ON CONFLICT (domain) DO UPDATE SET round_started_at = excluded.round_started_at, updated_at = now()
		RETURNING high_water`, domain, started).Scan(&mark)
	if err != nil {
		return nil, fmt.Errorf("reading the mark of %s: %w", domain, err)
	}
	return mark, nil
}

// completeRound advances domain's mark to when its round started.
func (e *Engine) completeRound(ctx context.Context, domain string, started time.Time) error {
	_, err := e.deps.Pool.Exec(ctx, `UPDATE commcare_sync_marks SET high_water = $2, round_completed_at = $3,
		last_error = NULL, failing_since = NULL, updated_at = now() WHERE domain = $1`, domain, started, e.deps.Now().UTC())
	if err != nil {
		return fmt.Errorf("advancing the mark of %s: %w", domain, err)
	}
	return nil
}

// failRound records why domain's round failed, and since when it has been failing; its mark stays.
func (e *Engine) failRound(ctx context.Context, domain string, cause error) error {
	_, err := e.deps.Pool.Exec(context.WithoutCancel(ctx), `UPDATE commcare_sync_marks SET last_error = $2,
		failing_since = coalesce(failing_since, $3), updated_at = now() WHERE domain = $1`,
		domain, cause.Error(), e.deps.Now().UTC())
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("recording the failure of %s: %w", domain, err)
	}
	return nil
}

// advanceMark keeps the progress of a round cut short by rate limits: every change stamped before readTo was read,
// so the mark moves up to it (never past when the round started, never back), and the next round does not spend its
// budget on the same pages again. Nothing else changes: the round did not complete, nor fail.
func (e *Engine) advanceMark(ctx context.Context, domain string, readTo, since, started time.Time) error {
	if !readTo.After(since) {
		return nil
	}
	if readTo.After(started) {
		readTo = started
	}
	_, err := e.deps.Pool.Exec(ctx, `UPDATE commcare_sync_marks SET high_water = $2, updated_at = now()
		WHERE domain = $1 AND (high_water IS NULL OR high_water < $2)`, domain, readTo)
	if err != nil {
		return fmt.Errorf("advancing the mark of %s: %w", domain, err)
	}
	return nil
}
