package awstest

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// bucketNotificationJSON is the bucket's notification configuration, in the JSON of S3's
// PutBucketNotificationConfiguration (the AWS CLI's --notification-configuration), with topicARNPlaceholder where
// the topic's ARN goes. It is the one definition: CreateResources reads it, and localstack/docker-compose.yml mounts
// the file into LocalStack, whose init script substitutes the ARN and puts it as it is.
//
//go:embed bucket-notification.json
var bucketNotificationJSON []byte

// topicARNPlaceholder stands for the topic's ARN in bucket-notification.json.
const topicARNPlaceholder = "TOPIC_ARN"

// notificationWait bounds every wait for a message the bucket sends itself: the s3:TestEvent after its notification
// configuration is saved, an object's notification after its upload. Both arrive within milliseconds where they
// arrive at all; the bound turns a bucket that sends nothing into a test failure that says so.
const notificationWait = 30 * time.Second

// NotificationSuffixes are the key suffixes the bucket notification is filtered on, as bucket-notification.json
// lists them. S3 compares them case-sensitively and ECLRS names its exports "….TXT", so both spellings are listed;
// a key such as "x.Txt" is not announced by a real bucket.
var NotificationSuffixes = mustSuffixes()

// BucketNotification returns the bucket notification configuration (bucket-notification.json) with topicARN as
// the destination: s3:ObjectCreated:* events of keys ending in one of NotificationSuffixes.
func BucketNotification(topicARN string) (*s3types.NotificationConfiguration, error) {
	var config s3types.NotificationConfiguration
	dec := json.NewDecoder(bytes.NewReader(bucketNotificationJSON))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&config); err != nil {
		return nil, fmt.Errorf("reading bucket-notification.json: %w", err)
	}
	for i := range config.TopicConfigurations {
		config.TopicConfigurations[i].TopicArn = aws.String(topicARN)
	}
	return &config, nil
}

// mustSuffixes returns the suffix filters of bucket-notification.json, which is part of the package.
func mustSuffixes() []string {
	config, err := BucketNotification(topicARNPlaceholder)
	if err != nil {
		panic(err)
	}
	var suffixes []string
	for _, c := range config.TopicConfigurations {
		for _, r := range c.Filter.Key.FilterRules {
			if r.Name == s3types.FilterRuleNameSuffix {
				suffixes = append(suffixes, aws.ToString(r.Value))
			}
		}
	}
	return suffixes
}

// bucketAnnounces reports whether the bucket notification covers key: S3 sends nothing for other keys.
func bucketAnnounces(key string) bool {
	for _, suffix := range NotificationSuffixes {
		if strings.HasSuffix(key, suffix) {
			return true
		}
	}
	return false
}

// putBucketNotification replaces the bucket's notification configuration; an empty one turns notifications off.
func (e *Env) putBucketNotification(ctx context.Context, bucket string, config *s3types.NotificationConfiguration) error {
	_, err := e.S3.PutBucketNotificationConfiguration(ctx, &s3.PutBucketNotificationConfigurationInput{
		Bucket:                    aws.String(bucket),
		NotificationConfiguration: config,
	})
	if err != nil {
		return fmt.Errorf("configuring notifications of bucket %s: %w", bucket, err)
	}
	return nil
}

// listenToBucket makes the bucket of res notify its topic and prepares Announce to wait for what it sends. A witness
// queue is subscribed to the topic next to the queue: Announce reads the bucket's messages there, so the queue
// itself is left exactly as the bucket filled it, never received from (receive counts and the dead-letter redrive
// stay as they would be) and in the bucket's order. The s3:TestEvent that saving the configuration sends is taken off
// the queue, so a test's first message is its own.
func (e *Env) listenToBucket(ctx context.Context, res *Resources) error {
	witness := res.Names.Queue + "-witness"
	url, arn, err := e.createQueue(ctx, witness)
	if err != nil {
		return err
	}
	policy, err := json.Marshal(queuePolicy(arn, res.TopicARN))
	if err != nil {
		return fmt.Errorf("encoding queue policy: %w", err)
	}
	_, err = e.SQS.SetQueueAttributes(ctx, &sqs.SetQueueAttributesInput{QueueUrl: aws.String(url),
		Attributes: map[string]string{string(sqstypes.QueueAttributeNamePolicy): string(policy)}})
	if err != nil {
		return fmt.Errorf("setting attributes of queue %s: %w", witness, err)
	}
	_, err = e.SNS.Subscribe(ctx, &sns.SubscribeInput{
		TopicArn:   aws.String(res.TopicARN),
		Protocol:   aws.String("sqs"),
		Endpoint:   aws.String(arn),
		Attributes: map[string]string{"RawMessageDelivery": "true"},
	})
	if err != nil {
		return fmt.Errorf("subscribing queue %s to topic %s: %w", witness, res.Names.Topic, err)
	}

	config, err := BucketNotification(res.TopicARN)
	if err != nil {
		return err
	}
	if err := e.putBucketNotification(ctx, res.Names.Bucket, config); err != nil {
		return err
	}
	if err := e.drainTestEvent(ctx, res.QueueURL, res.Names.Bucket); err != nil {
		return err
	}
	res.BucketNotifies = true
	res.witnessURL = url
	return nil
}

