package casedb_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/viaduct-nys/viaduct/pkg/casedb"
	"github.com/viaduct-nys/viaduct/pkg/pgtest"
)

func TestFindAndLockIndexCase(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.New(t)
	var person, want int64
	require.NoError(t, db.Pool.QueryRow(ctx, `INSERT INTO people (patient_keys, name_first, name_last, dob)
		VALUES ('{k}', 'ADA', 'LOVELACE', '1815-12-10') RETURNING id`).Scan(&person))
	_, err := db.Pool.Exec(ctx, `INSERT INTO counties (id) VALUES (1111)`)
	require.NoError(t, err)
	require.NoError(t, db.Pool.QueryRow(ctx, `INSERT INTO index_cases (person_id, county_id, case_id, data, closed)
		VALUES ($1, 1111, 'known', '{"interviewed": "no"}', true) RETURNING id`, person).Scan(&want))

	tx, err := db.Pool.Begin(ctx)
	require.NoError(t, err)
	defer tx.Rollback(ctx) //nolint:errcheck
	id, data, closed, err := casedb.FindAndLockIndexCase(ctx, tx, "known")
	require.NoError(t, err)
	require.Equal(t, want, id)
	require.Equal(t, map[string]any{"interviewed": "no"}, data)
	require.True(t, closed)

	// Until the transaction ends, a writer locking the person waits, and so does one locking the row.
	other, err := db.Pool.Begin(ctx)
	require.NoError(t, err)
	defer other.Rollback(ctx) //nolint:errcheck
	waitCtx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	require.ErrorIs(t, casedb.LockPeople(waitCtx, other, []int64{person}), context.DeadlineExceeded)
	other2, err := db.Pool.Begin(ctx)
	require.NoError(t, err)
	defer other2.Rollback(ctx) //nolint:errcheck
	_, err = other2.Exec(ctx, `SELECT FROM index_cases WHERE id = $1 FOR UPDATE NOWAIT`, id)
	var pgErr *pgconn.PgError
	require.True(t, errors.As(err, &pgErr) && pgErr.Code == "55P03", "the row is locked: %v", err)

	_, _, _, err = casedb.FindAndLockIndexCase(ctx, tx, "unknown")
	require.ErrorIs(t, err, pgx.ErrNoRows)
}
