package migrations_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
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
