package awstest

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// CreateOpts are the optional settings of CreateResources. The zero value gives the production shape.
type CreateOpts struct {
	// MaxReceiveCount is how often a message may be received before it moves to the dead-letter queue.
	// Defaults to MaxReceiveCount.
	MaxReceiveCount int

	// RawMessageDelivery makes SNS deliver the bare S3 event instead of wrapping it in an SNS envelope. Defaults to
	// false, which is what an S3 → SNS → SQS chain set up without extra care delivers.
	RawMessageDelivery bool

	// VisibilityTimeout is the queue's visibility timeout, rounded up to whole seconds. Defaults to
	// DefaultVisibilityTimeout. Tests of redelivery use a few seconds.
	VisibilityTimeout time.Duration

	// SilentBucket leaves the bucket without a notification configuration even on an endpoint whose buckets send
	// their own notifications (Env.DeliversNotifications), so that Announce publishes one, as everywhere else: for
	// tests that choose what the notification says (AnnounceOpts) or announce one upload twice.
	SilentBucket bool
}

// Resources are the created resources' addresses.
type Resources struct {
	Names Names // what was asked for

	DLQARN          string // dead-letter queue ARN, as in the queue's RedrivePolicy
	DLQURL          string // dead-letter queue URL, to receive what was redriven
	QueueARN        string // queue ARN, the topic subscription's endpoint
	QueueURL        string // queue URL: the watermill-aws topic with TransparentUrlResolver, VIADUCT_SQS_QUEUE_URL
	SubscriptionARN string // the topic's subscription to the queue
	TopicARN        string // topic ARN, where Announce publishes

	// BucketNotifies says the bucket sends its own notifications of created objects through the topic to the
	// queue, so Announce waits for them instead of publishing. Set where the endpoint delivers bucket
	// notifications, unless CreateOpts.SilentBucket.
	BucketNotifies bool

	witnessURL string // the queue Announce reads the bucket's notifications from, when BucketNotifies
}

// CreateResources creates the bucket, the dead-letter queue, the queue (redriving to the dead-letter queue), the
// topic and the topic's subscription to the queue. Where the endpoint delivers bucket notifications (LocalStack,
// moto) it also puts the bucket's notification configuration (bucket-notification.json, as localstack/init does),
// takes the s3:TestEvent that this sends off the queue, and subscribes a witness queue that Announce waits on. It
// is idempotent: resources that exist are reused and the queue's attributes are set to what opts asks for.
func (e *Env) CreateResources(ctx context.Context, names Names, opts *CreateOpts) (Resources, error) {
	if opts == nil {
		opts = &CreateOpts{}
	}
	res := Resources{Names: names}

	if err := e.createBucket(ctx, names.Bucket); err != nil {
		return res, err
	}

	var err error
	if res.DLQURL, res.DLQARN, err = e.createQueue(ctx, names.DLQ); err != nil {
		return res, err
	}

	topic, err := e.SNS.CreateTopic(ctx, &sns.CreateTopicInput{Name: aws.String(names.Topic)})
	if err != nil {
		return res, fmt.Errorf("creating topic %s: %w", names.Topic, err)
	}
	res.TopicARN = aws.ToString(topic.TopicArn)

	if res.QueueURL, res.QueueARN, err = e.createQueue(ctx, names.Queue); err != nil {
		return res, err
	}
	if err := e.setQueueAttributes(ctx, res, opts); err != nil {
		return res, err
	}

	sub, err := e.SNS.Subscribe(ctx, &sns.SubscribeInput{
		TopicArn:              aws.String(res.TopicARN),
		Protocol:              aws.String("sqs"),
		Endpoint:              aws.String(res.QueueARN),
		Attributes:            map[string]string{"RawMessageDelivery": strconv.FormatBool(opts.RawMessageDelivery)},
		ReturnSubscriptionArn: true,
	})
	if err != nil {
		return res, fmt.Errorf("subscribing queue %s to topic %s: %w", names.Queue, names.Topic, err)
	}
	res.SubscriptionARN = aws.ToString(sub.SubscriptionArn)

	switch {
	case !e.DeliversNotifications():
	case opts.SilentBucket:
		// A configuration left by an earlier call would announce what Announce publishes a second time.
		if err := e.putBucketNotification(ctx, names.Bucket, &s3types.NotificationConfiguration{}); err != nil {
			return res, err
		}
	default:
		if err := e.listenToBucket(ctx, &res); err != nil {
			return res, err
		}
	}
	return res, nil
}

