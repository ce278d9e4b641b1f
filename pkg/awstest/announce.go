package awstest

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
)

// eventTimeLayout is how S3 writes eventTime: UTC with milliseconds.
const eventTimeLayout = "2006-01-02T15:04:05.000Z"

// snsSubject is the subject S3 gives the notifications it publishes to SNS.
const snsSubject = "Amazon S3 Notification"

// sequence makes sequencers unique within the process even for events of the same nanosecond.
var sequence atomic.Uint64

// AnnounceOpts are the optional settings of Announce and AnnounceTestEvent. Where the bucket sends its own
// notifications (Resources.BucketNotifies) Announce publishes nothing, so they do not apply: tests that need them
// create their resources with CreateOpts.SilentBucket.
type AnnounceOpts struct {
	// EventName is the record's eventName. Defaults to "ObjectCreated:Put"; Announce defaults to
	// "ObjectCreated:CompleteMultipartUpload" instead when the object's ETag has the multipart form (md5-parts).
	EventName string

	// EventTime is the record's eventTime. Defaults to now.
	EventTime time.Time

	// Raw sends the message straight to the queue, as a bucket notifying SQS directly (or SNS with raw delivery)
	// would. By default it is published to the topic, and the subscription decides whether it arrives wrapped.
	Raw bool
}

// ObjectInfo is what an S3 event says about the object.
type ObjectInfo struct {
	Bucket    string
	ETag      string // without the quotes HeadObject puts around it
	Key       string // not encoded; ObjectCreatedEvent encodes it as S3 does
	Size      int64
	VersionID string
}

// Announce delivers to the queue the notification S3 would send for an object just uploaded to bucket: an S3
// event whose size and ETag come from HeadObject. Where the bucket sends its own (res.BucketNotifies), Announce
// instead waits until it has sent it, so that the queue holds it when Announce returns; for a key the bucket's
// notification does not cover (NotificationSuffixes) it returns at once, as S3 sends nothing.
func (e *Env) Announce(ctx context.Context, res Resources, bucket, key string, opts AnnounceOpts) error {
	if res.BucketNotifies && !bucketAnnounces(key) {
		return nil
	}

	head, err := e.S3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		return fmt.Errorf("reading s3://%s/%s: %w", bucket, key, err)
	}
	obj := ObjectInfo{
		Bucket: bucket,
		ETag:   strings.Trim(aws.ToString(head.ETag), `"`),
		Key:    key,
		Size:   aws.ToInt64(head.ContentLength),
	}
	if v := aws.ToString(head.VersionId); v != "null" { // "null" is S3's version of unversioned objects
		obj.VersionID = v
	}
	if res.BucketNotifies {
		return e.awaitNotification(ctx, res, heardObject{bucket: bucket, key: key, etag: obj.ETag})
	}

	if opts.EventName == "" && strings.Contains(obj.ETag, "-") {
		opts.EventName = "ObjectCreated:CompleteMultipartUpload"
	}
	body, err := ObjectCreatedEvent(obj, opts)
	if err != nil {
		return err
	}
	return e.deliver(ctx, res, body, opts.Raw)
}

// AnnounceTestEvent delivers the s3:TestEvent message S3 sends once when a bucket's notification configuration is
// saved. It is sent on every emulator, those whose buckets send their own included (CreateResources takes theirs
// off the queue), because nothing else produces one on demand.
func (e *Env) AnnounceTestEvent(ctx context.Context, res Resources, opts AnnounceOpts) error {
	body, err := S3TestEvent(res.Names.Bucket, opts.EventTime)
	if err != nil {
		return err
	}
	return e.deliver(ctx, res, body, opts.Raw)
}

// deliver sends body to the queue, or publishes it to the topic.
func (e *Env) deliver(ctx context.Context, res Resources, body []byte, raw bool) error {
	if raw {
		_, err := e.SQS.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(res.QueueURL), MessageBody: aws.String(string(body))})
		if err != nil {
			return fmt.Errorf("sending S3 event to queue %s: %w", res.Names.Queue, err)
		}
		return nil
	}
	_, err := e.SNS.Publish(ctx, &sns.PublishInput{
		TopicArn: aws.String(res.TopicARN),
		Message:  aws.String(string(body)),
		Subject:  aws.String(snsSubject),
	})
	if err != nil {
		return fmt.Errorf("publishing S3 event to topic %s: %w", res.Names.Topic, err)
	}
	return nil
}

