package cli

import (
	"io"
	"net"
	"net/url"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/stretchr/testify/require"

	"github.com/viaduct-nys/viaduct/pkg/awstest"
	"github.com/viaduct-nys/viaduct/pkg/eclrs"
	"github.com/viaduct-nys/viaduct/pkg/pgtest"
)

// TestExportSurvivesItsMessage: the daemon is killed mid-import, and its notification, received once, is moved to
// the dead-letter queue when it comes back (maxReceiveCount 1). The files row recorded at the first receipt is the
// durable record: a daemon started later finds the export unsettled, reads it again from S3, and imports it whole;
// an until-idle run does not call an unsettled export idle.
func TestExportSurvivesItsMessage(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	env, stopAWS, err := awstest.Start(ctx)
	require.NoError(t, err)
	t.Cleanup(stopAWS)
	// A silent bucket: the export is uploaded in parts, and moto would announce it twice (a Put, then the
	// CompleteMultipartUpload); this test follows the one notification S3 sends.
	res, err := env.CreateResources(ctx, awstest.UniqueNames("e1dlq"), &awstest.CreateOpts{MaxReceiveCount: 1,
		VisibilityTimeout: 2 * time.Second, SilentBucket: true})
	require.NoError(t, err)
	export, err := os.Open(writeGeneratedExport(t, 60_000, 12))
	require.NoError(t, err)
	defer export.Close()
	const key = "COVID19_ECLRS_Export_positive_2026-12-04 1000.txt"
	require.NoError(t, env.Upload(ctx, res.Names.Bucket, key, export))
	require.NoError(t, env.Announce(ctx, res, res.Names.Bucket, key, awstest.AnnounceOpts{EventTime: time.Now()}))

	db := pgtest.New(t)
	daemon := daemonEnv(env, db)
	// Extensions of 10 s: once the daemon is dead the message comes back within them.
	p := startViaduct(t, daemon, "run", "--e1", "--http-addr", "", "--sqs-queue-url", res.QueueURL,
		"--sqs-visibility-timeout", "10s")
	ticker := time.NewTicker(5 * time.Millisecond)
	defer ticker.Stop()
	for attempts := 0; attempts == 0; {
		select {
		case <-p.exited:
			require.FailNow(t, "viaduct exited by itself", "log:\n%s", p.logText())
		case <-ticker.C:
		}
		require.NoError(t, db.Pool.QueryRow(ctx, `SELECT coalesce(max(attempts), 0) FROM files WHERE key = $1`, key).
			Scan(&attempts))
	}
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGKILL))
	p.waitExit(t, 10*time.Second)

	// The message comes back once the last extension runs out, and the next receive moves it to the dead-letter
	// queue instead of delivering it.
	for {
		out, err := env.SQS.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(res.QueueURL), WaitTimeSeconds: 1})
		require.NoError(t, err)
		require.Empty(t, out.Messages, "a message received once is not delivered again (maxReceiveCount 1)")
		attrs, err := env.SQS.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(res.DLQURL),
			AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameApproximateNumberOfMessages}})
		require.NoError(t, err)
		if attrs.Attributes[string(sqstypes.QueueAttributeNameApproximateNumberOfMessages)] == "1" {
			break
		}
	}
	var status string
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT status FROM files WHERE key = $1`, key).Scan(&status))
	require.Equal(t, eclrs.FileImporting, status, "killed mid-import")

	p = startViaduct(t, daemon, "run", "--e1", "--until-idle", "--http-addr", "", "--sqs-queue-url", res.QueueURL)
	require.Equal(t, 0, p.waitExit(t, 2*time.Minute), "log:\n%s", p.logText())
	var rows int64
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT f.status, (SELECT count(*) FROM test_results)
		FROM files f WHERE key = $1`, key).Scan(&status, &rows))
	require.Equal(t, eclrs.FileImported, status)
	require.EqualValues(t, 60_000, rows)
	_, ok := p.logged("resuming an import that did not finish")
	require.True(t, ok, "log:\n%s", p.logText())
	requireTalliesExact(t, db)
}

// dbProxy stands between a daemon and PostgreSQL so that a test can take the database away and bring it back.
type dbProxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	down  bool
	conns []net.Conn
}

func startDBProxy(t *testing.T, target string) *dbProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &dbProxy{ln: ln, target: target}
	t.Cleanup(func() { _ = ln.Close(); p.cut() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			down := p.down
			p.mu.Unlock()
			if down {
				_ = c.Close()
				continue
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				_ = c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, s)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(s, c); _ = s.Close() }()
			go func() { _, _ = io.Copy(c, s); _ = c.Close() }()
		}
	}()
	return p
}

// cut drops every connection and refuses new ones, as a database outage does.
func (p *dbProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	for _, c := range p.conns {
		_ = c.Close()
	}
	p.conns = nil
}

func (p *dbProxy) restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = false
}

// TestDatabaseOutageSpendsNoReceives: an export announced while the database is away is held, its message kept
// hidden, until the database is back; the message is not received again and again into the dead-letter queue
// (maxReceiveCount 2, a queue visibility of 2 s, an outage of several of them).
func TestDatabaseOutageSpendsNoReceives(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	env, stopAWS, err := awstest.Start(ctx)
	require.NoError(t, err)
	t.Cleanup(stopAWS)
	res, err := env.CreateResources(ctx, awstest.UniqueNames("e1outage"), &awstest.CreateOpts{MaxReceiveCount: 2,
		VisibilityTimeout: 2 * time.Second})
	require.NoError(t, err)
	db := pgtest.New(t)
	u, err := url.Parse(db.URL)
	require.NoError(t, err)
	proxy := startDBProxy(t, u.Host)
	u.Host = proxy.ln.Addr().String()
	daemon := append(daemonEnv(env, db), "DATABASE_URL="+u.String()) // the later one wins

	p := startViaduct(t, daemon, "run", "--e1", "--http-addr", "", "--sqs-queue-url", res.QueueURL)
	p.waitLog(t, "Subscribing to queue", 30*time.Second)
	proxy.cut()

	export, err := os.Open(writeGeneratedExport(t, 50, 13))
	require.NoError(t, err)
	defer export.Close()
	const key = "COVID19_ECLRS_Export_positive_2026-12-04 1030.txt"
	require.NoError(t, env.Upload(ctx, res.Names.Bucket, key, export))
	require.NoError(t, env.Announce(ctx, res, res.Names.Bucket, key, awstest.AnnounceOpts{EventTime: time.Now()}))
	p.waitLog(t, "cannot record the announced file; trying again", 30*time.Second)
	time.Sleep(4 * 2 * time.Second) // four of the queue's visibility timeouts without a database
	proxy.restore()

	var status string
	require.Eventually(t, func() bool {
		err := db.Pool.QueryRow(ctx, `SELECT status FROM files WHERE key = $1`, key).Scan(&status)
		return err == nil && status == eclrs.FileImported
	}, time.Minute, 20*time.Millisecond, "the export is imported once the database is back; log:\n%s", p.logText())
	attrs, err := env.SQS.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(res.DLQURL),
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameApproximateNumberOfMessages}})
	require.NoError(t, err)
	require.Equal(t, "0", attrs.Attributes[string(sqstypes.QueueAttributeNameApproximateNumberOfMessages)],
		"nothing was dead-lettered")
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	require.Equal(t, 0, p.waitExit(t, 30*time.Second))
}
