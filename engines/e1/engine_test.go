package e1

import (
	"bytes"
	"cmp"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"

	"github.com/viaduct-nys/viaduct/pkg/awstest"
	"github.com/viaduct-nys/viaduct/pkg/eclrs"
	"github.com/viaduct-nys/viaduct/pkg/eclrs/eclrsgen"
	"github.com/viaduct-nys/viaduct/pkg/pgtest"
)

// TestEngine runs Engine 1 for real: an S3 object uploaded, announced on SQS as S3 would (through SNS or directly),
// received through watermill-aws, imported, and the message deleted. It runs against in-process emulators, or
// unchanged against whatever AWS_ENDPOINT_URL names (fauxqs and moto in CI, LocalStack where Docker exists). Where
// the bucket sends its own notifications (moto, LocalStack) the engine reads those, except in the subtests that
// choose what the notification says, whose bucket is silent (awstest.CreateOpts.SilentBucket).
func TestEngine(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	env, stop, err := awstest.Start(ctx)
	require.NoError(t, err)
	t.Cleanup(stop)

	type testBundle struct {
		db     *pgtest.DB
		res    awstest.Resources
		engine *Engine
	}
	// setup makes a database, and resources as opts says with a queue visibility of 30 s unless it says otherwise.
	setup := func(t *testing.T, opts awstest.CreateOpts) *testBundle {
		t.Helper()
		db := pgtest.New(t)
		opts.VisibilityTimeout = cmp.Or(opts.VisibilityTimeout, 30*time.Second)
		res, err := env.CreateResources(ctx, awstest.UniqueNames("e1"), &opts)
		require.NoError(t, err)
		engine, err := New(Config{
			QueueURL:          res.QueueURL,
			WaitTime:          time.Second,
			UntilIdle:         true,
			IdleCheckInterval: 200 * time.Millisecond,
			VisibilityTimeout: 30 * time.Second,
		}, Deps{Pool: db.Pool, AWSConfig: env.AWSConfig, S3: env.S3, Logger: zaptest.NewLogger(t)})
		require.NoError(t, err)
		return &testBundle{db: db, res: res, engine: engine}
	}
	upload := func(t *testing.T, b *testBundle, fixture, key string) {
		t.Helper()
		f, err := os.Open(filepath.Join("testdata", fixture))
		require.NoError(t, err)
		defer f.Close()
		require.NoError(t, env.Upload(ctx, b.res.Names.Bucket, key, f))
	}
	announce := func(t *testing.T, b *testBundle, key string, opts awstest.AnnounceOpts) {
		t.Helper()
		require.NoError(t, env.Announce(ctx, b.res, b.res.Names.Bucket, key, opts))
	}
	// runUntilIdle runs the engine until it has drained the queue; a stuck engine fails the test instead of hanging.
	runUntilIdle := func(t *testing.T, b *testBundle) {
		t.Helper()
		runCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		require.NoError(t, b.engine.Run(runCtx))
		require.NoError(t, runCtx.Err(), "the engine stopped because it was idle, not because time ran out")
	}
	files := func(t *testing.T, b *testBundle) map[string]*eclrs.File {
		t.Helper()
		rows, err := b.db.Pool.Query(ctx, `SELECT id FROM files`)
		require.NoError(t, err)
		var ids []int64
		for rows.Next() {
			var id int64
			require.NoError(t, rows.Scan(&id))
			ids = append(ids, id)
		}
		require.NoError(t, rows.Err())
		out := map[string]*eclrs.File{}
		for _, id := range ids {
			f, err := eclrs.GetFile(ctx, b.db.Pool, id)
			require.NoError(t, err)
			out[f.Filename] = f
		}
		return out
	}
	queueIsEmpty := func(t *testing.T, b *testBundle) {
		t.Helper()
		empty, err := b.engine.queueEmpty(ctx)
		require.NoError(t, err)
		require.True(t, empty, "every message was deleted")
	}
	testResults := func(t *testing.T, b *testBundle) int64 {
		t.Helper()
		var n int64
		require.NoError(t, b.db.Pool.QueryRow(ctx, `SELECT count(*) FROM test_results`).Scan(&n))
		return n
	}

	t.Run("ImportsAnnouncedExportsThroughSNSAndDirectly", func(t *testing.T) {
		t.Parallel()
		b := setup(t, awstest.CreateOpts{SilentBucket: true})
		upload(t, b, "v3_three_rows.txt", "exports/COVID19_ECLRS_Export 2026-11-20 0800.TXT")
		upload(t, b, "v3_with_aoe_answers.txt", "exports/COVID19_ECLRS_Export 2026-11-20 0830.txt")
		announce(t, b, "exports/COVID19_ECLRS_Export 2026-11-20 0800.TXT", awstest.AnnounceOpts{EventTime: time.Now().Add(-time.Hour)})
		announce(t, b, "exports/COVID19_ECLRS_Export 2026-11-20 0830.txt", awstest.AnnounceOpts{EventTime: time.Now(), Raw: true})

		runUntilIdle(t, b)

		got := files(t, b)
		require.Len(t, got, 2)
		first := got["s3://"+b.res.Names.Bucket+"/exports/COVID19_ECLRS_Export 2026-11-20 0800.TXT"]
		require.NotNil(t, first, "the key is URL-decoded (spaces arrive as +)")
		require.Equal(t, eclrs.FileImported, first.Status)
		require.Equal(t, int64(3), first.Statistics.New.Total)
		second := got["s3://"+b.res.Names.Bucket+"/exports/COVID19_ECLRS_Export 2026-11-20 0830.txt"]
		require.Equal(t, eclrs.FileImported, second.Status)
		require.Equal(t, int64(1), second.Statistics.New.Total)
		require.Equal(t, int64(2), second.Statistics.Matched.Total)
		require.Equal(t, int64(4), testResults(t, b))
		queueIsEmpty(t, b)
	})

	t.Run("ImportsWhatTheBucketAnnounces", func(t *testing.T) {
		t.Parallel()
		b := setup(t, awstest.CreateOpts{})
		const key = "exports/COVID19 ECLRS+Export 2026-12-04 09:30.TXT"
		upload(t, b, "v3_three_rows.txt", key)
		announce(t, b, key, awstest.AnnounceOpts{})

		runUntilIdle(t, b)

		got := files(t, b)
		require.Len(t, got, 1)
		f := got["s3://"+b.res.Names.Bucket+"/"+key]
		require.NotNil(t, f, "the key is decoded as S3 encodes it; files: %v", got)
		require.Equal(t, eclrs.FileImported, f.Status)
		require.NotNil(t, f.EventTime)
		require.WithinDuration(t, time.Now(), *f.EventTime, time.Minute, "the event time is UTC, zone or none")
		require.Equal(t, int64(3), testResults(t, b))
		queueIsEmpty(t, b)
	})

	t.Run("MultipartUploadImportsOnce", func(t *testing.T) {
		t.Parallel()
		b := setup(t, awstest.CreateOpts{})
		// Over awstest.PartSize, so Upload sends it in parts.
		var export bytes.Buffer
		require.NoError(t, eclrsgen.Write(&export, eclrsgen.Options{Rows: 15_000, Seed: 9}))
		require.Greater(t, export.Len(), awstest.PartSize)
		const key = "COVID19_ECLRS_Export_positive_2026-12-04 0930.txt"
		require.NoError(t, env.Upload(ctx, b.res.Names.Bucket, key, &export))
		if b.res.BucketNotifies {
			announce(t, b, key, awstest.AnnounceOpts{}) // moto sends a Put and then the CompleteMultipartUpload
		} else {
			announce(t, b, key, awstest.AnnounceOpts{EventName: "ObjectCreated:Put"}) // as moto does
			announce(t, b, key, awstest.AnnounceOpts{EventName: "ObjectCreated:CompleteMultipartUpload"})
		}

		runUntilIdle(t, b)

		got := files(t, b)
		require.Len(t, got, 1)
		f := got["s3://"+b.res.Names.Bucket+"/"+key]
		require.Equal(t, eclrs.FileImported, f.Status)
		require.Equal(t, 1, f.Attempts, "the second notification found the object imported and did nothing")
		require.Equal(t, int64(15_000), f.Statistics.New.Total)
		require.Equal(t, int64(15_000), testResults(t, b))
		queueIsEmpty(t, b)
	})

	t.Run("SameObjectAnnouncedTwiceImportsOnce", func(t *testing.T) {
		t.Parallel()
		b := setup(t, awstest.CreateOpts{SilentBucket: true})
		upload(t, b, "v3_three_rows.txt", "twice.txt")
		announce(t, b, "twice.txt", awstest.AnnounceOpts{})
		announce(t, b, "twice.txt", awstest.AnnounceOpts{Raw: true})

		runUntilIdle(t, b)

		got := files(t, b)
		require.Len(t, got, 1)
		require.Equal(t, eclrs.FileImported, got["s3://"+b.res.Names.Bucket+"/twice.txt"].Status)
		require.Equal(t, int64(3), testResults(t, b))
		queueIsEmpty(t, b)
	})

	t.Run("OlderExportAnnouncedLateIsSkipped", func(t *testing.T) {
		t.Parallel()
		// A short visibility: moto answers a long poll that the first run left behind when it stopped, and the
		// notification it takes there comes back only once that visibility runs out.
		b := setup(t, awstest.CreateOpts{SilentBucket: true, VisibilityTimeout: 2 * time.Second})
		upload(t, b, "v3_three_rows.txt", "newer.txt")
		upload(t, b, "v3_with_aoe_answers.txt", "older.txt")
		announce(t, b, "newer.txt", awstest.AnnounceOpts{EventTime: time.Now()})
		runUntilIdle(t, b)
		announce(t, b, "older.txt", awstest.AnnounceOpts{EventTime: time.Now().Add(-time.Hour)})
		runUntilIdle(t, b)

		got := files(t, b)
		require.Equal(t, eclrs.FileSkipped, got["s3://"+b.res.Names.Bucket+"/older.txt"].Status)
		require.Equal(t, int64(3), testResults(t, b))
		queueIsEmpty(t, b)
	})

	t.Run("UnusableMessagesAreAcknowledgedNotLooped", func(t *testing.T) {
		t.Parallel()
		b := setup(t, awstest.CreateOpts{})
		upload(t, b, "v3_three_rows.txt", "report.csv")
		upload(t, b, "bad_header.txt", "bad_header.txt")
		announce(t, b, "report.csv", awstest.AnnounceOpts{})     // not an export (a bucket that sends its own does not)
		announce(t, b, "bad_header.txt", awstest.AnnounceOpts{}) // fails, with the reason recorded
		// Announced, never uploaded (deleted before Engine 1 got to it).
		missing, err := awstest.ObjectCreatedEvent(awstest.ObjectInfo{Bucket: b.res.Names.Bucket, Key: "missing.txt", ETag: "0f0f", Size: 10}, awstest.AnnounceOpts{})
		require.NoError(t, err)
		_, err = env.SQS.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(b.res.QueueURL), MessageBody: aws.String(string(missing))})
		require.NoError(t, err)
		require.NoError(t, env.AnnounceTestEvent(ctx, b.res, awstest.AnnounceOpts{}))
		_, err = env.SQS.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(b.res.QueueURL), MessageBody: aws.String("not json")})
		require.NoError(t, err)

		runUntilIdle(t, b)

		got := files(t, b)
		require.Len(t, got, 2, "the .csv key is ignored without a files row")
		bad := got["s3://"+b.res.Names.Bucket+"/bad_header.txt"]
		require.Equal(t, eclrs.FileFailed, bad.Status)
		require.Contains(t, bad.FailureReason, "unexpected header")
		gone := got["s3://"+b.res.Names.Bucket+"/missing.txt"]
		require.Equal(t, eclrs.FileFailed, gone.Status)
		require.Contains(t, gone.FailureReason, "missing.txt")
		require.Zero(t, testResults(t, b))
		queueIsEmpty(t, b)
	})
}