// ObjectCreatedEvent returns the S3 event notification (event version 2.1) with one record for obj, as S3 writes
// it. Unit tests that feed a handler without any emulator can use it directly.
func ObjectCreatedEvent(obj ObjectInfo, opts AnnounceOpts) ([]byte, error) {
	eventTime := cmp.Or(opts.EventTime, time.Now()).UTC()
	record := s3EventRecord{
		EventVersion:      "2.1",
		EventSource:       "aws:s3",
		AWSRegion:         Region,
		EventTime:         eventTime.Format(eventTimeLayout),
		EventName:         cmp.Or(opts.EventName, "ObjectCreated:Put"),
		UserIdentity:      principal{PrincipalID: "AWS:AIDAVIADUCTTEST"},
		RequestParameters: map[string]string{"sourceIPAddress": "127.0.0.1"},
		ResponseElements:  map[string]string{"x-amz-request-id": "VIADUCTTEST", "x-amz-id-2": "viaduct/test"},
	}
	record.S3.SchemaVersion = "1.0"
	record.S3.ConfigurationID = "eclrs-created"
	record.S3.Bucket.Name = obj.Bucket
	record.S3.Bucket.OwnerIdentity = principal{PrincipalID: "AVIADUCTTEST"}
	record.S3.Bucket.ARN = "arn:aws:s3:::" + obj.Bucket
	record.S3.Object.Key = EncodeEventKey(obj.Key)
	record.S3.Object.Size = obj.Size
	record.S3.Object.ETag = obj.ETag
	record.S3.Object.VersionID = obj.VersionID
	record.S3.Object.Sequencer = fmt.Sprintf("%016X%02X", eventTime.UnixNano(), sequence.Add(1)%256)

	body, err := json.Marshal(s3Event{Records: []s3EventRecord{record}})
	if err != nil {
		return nil, fmt.Errorf("encoding S3 event: %w", err)
	}
	return body, nil
}

// S3TestEvent returns the s3:TestEvent message for bucket. A zero t means now.
func S3TestEvent(bucket string, t time.Time) ([]byte, error) {
	body, err := json.Marshal(map[string]string{
		"Service":   "Amazon S3",
		"Event":     "s3:TestEvent",
		"Time":      cmp.Or(t, time.Now()).UTC().Format(eventTimeLayout),
		"Bucket":    bucket,
		"RequestId": "VIADUCTTEST",
		"HostId":    "viaduct/test",
	})
	if err != nil {
		return nil, fmt.Errorf("encoding S3 test event: %w", err)
	}
	return body, nil
}

// EncodeEventKey encodes an object key the way S3 writes it into event notifications: form encoding, so a space
// becomes "+" and ":" becomes "%3A", with "/" left as it is.
func EncodeEventKey(key string) string {
	return strings.ReplaceAll(url.QueryEscape(key), "%2F", "/")
}

// s3Event is an S3 event notification.
type s3Event struct {
	Records []s3EventRecord `json:"Records"`
}

// s3EventRecord is one record of an S3 event notification.
type s3EventRecord struct {
	EventVersion      string            `json:"eventVersion"`
	EventSource       string            `json:"eventSource"`
	AWSRegion         string            `json:"awsRegion"`
	EventTime         string            `json:"eventTime"`
	EventName         string            `json:"eventName"`
	UserIdentity      principal         `json:"userIdentity"`
	RequestParameters map[string]string `json:"requestParameters"`
	ResponseElements  map[string]string `json:"responseElements"`
	S3                struct {
		SchemaVersion   string `json:"s3SchemaVersion"`
		ConfigurationID string `json:"configurationId"`
		Bucket          struct {
			Name          string    `json:"name"`
			OwnerIdentity principal `json:"ownerIdentity"`
			ARN           string    `json:"arn"`
		} `json:"bucket"`
		Object struct {
			Key       string `json:"key"`
			Size      int64  `json:"size"`
			ETag      string `json:"eTag"`
			VersionID string `json:"versionId,omitempty"`
			Sequencer string `json:"sequencer"`
		} `json:"object"`
	} `json:"s3"`
}

// principal is the identity blocks of an S3 event.
type principal struct {
	PrincipalID string `json:"principalId"`
}
