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

// maxPages bounds one domain's round, so a server whose pages never end cannot hold the round forever: at 100 a
// page it is ten million cases.
const maxPages = 100_000

// pollDomain reads every patient case changed in county's domain since its mark, page by page to the end, and
// merges each. The mark advances to when the reading started only once every page is merged, so a failed round
// reads the same changes again next time; merging them twice changes nothing.
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
	q := commcare.CaseQuery{Type: "patient", ServerModifiedSince: since, ChildCases: true, Limit: e.config.PageSize}
	for page := 0; ; page++ {
		if page == maxPages {
			err = fmt.Errorf("more than %d pages", maxPages)
			break
		}
		var p *commcare.CasePage
		if p, err = e.deps.CommCare.ListCases(ctx, county.Domain, q); err != nil {
			break
		}
		for i := range p.Objects {
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
		q.Offset += len(p.Objects)
	}
	if err != nil && ctx.Err() != nil {
		// Stopping is not a failure of the domain: its mark stays and the next round reads the rest.
		return stats, ctx.Err()
	}
	if err != nil {
		return stats, errors.Join(err, e.failRound(ctx, county.Domain, err))
	}
	return stats, e.completeRound(ctx, county.Domain, started)
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
