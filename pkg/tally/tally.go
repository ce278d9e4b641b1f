// Package tally reads and keeps the exact row counts of the tallies table, which the status page shows instead of
// counting tables of millions of rows.
//
// Writers append deltas (name, n): statement-level triggers for people, index_cases, lab_results, file_row_errors
// and events (one name per event type, EventName), and Engine 1 for its COPY into test_results (Add), in the
// transaction that writes the rows. A reader sums the deltas in its own snapshot, so the counts agree with the rows
// that snapshot sees. Compact folds the deltas into one row per name so that reading stays cheap.
package tally

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Names of the tallies that are not events.
const (
	TestResults   = "test_results"
	FileRowErrors = "file_row_errors"
	People        = "people"
	IndexCases    = "index_cases"
	LabResults    = "lab_results"
)

// EventName is the tally of events of type typ.
func EventName(typ string) string { return "events:" + typ }

// DB is the part of a pool, connection or transaction this package needs.
type DB interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// Add records that n rows were added to (or, negative, removed from) name. Call it in the transaction that writes
// the rows; triggers do it for every table but test_results.
func Add(ctx context.Context, db DB, name string, n int64) error {
	if n == 0 {
		return nil
	}
	if _, err := db.Exec(ctx, `INSERT INTO tallies (name, n) VALUES ($1, $2)`, name, n); err != nil {
		return fmt.Errorf("adding %d to the %s tally: %w", n, name, err)
	}
	return nil
}

// Counts are tallies by name; a name never written counts 0.
type Counts map[string]int64

// Read sums every tally, as db's snapshot sees them.
func Read(ctx context.Context, db DB) (Counts, error) {
	rows, err := db.Query(ctx, `SELECT name, sum(n)::bigint FROM tallies GROUP BY name`)
	if err != nil {
		return nil, fmt.Errorf("reading the tallies: %w", err)
	}
	defer rows.Close()
	c := Counts{}
	for rows.Next() {
		var name string
		var n int64
		if err := rows.Scan(&name, &n); err != nil {
			return nil, fmt.Errorf("reading the tallies: %w", err)
		}
		c[name] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading the tallies: %w", err)
	}
	return c, nil
}

// Compact folds the deltas of every name into one row. Safe beside writers and other compactors: a delta committed
// meanwhile is not seen by the DELETE and stays, and a row two compactors both see is deleted by one of them only.
func Compact(ctx context.Context, db DB) error {
	_, err := db.Exec(ctx, `WITH gone AS (DELETE FROM tallies RETURNING name, n)
		INSERT INTO tallies (name, n) SELECT name, sum(n) FROM gone GROUP BY name`)
	if err != nil {
		return fmt.Errorf("compacting the tallies: %w", err)
	}
	return nil
}
