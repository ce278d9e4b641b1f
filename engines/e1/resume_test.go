package e1

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/stretchr/testify/require"

	"github.com/viaduct-nys/viaduct/pkg/awstest"
	"github.com/viaduct-nys/viaduct/pkg/eclrs"
	"github.com/viaduct-nys/viaduct/pkg/eclrs/eclrsgen"
	"github.com/viaduct-nys/viaduct/pkg/pgtest"
)

// flakyS3 fails the first failures reads (all of them when failures is negative) as a network error would.
type flakyS3 struct {
	S3API
	failures int64
	reads    atomic.Int64
}

func (f *flakyS3) GetObject(ctx context.Context, in *s3.GetObjectInput, opts ...func(*s3.Options)) (*s3.GetObjectOutput, error) {
	if n := f.reads.Add(1); f.failures < 0 || n <= f.failures {
		return nil, errors.New("read tcp 10.0.0.1:443: connection reset by peer")
	}
	return f.S3API.GetObject(ctx, in, opts...)
}

// TestFailedAttemptsAreResumed: an export whose reads fail is not left to its notification. The notification is
// acknowledged once the file is recorded, the file stays importing with the reason, and it is read again from S3
// until it imports; after MaxAttempts it is marked failed with the last reason, which turns Engine 1 red.
func TestFailedAttemptsAreResumed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	env, stop, err := awstest.Start(ctx)
	require.NoError(t, err)
	t.Cleanup(stop)

	run := func(t *testing.T, failures int64) (*pgtest.DB, *flakyS3) {
		s3 := &flakyS3{S3API: env.S3, failures: failures}
		q := newQueueEngine(t, env, "e1resume", nil, func(c *Config, d *Deps) { c.MaxAttempts, d.S3 = 3, s3 })
		res := q.res
		var b strings.Builder
		require.NoError(t, eclrsgen.Write(&b, eclrsgen.Options{Rows: 4, Seed: 8}))
		require.NoError(t, env.Upload(ctx, res.Names.Bucket, "export.txt", strings.NewReader(b.String())))
		require.NoError(t, env.Announce(ctx, res, res.Names.Bucket, "export.txt", awstest.AnnounceOpts{EventTime: time.Now()}))
		q.runUntilIdle(t)
		return q.db, s3
	}
	file := func(t *testing.T, db *pgtest.DB) *eclrs.File {
		var id int64
		require.NoError(t, db.Pool.QueryRow(ctx, `SELECT id FROM files`).Scan(&id))
		f, err := eclrs.GetFile(ctx, db.Pool, id)
		require.NoError(t, err)
		return f
	}

	t.Run("ResumedUntilImported", func(t *testing.T) {
		t.Parallel()
		db, s3 := run(t, 2)
		f := file(t, db)
		require.Equal(t, eclrs.FileImported, f.Status)
		require.Equal(t, 3, f.Attempts)
		require.EqualValues(t, 3, s3.reads.Load())
		var n int
		require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*) FROM test_results`).Scan(&n))
		require.Equal(t, 4, n)
	})

	t.Run("FailedAfterMaxAttempts", func(t *testing.T) {
		t.Parallel()
		db, s3 := run(t, -1)
		f := file(t, db)
		require.Equal(t, eclrs.FileFailed, f.Status)
		require.Equal(t, 3, f.Attempts)
		require.EqualValues(t, 3, s3.reads.Load())
		require.Contains(t, f.FailureReason, "gave up after 3 attempts; the last failed with: reading s3://")
		require.Contains(t, f.FailureReason, "connection reset by peer")
		s, err := Summarize(ctx, db.Pool, nil)
		require.NoError(t, err)
		require.EqualValues(t, 1, s.FailedLastHour, "Engine 1 is red")
	})
}
