package migrations_test

import (
	"context"
	"fmt"
	"io/fs"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/stretchr/testify/require"
	"golang.org/x/sync/errgroup"

	"github.com/viaduct-nys/viaduct/migrations"
	"github.com/viaduct-nys/viaduct/pkg/pgtest"
)

func TestUp(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("ConcurrentMigratorsAllSucceed", func(t *testing.T) {
		t.Parallel()
		db := pgtest.NewEmpty(t)

		// Separate pools stand for separate daemons: each migrator has its own sessions, as processes would.
		results := make([]*migrations.Result, 3)
		var g errgroup.Group
		for i := range results {
			g.Go(func() error {
				pool, err := pgxpool.New(ctx, db.URL)
				if err != nil {
					return err
				}
				defer pool.Close()
				results[i], err = migrations.Up(ctx, pool)
				return err
			})
		}
		require.NoError(t, g.Wait())

		var appliers int
		for _, r := range results {
			if len(r.App) > 0 {
				appliers++
				require.NotEmpty(t, r.River, "the migrator that applied ours also applied River's")
			}
		}
		require.Equal(t, 1, appliers, "exactly one migrator applies the schema; the others find it current")

		pending, err := migrations.Pending(ctx, db.Pool)
		require.NoError(t, err)
		require.Empty(t, pending)
	})

	t.Run("IdempotentAndReportsPending", func(t *testing.T) {
		t.Parallel()
		db := pgtest.NewEmpty(t)

		pending, err := migrations.Pending(ctx, db.Pool)
		require.NoError(t, err)
		require.NotEmpty(t, pending, "an empty database is not current")

		first, err := migrations.Up(ctx, db.Pool)
		require.NoError(t, err)
		require.NotEmpty(t, first.App)

		second, err := migrations.Up(ctx, db.Pool)
		require.NoError(t, err)
		require.Empty(t, second.App)
		require.Empty(t, second.River)

		var tables int
		require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*) FROM information_schema.tables
			WHERE table_schema = 'public' AND table_name = ANY($1)`,
			[]string{"files", "abouts", "test_results", "counties", "people", "index_cases", "lab_results",
				"events", "test_result_events", "index_case_events", "river_job"}).Scan(&tables))
		require.Equal(t, 11, tables)
	})
}

// TestStatusAsMigrateApplies follows one database from empty to migrated and back one step: Status reports what
// the database has without changing it.
func TestStatusAsMigrateApplies(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	db := pgtest.NewEmpty(t)
	files, err := fs.Glob(migrations.FS, "*.sql")
	require.NoError(t, err)

	st, err := migrations.Status(ctx, db.Pool)
	require.NoError(t, err)
	require.Len(t, st.App, len(files))
	for _, m := range st.App {
		require.False(t, m.Applied(), "version %d", m.Version)
	}
	require.Zero(t, st.AppVersion)
	require.Zero(t, st.River.Version)
	require.NotZero(t, st.River.Latest)
	require.Len(t, st.River.Pending, st.River.Latest, "River's versions run from 1 to the latest")
	var tables int
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*) FROM pg_tables WHERE schemaname = 'public'`).Scan(&tables))
	require.Zero(t, tables, "status created a table")

	_, err = migrations.Up(ctx, db.Pool)
	require.NoError(t, err)
	st, err = migrations.Status(ctx, db.Pool)
	require.NoError(t, err)
	require.Len(t, st.App, len(files))
	for i, m := range st.App {
		require.True(t, m.Applied(), "version %d", m.Version)
		require.Equal(t, files[i], fmt.Sprintf("%05d_%s.sql", m.Version, m.Name))
	}
	last := st.App[len(st.App)-1]
	require.Equal(t, last.Version, st.AppVersion)
	require.Equal(t, st.River.Latest, st.River.Version)
	require.Empty(t, st.River.Pending)

	provider, err := goose.NewProvider(goose.DialectPostgres, stdlib.OpenDBFromPool(db.Pool), migrations.FS)
	require.NoError(t, err)
	t.Cleanup(func() { _ = provider.Close() })
	_, err = provider.Down(ctx)
	require.NoError(t, err)
	st, err = migrations.Status(ctx, db.Pool)
	require.NoError(t, err)
	require.False(t, st.App[len(st.App)-1].Applied(), "the rolled-back migration is pending")
	require.True(t, st.App[len(st.App)-2].Applied())
	require.Equal(t, last.Version-1, st.AppVersion)
}
