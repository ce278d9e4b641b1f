package e1

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/viaduct-nys/viaduct/pkg/awstest"
	"github.com/viaduct-nys/viaduct/pkg/eclrs"
	"github.com/viaduct-nys/viaduct/pkg/eclrs/eclrsgen"
)

// TestObjectOverwrittenBeforeItsNotificationIsRead: an export is announced, then overwritten (and the new object
// announced) before Engine 1 reads the first notification. The first notification names an object that is gone: it
// is recorded as skipped, saying so, rather than importing the new content under the old object's identity; the
// second imports the new content.
func TestObjectOverwrittenBeforeItsNotificationIsRead(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	env, stop, err := awstest.Start(ctx)
	require.NoError(t, err)
	t.Cleanup(stop)
	// A short queue visibility: an emulator that hands a message to a receive the client gave up on (moto, on a
	// loaded machine) makes it visible again in seconds rather than half a minute.
	q := newQueueEngine(t, env, "e1over", &awstest.CreateOpts{VisibilityTimeout: 2 * time.Second}, nil)
	db, res := q.db, q.res

	const key = "COVID19_ECLRS_Export_positive_2026-12-04 0930.txt"
	export := func(rows, first int) string {
		var b strings.Builder
		require.NoError(t, eclrsgen.Write(&b, eclrsgen.Options{Rows: rows, FirstRow: first, Seed: 5}))
		return b.String()
	}
	announced := time.Now().Add(-time.Minute)
	require.NoError(t, env.Upload(ctx, res.Names.Bucket, key, strings.NewReader(export(3, 0))))
	require.NoError(t, env.Announce(ctx, res, res.Names.Bucket, key, awstest.AnnounceOpts{EventTime: announced}))
	require.NoError(t, env.Upload(ctx, res.Names.Bucket, key, strings.NewReader(export(5, 100))))
	require.NoError(t, env.Announce(ctx, res, res.Names.Bucket, key, awstest.AnnounceOpts{EventTime: announced.Add(time.Second)}))

	q.runUntilIdle(t)

	rows, err := db.Pool.Query(ctx, `SELECT status, coalesce(failure_reason, ''), coalesce((statistics->'new'->>'total')::int, 0)
		FROM files ORDER BY id`)
	require.NoError(t, err)
	type file struct {
		status, reason string
		added          int
	}
	var files []file
	for rows.Next() {
		var f file
		require.NoError(t, rows.Scan(&f.status, &f.reason, &f.added))
		files = append(files, f)
	}
	require.NoError(t, rows.Err())
	require.Len(t, files, 2)
	require.Equal(t, eclrs.FileSkipped, files[0].status)
	require.Contains(t, files[0].reason, "was replaced after this notification")
	require.Equal(t, eclrs.FileImported, files[1].status)
	require.Equal(t, 5, files[1].added, "the new object's rows, under its own identity")
	var n int
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*) FROM test_results`).Scan(&n))
	require.Equal(t, 5, n)
}
