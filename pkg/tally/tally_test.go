package tally_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/sync/errgroup"

	"github.com/viaduct-nys/viaduct/pkg/pgtest"
	"github.com/viaduct-nys/viaduct/pkg/tally"
)

// TestCompactKeepsEveryDelta: writers, triggers and compactors at once; the sums stay exact and compaction leaves
// one row per name.
func TestCompactKeepsEveryDelta(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.New(t)

	var g errgroup.Group
	for w := range 4 {
		g.Go(func() error {
			for i := range 50 {
				if err := tally.Add(ctx, db.Pool, tally.TestResults, int64(w+i)); err != nil {
					return err
				}
				if _, err := db.Pool.Exec(ctx, `INSERT INTO events (type) SELECT 'processed' FROM generate_series(1, 3)`); err != nil {
					return err
				}
			}
			return nil
		})
	}
	for range 2 {
		g.Go(func() error {
			for range 30 {
				if err := tally.Compact(ctx, db.Pool); err != nil {
					return err
				}
			}
			return nil
		})
	}
	require.NoError(t, g.Wait())

	want := int64(0)
	for w := range 4 {
		for i := range 50 {
			want += int64(w + i)
		}
	}
	counts, err := tally.Read(ctx, db.Pool)
	require.NoError(t, err)
	require.Equal(t, want, counts[tally.TestResults])
	require.Equal(t, int64(4*50*3), counts[tally.EventName("processed")], "the events trigger counts every row")

	_, err = db.Pool.Exec(ctx, `DELETE FROM events WHERE id IN (SELECT id FROM events LIMIT 7)`)
	require.NoError(t, err)
	require.NoError(t, tally.Compact(ctx, db.Pool))
	counts, err = tally.Read(ctx, db.Pool)
	require.NoError(t, err)
	require.Equal(t, int64(4*50*3-7), counts[tally.EventName("processed")], "deletes count too")
	var rows, names int
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*), count(DISTINCT name) FROM tallies`).Scan(&rows, &names))
	require.Equal(t, names, rows, "one row per name once compacted")
}