// drainTestEvent deletes from the queue the s3:TestEvent of bucket that saving its notification configuration sent.
// Other messages met on the way (a queue reused by a second CreateResources) are made visible again.
func (e *Env) drainTestEvent(ctx context.Context, queueURL, bucket string) error {
	ctx, cancel := context.WithTimeout(ctx, notificationWait)
	defer cancel()
	for {
		out, err := e.SQS.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
			QueueUrl:            aws.String(queueURL),
			MaxNumberOfMessages: 10,
			WaitTimeSeconds:     1,
		})
		if ctx.Err() != nil {
			return fmt.Errorf("bucket %s sent no s3:TestEvent within %s of saving its notification configuration: "+
				"does the endpoint deliver bucket notifications? %w", bucket, notificationWait, context.Cause(ctx))
		}
		if err != nil {
			return fmt.Errorf("receiving the s3:TestEvent of bucket %s: %w", bucket, err)
		}
		found := false
		for _, m := range out.Messages {
			var err error
			if isTestEvent(aws.ToString(m.Body), bucket) {
				found = true
				_, err = e.SQS.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(queueURL), ReceiptHandle: m.ReceiptHandle})
			} else {
				_, err = e.SQS.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{QueueUrl: aws.String(queueURL),
					ReceiptHandle: m.ReceiptHandle, VisibilityTimeout: 0})
			}
			if err != nil {
				return fmt.Errorf("draining the s3:TestEvent of bucket %s: %w", bucket, err)
			}
		}
		if found {
			return nil
		}
	}
}

// heardObject is what identifies an object in the notifications the bucket sent.
type heardObject struct {
	bucket, key, etag string
}

// awaitNotification returns once the bucket's notification of obj has been read from the witness queue of res,
// consuming it: the same message is then on res's queue. Notifications of other objects read meanwhile are kept
// for their own Announce. A second notification of one object (moto's ObjectCreated:Put before its
// CompleteMultipartUpload) is kept too, and harms nothing.
func (e *Env) awaitNotification(ctx context.Context, res Resources, obj heardObject) error {
	ctx, cancel := context.WithTimeout(ctx, notificationWait)
	defer cancel()
	for !e.takeHeard(res.witnessURL, obj) {
		out, err := e.SQS.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
			QueueUrl:            aws.String(res.witnessURL),
			MaxNumberOfMessages: 10,
			WaitTimeSeconds:     1,
		})
		if ctx.Err() != nil {
			return fmt.Errorf("s3://%s/%s (ETag %s) was uploaded but its bucket sent no notification within %s: %w",
				obj.bucket, obj.key, obj.etag, notificationWait, context.Cause(ctx))
		}
		if err != nil {
			return fmt.Errorf("waiting for the notification of s3://%s/%s: %w", obj.bucket, obj.key, err)
		}
		for _, m := range out.Messages {
			e.hear(res.witnessURL, aws.ToString(m.Body))
			_, err := e.SQS.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(res.witnessURL), ReceiptHandle: m.ReceiptHandle})
			if err != nil {
				return fmt.Errorf("deleting a message of the witness queue of %s: %w", res.Names.Queue, err)
			}
		}
	}
	return nil
}

// hear counts the objects created that a message of witness announces. Anything else (the s3:TestEvent, a message
// a test published itself) is dropped.
func (e *Env) hear(witness, body string) {
	var ev s3Event
	if err := json.Unmarshal([]byte(unwrapSNS(body)), &ev); err != nil {
		return
	}
	e.heardMu.Lock()
	defer e.heardMu.Unlock()
	if e.heard == nil {
		e.heard = map[string]map[heardObject]int{}
	}
	if e.heard[witness] == nil {
		e.heard[witness] = map[heardObject]int{}
	}
	for _, r := range ev.Records {
		key, err := url.QueryUnescape(r.S3.Object.Key)
		if err != nil || !strings.HasPrefix(r.EventName, "ObjectCreated:") {
			continue
		}
		e.heard[witness][heardObject{bucket: r.S3.Bucket.Name, key: key, etag: strings.Trim(r.S3.Object.ETag, `"`)}]++
	}
}

// takeHeard consumes one notification of obj heard on witness, and reports whether there was one.
func (e *Env) takeHeard(witness string, obj heardObject) bool {
	e.heardMu.Lock()
	defer e.heardMu.Unlock()
	if e.heard[witness][obj] == 0 {
		return false
	}
	e.heard[witness][obj]--
	return true
}

// isTestEvent reports whether body, raw or in an SNS envelope, is the s3:TestEvent of bucket.
func isTestEvent(body, bucket string) bool {
	var ev struct{ Event, Bucket string }
	return json.Unmarshal([]byte(unwrapSNS(body)), &ev) == nil && ev.Event == "s3:TestEvent" && ev.Bucket == bucket
}

// unwrapSNS returns the message inside an SNS notification envelope, or body itself when it is none.
func unwrapSNS(body string) string {
	var envelope struct{ Type, Message string }
	if err := json.Unmarshal([]byte(body), &envelope); err == nil && envelope.Type == "Notification" {
		return envelope.Message
	}
	return body
}
