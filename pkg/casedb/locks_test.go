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
	"github.com/viaduct-nys/viaduct/pkg/testfactory"
)

func TestFindAndLockIndexCase(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.New(t)
	person := testfactory.Person(t, ctx, db.Pool, &testfactory.PersonOpts{PatientKeys: []string{"k"},
		NameFirst: "ADA", NameLast: "LOVELACE", DOB: time.Date(1815, 12, 10, 0, 0, 0, 0, time.UTC)})
	testfactory.County(t, ctx, db.Pool, 1111)
	want := testfactory.IndexCase(t, ctx, db.Pool, &testfactory.IndexCaseOpts{PersonID: person, CountyID: 1111,
		CaseID: "known", Data: map[string]any{"interviewed": "no"}, Closed: true}).ID

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
