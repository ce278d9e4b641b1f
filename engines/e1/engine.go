package e1

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wmsqs "github.com/ThreeDotsLabs/watermill-aws/sqs"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"

	"github.com/viaduct-nys/viaduct/pkg/eclrs"
	"github.com/viaduct-nys/viaduct/pkg/poll"
)

// Config is Engine 1's configuration.
type Config struct {
	// QueueURL is the SQS queue S3 notifications arrive on. Required.
	QueueURL string
	// VisibilityTimeout is how long each extension keeps a message being imported invisible to other consumers;
	// extensions repeat every third of it for as long as the import runs. Defaults to 5 minutes.
	VisibilityTimeout time.Duration
	// WaitTime is the SQS long-poll wait per receive. Defaults to 20 seconds (the SQS maximum).
	WaitTime time.Duration
	// UntilIdle makes Run return nil once the queue is empty and nothing is being imported.
	UntilIdle bool
	// IdleCheckInterval is how often UntilIdle asks SQS whether the queue is empty. Defaults to 1 second.
	IdleCheckInterval time.Duration
	// ResumeAfter is how long an announced file may stay importing with no import under way before a daemon
	// resumes it from S3: after a failed attempt, or when the daemon importing it died. Defaults to 5 minutes.
	ResumeAfter time.Duration
	// MaxAttempts is how many import attempts a file gets; after the last fails it is marked failed with the
	// reason. Defaults to 5.
	MaxAttempts int
	// Importer tunes the import pipeline.
	Importer ImporterConfig
}

func (c Config) validate() error {
	var errs []error
	if c.QueueURL == "" {
		errs = append(errs, errors.New("e1: the SQS queue URL is required"))
	} else if u, err := url.Parse(c.QueueURL); err != nil || u.Scheme == "" || u.Host == "" {
		errs = append(errs, fmt.Errorf("e1: the SQS queue URL %q is not an absolute URL", c.QueueURL))
	}
	if c.VisibilityTimeout != 0 && (c.VisibilityTimeout < 10*time.Second || c.VisibilityTimeout > 12*time.Hour) {
		errs = append(errs, fmt.Errorf("e1: visibility timeout %s is outside SQS's range of 10s to 12h", c.VisibilityTimeout))
	}
	if c.ResumeAfter != 0 && c.ResumeAfter < time.Second {
		errs = append(errs, fmt.Errorf("e1: resume after %s is shorter than a second", c.ResumeAfter))
	}
	if c.MaxAttempts < 0 {
		errs = append(errs, fmt.Errorf("e1: max attempts %d is negative", c.MaxAttempts))
	}
	if c.WaitTime < 0 || c.WaitTime > 20*time.Second {
		errs = append(errs, fmt.Errorf("e1: SQS wait time %s is outside 0 to 20s", c.WaitTime))
	}
	return errors.Join(errs...)
}

// S3API is the part of the S3 client Engine 1 uses.
type S3API interface {
	GetObject(ctx context.Context, in *s3.GetObjectInput, optFns ...func(*s3.Options)) (*s3.GetObjectOutput, error)
}

// Deps are Engine 1's collaborators.
type Deps struct {
	// Pool is the database.
	Pool *pgxpool.Pool
	// AWSConfig configures the SQS subscriber (credentials, region, endpoint).
	AWSConfig aws.Config
	// SQSOptFns are applied to every SQS client, e.g. an endpoint override.
	SQSOptFns []func(*sqs.Options)
	// S3 reads the exports.
	S3 S3API
	// Logger is Engine 1's named logger.
	Logger *zap.Logger
	// WatermillLogger receives watermill's own logs.
	WatermillLogger watermill.LoggerAdapter
	// Metrics may be nil.
	Metrics *Metrics
}

// Engine is Engine 1, the ECLRS extractor.
type Engine struct {
	// TestSignals are signalled as Run works; the zero value signals nothing. Tests call TestSignals.Init.
	TestSignals TestSignals

	config   Config
	deps     Deps
	sqs      *sqs.Client
	importer *Importer
	logger   *zap.Logger
	receive  *receiveHealth
}

// TestSignals are what Engine 1 signals for tests to wait on.
type TestSignals struct {
	// ReceiveFailed is signalled after every failed receive from the queue, with the problem as it then stands.
	ReceiveFailed poll.Signal[ReceiveProblem]
}

// Init readies every signal for tb. Only tests call it.
func (ts *TestSignals) Init(tb poll.TB) {
	ts.ReceiveFailed.Init(tb)
}