// createBucket creates a bucket unless it exists.
func (e *Env) createBucket(ctx context.Context, bucket string) error {
	_, err := e.S3.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)})
	var owned *s3types.BucketAlreadyOwnedByYou
	var exists *s3types.BucketAlreadyExists // gofakes3 says this for its own buckets too
	if err != nil && !errors.As(err, &owned) && !errors.As(err, &exists) {
		return fmt.Errorf("creating bucket %s: %w", bucket, err)
	}
	return nil
}

// createQueue creates a queue without attributes, or finds it, and returns its URL and ARN. Attributes are set
// afterwards so that an existing queue with other attributes is updated rather than refused.
func (e *Env) createQueue(ctx context.Context, name string) (url, arn string, err error) {
	out, err := e.SQS.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(name)})
	var exists *sqstypes.QueueNameExists
	switch {
	case errors.As(err, &exists):
		got, err := e.SQS.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String(name)})
		if err != nil {
			return "", "", fmt.Errorf("looking up queue %s: %w", name, err)
		}
		url = aws.ToString(got.QueueUrl)
	case err != nil:
		return "", "", fmt.Errorf("creating queue %s: %w", name, err)
	default:
		url = aws.ToString(out.QueueUrl)
	}

	attrs, err := e.SQS.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl:       aws.String(url),
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn},
	})
	if err != nil {
		return "", "", fmt.Errorf("reading ARN of queue %s: %w", name, err)
	}
	arn = attrs.Attributes[string(sqstypes.QueueAttributeNameQueueArn)]
	if arn == "" {
		return "", "", fmt.Errorf("queue %s has no ARN", name)
	}
	return url, arn, nil
}

// setQueueAttributes gives the queue its visibility timeout, its redrive policy and, where the emulator stores one,
// a policy letting the topic send to it (AWS requires it; the emulators do not enforce it, but LocalStack and
// fauxqs keep it so the setup reads like production). goaws refuses a policy given as a string, so it gets none.
func (e *Env) setQueueAttributes(ctx context.Context, res Resources, opts *CreateOpts) error {
	redrive, err := json.Marshal(map[string]string{
		"deadLetterTargetArn": res.DLQARN,
		"maxReceiveCount":     strconv.Itoa(cmp.Or(opts.MaxReceiveCount, MaxReceiveCount)),
	})
	if err != nil {
		return fmt.Errorf("encoding redrive policy: %w", err)
	}
	timeout := cmp.Or(opts.VisibilityTimeout, DefaultVisibilityTimeout)
	attrs := map[string]string{
		string(sqstypes.QueueAttributeNameVisibilityTimeout): strconv.Itoa(int(math.Ceil(timeout.Seconds()))),
		string(sqstypes.QueueAttributeNameRedrivePolicy):     string(redrive),
	}

	if e.Emulator != EmulatorInProcess {
		policy, err := json.Marshal(queuePolicy(res.QueueARN, res.TopicARN))
		if err != nil {
			return fmt.Errorf("encoding queue policy: %w", err)
		}
		attrs[string(sqstypes.QueueAttributeNamePolicy)] = string(policy)
	}

	_, err = e.SQS.SetQueueAttributes(ctx, &sqs.SetQueueAttributesInput{QueueUrl: aws.String(res.QueueURL), Attributes: attrs})
	if err != nil {
		return fmt.Errorf("setting attributes of queue %s: %w", res.Names.Queue, err)
	}
	return nil
}

// queuePolicy allows the topic, and only it, to send to the queue.
func queuePolicy(queueARN, topicARN string) map[string]any {
	return map[string]any{
		"Version": "2012-10-17",
		"Statement": []map[string]any{{
			"Sid":       "topic-to-queue",
			"Effect":    "Allow",
			"Principal": map[string]string{"Service": "sns.amazonaws.com"},
			"Action":    "sqs:SendMessage",
			"Resource":  queueARN,
			"Condition": map[string]any{"ArnEquals": map[string]string{"aws:SourceArn": topicARN}},
		}},
	}
}
