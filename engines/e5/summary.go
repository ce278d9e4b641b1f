package e5

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/viaduct-nys/viaduct/pkg/casedb"
	"github.com/viaduct-nys/viaduct/pkg/status"
)

// DomainMark is where Engine 5 stands with one CommCare domain.
type DomainMark struct {
	// Domain is the CommCare project space.
	Domain string `json:"domain"`
	// HighWater is the time up to which every change in the domain has been merged; the next round asks for
	// changes since a little before it. Nil before the first complete round.
	HighWater *time.Time `json:"high_water,omitempty"`
	// RoundStartedAt and RoundCompletedAt are when the last round for the domain started and last completed.
	RoundStartedAt   *time.Time `json:"round_started_at,omitempty"`
	RoundCompletedAt *time.Time `json:"round_completed_at,omitempty"`
	// LastError is why the last round for the domain failed, "" when it succeeded, and FailingSince when the
	// domain's first failed round since its last complete one started.
	LastError    string     `json:"last_error,omitempty"`
	FailingSince *time.Time `json:"failing_since,omitempty"`
	// Recent says the domain was read within status.FailureWindow: a domain that stopped taking part keeps its mark
	// but neither fails nor falls behind any more.
	Recent bool `json:"recent"`
}

// Summary is Engine 5's side of `viaduct status` and the status page.
type Summary struct {
	// Domains are the domains Engine 5 has polled, by name.
	Domains []DomainMark `json:"domains"`
	// Retrieved and Updated count the index cases Engine 5 created from CommCare (retrieved_from_commcare) and
	// updated from it (updated_from_commcare, which Engine 4 also records) in the last hour.
	RetrievedLastHour int64 `json:"retrieved_last_hour"`
	UpdatedLastHour   int64 `json:"updated_last_hour"`
	// Failures are the domains read lately whose last round failed, with why and since when: each is retried next
	// round. Count is 1: a domain fails once per round, and the reason says since when.
	Failures []status.Failure `json:"failures"`
}

// Summarize reads the Summary; run it in a repeatable-read transaction for numbers that add up.
func Summarize(ctx context.Context, db casedb.DBTX) (*Summary, error) {
	rows, err := db.Query(ctx, `SELECT domain, high_water, round_started_at, round_completed_at, coalesce(last_error, ''),
		    failing_since, coalesce(round_started_at > now() - interval '`+status.FailureWindow+`', false)
		  FROM commcare_sync_marks ORDER BY domain`)
	if err != nil {
		return nil, fmt.Errorf("reading Engine 5's marks: %w", err)
	}
	marks, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (DomainMark, error) {
		var m DomainMark
		err := row.Scan(&m.Domain, &m.HighWater, &m.RoundStartedAt, &m.RoundCompletedAt, &m.LastError, &m.FailingSince,
			&m.Recent)
		return m, err
	})
	if err != nil {
		return nil, fmt.Errorf("reading Engine 5's marks: %w", err)
	}
	s := &Summary{Domains: marks, Failures: []status.Failure{}}
	for _, m := range marks {
		if m.LastError != "" && m.Recent && m.FailingSince != nil {
			s.Failures = append(s.Failures, status.Failure{Reason: m.Domain + ": " + m.LastError + " (failing since " +
				m.FailingSince.UTC().Format(time.RFC3339) + ")", Count: 1, Last: *m.RoundStartedAt})
		}
	}
	err = db.QueryRow(ctx, `SELECT count(*) FILTER (WHERE type = $1), count(*) FILTER (WHERE type = $2)
		  FROM events WHERE type IN ($1, $2) AND inserted_at > now() - interval '1 hour'`,
		casedb.EventRetrievedFromCommCare, casedb.EventUpdatedFromCommCare).Scan(&s.RetrievedLastHour, &s.UpdatedLastHour)
	if err != nil {
		return nil, fmt.Errorf("counting Engine 5's work: %w", err)
	}
	return s, nil
}