// ReceiveProblem returns why the engine cannot read its queue, or nil when its last receive worked (or it has not
// tried yet).
func (e *Engine) ReceiveProblem() *ReceiveProblem {
	return e.receive.current()
}

// New validates config and returns an Engine ready to Run.
func New(config Config, deps Deps) (*Engine, error) {
	if config.VisibilityTimeout == 0 {
		config.VisibilityTimeout = 5 * time.Minute
	}
	if config.WaitTime == 0 {
		config.WaitTime = 20 * time.Second
	}
	if config.IdleCheckInterval <= 0 {
		config.IdleCheckInterval = time.Second
	}
	if config.ResumeAfter == 0 {
		config.ResumeAfter = 5 * time.Minute
	}
	if config.MaxAttempts == 0 {
		config.MaxAttempts = 5
	}
	errs := []error{config.validate()}
	if deps.Pool == nil {
		errs = append(errs, errors.New("e1: a database pool is required"))
	}
	if deps.S3 == nil {
		errs = append(errs, errors.New("e1: an S3 client is required"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if deps.Logger == nil {
		deps.Logger = zap.NewNop()
	}
	if deps.WatermillLogger == nil {
		deps.WatermillLogger = watermill.NopLogger{}
	}
	return &Engine{
		config:   config,
		deps:     deps,
		sqs:      sqs.NewFromConfig(deps.AWSConfig, deps.SQSOptFns...),
		importer: NewImporter(config.Importer, deps.Pool, deps.Logger, deps.Metrics),
		logger:   deps.Logger,
		receive:  &receiveHealth{queueURL: config.QueueURL, logger: deps.Logger, metrics: deps.Metrics},
	}, nil
}

// Run receives notifications until ctx is done (or, with UntilIdle, until the queue is empty) and imports what they
// announce. It returns nil on a clean stop; an error only when the queue cannot be listened to at all.
func (e *Engine) Run(ctx context.Context) error {
	if err := e.deps.Metrics.readLastImport(ctx, e.deps.Pool); err != nil && ctx.Err() == nil {
		e.logger.Warn("the last import's time is unknown until the next import", zap.Error(err))
	}
	waitSeconds := int32(e.config.WaitTime / time.Second)
	e.receive.failed = e.TestSignals.ReceiveFailed
	sub, err := wmsqs.NewSubscriber(wmsqs.SubscriberConfig{
		AWSConfig:                   e.deps.AWSConfig,
		OptFns:                      append(slices.Clone(e.deps.SQSOptFns), e.receive.watchReceives),
		DoNotCreateQueueIfNotExists: true,
		QueueUrlResolver:            wmsqs.TransparentUrlResolver{},
		Unmarshaler:                 ReceiptHandleUnmarshaler{},
		GenerateReceiveMessageInput: func(ctx context.Context, queueURL wmsqs.QueueURL) (*sqs.ReceiveMessageInput, error) {
			in, err := wmsqs.GenerateReceiveMessageInputDefault(ctx, queueURL)
			if err != nil {
				return nil, err
			}
			in.WaitTimeSeconds = waitSeconds
			in.MessageSystemAttributeNames = []sqstypes.MessageSystemAttributeName{sqstypes.MessageSystemAttributeNameApproximateReceiveCount}
			return in, nil
		},
	}, quietReceiveErrors{e.deps.WatermillLogger})
	if err != nil {
		return fmt.Errorf("e1: creating the SQS subscriber: %w", err)
	}
	defer func() {
		if err := sub.Close(); err != nil {
			e.logger.Warn("closing the SQS subscriber", zap.Error(err))
		}
	}()

	subCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	msgs, err := sub.Subscribe(subCtx, e.config.QueueURL)
	if err != nil {
		return fmt.Errorf("e1: subscribing to %s: %w", e.config.QueueURL, err)
	}
	e.logger.Debug("listening", zap.String("queue_url", e.config.QueueURL), zap.Bool("until_idle", e.config.UntilIdle))

	var idleTicks <-chan time.Time
	if e.config.UntilIdle {
		ticker := time.NewTicker(e.config.IdleCheckInterval)
		defer ticker.Stop()
		idleTicks = ticker.C
	} else {
		var resuming sync.WaitGroup
		defer resuming.Wait()
		resuming.Go(func() { e.resumeLoop(subCtx) })
	}
	quiet := 0
	for {
		select {
		case <-ctx.Done():
			e.logger.Debug("stopping")
			return nil
		case msg, ok := <-msgs:
			if !ok {
				return nil
			}
			quiet = 0
			e.handle(ctx, msg)
		case <-idleTicks:
			empty, err := e.queueEmpty(ctx)
			if err != nil {
				e.logger.Warn("checking whether the queue is empty", zap.Error(err))
				continue
			}
			// Two empty readings in a row: a message received between the reading and the channel is counted
			// as not visible by the first, so one reading could miss it.
			if quiet++; !empty {
				quiet = 0
				continue
			}
			// An empty queue is not the end while announced files are unsettled: those no import holds are
			// resumed now (an until-idle run waits for no staleness); those another daemon imports are waited for.
			if resumed, err := e.resumeStale(ctx, 0); err != nil || resumed > 0 {
				quiet = 0
				continue
			}
			if unsettled, err := eclrs.Unsettled(ctx, e.deps.Pool); err != nil || unsettled > 0 {
				quiet = 0
				continue
			}
			if quiet >= 2 {
				e.logger.Debug("queue empty; idle")
				return nil
			}
		}
	}
}

// queueEmpty reports whether the queue has neither visible nor in-flight messages.
func (e *Engine) queueEmpty(ctx context.Context) (bool, error) {
	out, err := e.sqs.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl: aws.String(e.config.QueueURL),
		AttributeNames: []sqstypes.QueueAttributeName{
			sqstypes.QueueAttributeNameApproximateNumberOfMessages,
			sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible,
			sqstypes.QueueAttributeNameApproximateNumberOfMessagesDelayed,
		},
	})
	if err != nil {
		return false, err
	}
	for _, v := range out.Attributes {
		if v != "0" && v != "" {
			return false, nil
		}
	}
	return true, nil
}

// handle imports what one SQS message announces and then acknowledges it (deleting it from the queue), or leaves
// it for redelivery when the import should be retried. Messages that can never be imported are acknowledged after
// a log line; a poison message must not loop forever.
func (e *Engine) handle(ctx context.Context, msg *message.Message) {
	log := e.logger.With(zap.String("message_id", msg.UUID))
	notes, err := ParseNotification(msg.Payload)
	switch {
	case errors.Is(err, ErrTestEvent):
		log.Debug("ignoring the S3 test event")
		e.deps.Metrics.notification("test_event")
		msg.Ack()
		return
	case err != nil:
		log.Warn("ignoring a message that is not an S3 notification", zap.Error(err))
		e.deps.Metrics.notification("invalid")
		msg.Ack()
		return
	case len(notes) == 0:
		log.Info("ignoring a notification with no created objects")
		e.deps.Metrics.notification("ignored")
		msg.Ack()
		return
	}

	// Keep the message hidden for as long as the imports take. Extending must stop before the message is
	// acknowledged: an extension after the delete fails.
	extendCtx, stopExtending := context.WithCancel(ctx)
	var extending sync.WaitGroup
	if receipt := msg.Metadata.Get(ReceiptHandleMetadataKey); receipt != "" {
		extending.Go(func() {
			ExtendVisibility(extendCtx, e.sqs, e.config.QueueURL, receipt, e.config.VisibilityTimeout/3, e.config.VisibilityTimeout,
				func(err error) { log.Warn("extending the message's visibility", zap.Error(err)) })
		})
	}
	settle := func(ack bool) {
		stopExtending()
		extending.Wait()
		if ack {
			msg.Ack()
		} else {
			msg.Nack()
		}
	}

	outcome := "done"
	for _, n := range notes {
		flog := log.With(zap.String("file", n.filename()))
		if !IsImportable(n.Key) {
			flog.Warn("ignoring an object that is not a .txt export")
			e.deps.Metrics.notification("ignored")
			continue
		}
		obj := n.object()
		f, err := e.record(ctx, flog, obj)
		if err != nil {
			flog.Info("stopping before the file was recorded; the notification will be redelivered")
			settle(false)
			return
		}
		res, err := e.attempt(ctx, f, obj)
		if err != nil {
			if ctx.Err() != nil {
				e.deps.Metrics.notification("retry")
				flog.Info("import interrupted by shutdown; the notification will be redelivered")
				settle(false)
				return
			}
			// The file is recorded: it is resumed from S3 once stale, by this daemon or another, so the
			// notification has done its work and need not spend receives on retries.
			flog.Error("import failed; the file stays importing and is resumed from S3 later", zap.Error(err),
				zap.Int64("file_id", f.ID), zap.Duration("resume_after", e.config.ResumeAfter))
			outcome = "resume_later"
			continue
		}
		e.deps.Metrics.observeImport(res)
		logResult(flog, res)
	}
	e.deps.Metrics.notification(outcome)
	settle(true)
}

// logResult logs one import at the level its outcome deserves.
func logResult(log *zap.Logger, res *Result) {
	fields := []zap.Field{zap.Int64("file_id", res.FileID), zap.String("status", res.Status), zap.Int("eclrs_version", res.Version),
		zap.Int64("rows", res.Rows), zap.Int64("new", res.New), zap.Int64("matched", res.Matched),
		zap.Int64("duplicate", res.Duplicate), zap.Int64("errors", res.Errors), zap.Float64("seconds", res.Seconds)}
	switch {
	case res.Already:
		log.Info("file already handled; nothing to do", fields...)
	case res.Status == eclrs.FileFailed:
		log.Error("file failed", append(fields, zap.String("reason", res.Reason))...)
	case res.Status == eclrs.FileSkipped:
		log.Info("file skipped", append(fields, zap.String("reason", res.Reason))...)
	default:
		log.Info("file imported", fields...)
	}
}

func (n Notification) filename() string { return "s3://" + n.Bucket + "/" + n.Key }

func (n Notification) object() eclrs.Object {
	return eclrs.Object{
		Filename:  n.filename(),
		Bucket:    n.Bucket,
		Key:       n.Key,
		ETag:      strings.Trim(n.ETag, `"`),
		VersionID: n.VersionID,
		Size:      n.Size,
		EventTime: n.EventTime,
	}
}

// opener streams obj, an announced object, from S3: the very object announced.
func (e *Engine) opener(obj eclrs.Object) OpenFunc {
	return S3Opener(e.deps.S3, obj.Bucket, obj.Key, obj.VersionID, obj.ETag)
}

// S3Opener returns an OpenFunc streaming s3://bucket/key: the version announced when the bucket is versioned
// (versionID), else the object only while its ETag is still etag (empty: whatever is there). A notification names
// one object; reading by key alone would import a newer object under the old one's identity. A missing object or a
// denied read is a PermanentError; an object overwritten since it was announced (another ETag, or its version gone)
// is a SupersededError.
func S3Opener(client S3API, bucket, key, versionID, etag string) OpenFunc {
	return func(ctx context.Context) (io.ReadCloser, error) {
		in := &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)}
		if versionID != "" {
			in.VersionId = aws.String(versionID)
		} else if etag != "" {
			in.IfMatch = aws.String(`"` + etag + `"`)
		}
		out, err := client.GetObject(ctx, in)
		if err != nil {
			var noKey *s3types.NoSuchKey
			var noBucket *s3types.NoSuchBucket
			var apiErr interface{ ErrorCode() string }
			switch {
			case errors.As(err, &apiErr) && apiErr.ErrorCode() == "PreconditionFailed":
				return nil, superseded(bucket, key, "ETag "+etag, "S3 has another")
			case errors.As(err, &apiErr) && apiErr.ErrorCode() == "NoSuchVersion":
				return nil, superseded(bucket, key, "version "+versionID, "that version is gone")
			case errors.As(err, &noKey) || errors.As(err, &noBucket) || hasPermanentCode(err):
				return nil, &PermanentError{Err: fmt.Errorf("reading s3://%s/%s: %w", bucket, key, err)}
			}
			return nil, fmt.Errorf("reading s3://%s/%s: %w", bucket, key, err)
		}
		// Some S3 stand-ins ignore If-Match; the answer's ETag says which object came.
		if got := strings.Trim(aws.ToString(out.ETag), `"`); versionID == "" && etag != "" && got != "" && got != etag {
			_ = out.Body.Close()
			return nil, superseded(bucket, key, "ETag "+etag, "its ETag is now "+got)
		}
		return out.Body, nil
	}
}

func superseded(bucket, key, announced, now string) error {
	return &SupersededError{Err: fmt.Errorf("s3://%s/%s was replaced after this notification (announced with %s; "+
		"%s): the notification of the newer object imports it", bucket, key, announced, now)}
}

// hasPermanentCode catches what the typed errors above miss: denied reads, and emulators that report a missing key
// by its code alone.
func hasPermanentCode(err error) bool {
	var apiErr interface{ ErrorCode() string }
	return errors.As(err, &apiErr) && (apiErr.ErrorCode() == "AccessDenied" || apiErr.ErrorCode() == "NoSuchKey")
}
