package awstest

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/stretchr/testify/require"
)

// startEnv starts an Env for the configured endpoint and releases it at the end of the test.
func startEnv(t *testing.T) *Env {
	t.Helper()
	env, cleanup, err := Start(context.Background())
	require.NoError(t, err)
	t.Cleanup(cleanup)
	t.Logf("AWS emulator %s at %q", env.Emulator, env.Endpoint)
	return env
}

// receiveOne polls the queue until a message arrives or within has passed, and fails the test in the latter case.
func receiveOne(t *testing.T, env *Env, queueURL string, within time.Duration) sqstypes.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	for {
		out, err := env.SQS.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
			QueueUrl:            aws.String(queueURL),
			MaxNumberOfMessages: 1,
			WaitTimeSeconds:     1,
		})
		if ctx.Err() != nil {
			require.FailNow(t, "no message arrived", "queue %s, waited %s", queueURL, within)
		}
		require.NoError(t, err)
		if len(out.Messages) > 0 {
			return out.Messages[0]
		}
	}
}

// deleteMessage acknowledges a received message.
func deleteMessage(t *testing.T, env *Env, queueURL string, msg sqstypes.Message) {
	t.Helper()
	_, err := env.SQS.DeleteMessage(context.Background(), &sqs.DeleteMessageInput{QueueUrl: aws.String(queueURL), ReceiptHandle: msg.ReceiptHandle})
	require.NoError(t, err)
}

// snsEnvelope is the part of SNS's wrapper around a delivered message that the tests look at.
type snsEnvelope struct {
	Type     string
	Message  string
	Subject  string
	TopicArn string
}

// unwrap returns the S3 message inside body and whether it came in an SNS envelope.
func unwrap(t *testing.T, body string) (string, bool) {
	t.Helper()
	var env snsEnvelope
	require.NoError(t, json.Unmarshal([]byte(body), &env), "body: %s", body)
	if env.Type == "" {
		return body, false
	}
	require.Equal(t, "Notification", env.Type)
	return env.Message, true
}

// decodeEvent decodes an S3 event notification with exactly one record.
func decodeEvent(t *testing.T, body string) s3EventRecord {
	t.Helper()
	var ev s3Event
	require.NoError(t, json.Unmarshal([]byte(body), &ev), "body: %s", body)
	require.Len(t, ev.Records, 1)
	return ev.Records[0]
}

func TestEnv(t *testing.T) {
	t.Parallel()

	type testBundle struct {
		env *Env
		res Resources
	}

	setup := func(t *testing.T, opts *CreateOpts) *testBundle {
		t.Helper()
		env := startEnv(t)
		res, err := env.CreateResources(context.Background(), UniqueNames(t.Name()), opts)
		require.NoError(t, err)
		return &testBundle{env: env, res: res}
	}

	t.Run("CreateResourcesIsIdempotent", func(t *testing.T) {
		t.Parallel()
		b := setup(t, &CreateOpts{VisibilityTimeout: 5 * time.Second})

		again, err := b.env.CreateResources(context.Background(), b.res.Names, &CreateOpts{VisibilityTimeout: 7 * time.Second})
		require.NoError(t, err)
		require.Equal(t, b.res.QueueURL, again.QueueURL)
		require.Equal(t, b.res.DLQARN, again.DLQARN)
		require.Equal(t, b.res.TopicARN, again.TopicARN)

		attrs, err := b.env.SQS.GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{
			QueueUrl:       aws.String(again.QueueURL),
			AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameAll},
		})
		require.NoError(t, err)
		require.Equal(t, "7", attrs.Attributes["VisibilityTimeout"], "the second call's attributes win")
		require.Contains(t, attrs.Attributes["RedrivePolicy"], again.DLQARN)
	})

	t.Run("AnnounceRaw", func(t *testing.T) {
		t.Parallel()
		b := setup(t, &CreateOpts{SilentBucket: true})
		ctx := context.Background()

		key := "exports/COVID19 ECLRS 2020-10-20 04:02.txt"
		content := []byte("header\nrow\n")
		require.NoError(t, b.env.Upload(ctx, b.res.Names.Bucket, key, bytes.NewReader(content)))
		eventTime := time.Date(2020, 10, 20, 4, 2, 0, 123e6, time.UTC)
		require.NoError(t, b.env.Announce(ctx, b.res, b.res.Names.Bucket, key, AnnounceOpts{Raw: true, EventTime: eventTime}))

		msg := receiveOne(t, b.env, b.res.QueueURL, 10*time.Second)
		body, wrapped := unwrap(t, aws.ToString(msg.Body))
		require.False(t, wrapped)

		rec := decodeEvent(t, body)
		require.Equal(t, "aws:s3", rec.EventSource)
		require.True(t, strings.HasPrefix(rec.EventName, "ObjectCreated:"), rec.EventName)
		require.Equal(t, b.res.Names.Bucket, rec.S3.Bucket.Name)
		require.Equal(t, "exports/COVID19+ECLRS+2020-10-20+04%3A02.txt", rec.S3.Object.Key)
		require.Equal(t, int64(len(content)), rec.S3.Object.Size)
		sum := md5.Sum(content)
		require.Equal(t, hex.EncodeToString(sum[:]), rec.S3.Object.ETag)
		require.NotEmpty(t, rec.S3.Object.Sequencer)
		require.Equal(t, "2.1", rec.EventVersion)
		require.Equal(t, "2020-10-20T04:02:00.123Z", rec.EventTime)
		deleteMessage(t, b.env, b.res.QueueURL, msg)
	})

	t.Run("AnnounceThroughTopic", func(t *testing.T) {
		t.Parallel()
		b := setup(t, &CreateOpts{SilentBucket: true})
		ctx := context.Background()

		key := "positive.TXT"
		require.NoError(t, b.env.Upload(ctx, b.res.Names.Bucket, key, strings.NewReader("x")))
		require.NoError(t, b.env.Announce(ctx, b.res, b.res.Names.Bucket, key, AnnounceOpts{}))

		msg := receiveOne(t, b.env, b.res.QueueURL, 10*time.Second)
		var envelope snsEnvelope
		require.NoError(t, json.Unmarshal([]byte(aws.ToString(msg.Body)), &envelope))
		require.Equal(t, "Notification", envelope.Type)
		require.Equal(t, "Amazon S3 Notification", envelope.Subject)
		require.Equal(t, b.res.TopicARN, envelope.TopicArn)

		rec := decodeEvent(t, envelope.Message)
		require.Equal(t, key, rec.S3.Object.Key)
		require.Equal(t, int64(1), rec.S3.Object.Size)
		deleteMessage(t, b.env, b.res.QueueURL, msg)
	})

	t.Run("AnnounceThroughRawSubscription", func(t *testing.T) {
		t.Parallel()
		b := setup(t, &CreateOpts{RawMessageDelivery: true, SilentBucket: true})
		ctx := context.Background()

		require.NoError(t, b.env.Upload(ctx, b.res.Names.Bucket, "raw.txt", strings.NewReader("raw")))
		require.NoError(t, b.env.Announce(ctx, b.res, b.res.Names.Bucket, "raw.txt", AnnounceOpts{}))

		msg := receiveOne(t, b.env, b.res.QueueURL, 10*time.Second)
		body, wrapped := unwrap(t, aws.ToString(msg.Body))
		require.False(t, wrapped)
		require.Equal(t, "raw.txt", decodeEvent(t, body).S3.Object.Key)
		deleteMessage(t, b.env, b.res.QueueURL, msg)
	})

	t.Run("AnnounceTestEvent", func(t *testing.T) {
		t.Parallel()
		b := setup(t, nil)

		require.NoError(t, b.env.AnnounceTestEvent(context.Background(), b.res, AnnounceOpts{Raw: true}))

		msg := receiveOne(t, b.env, b.res.QueueURL, 10*time.Second)
		var ev map[string]string
		require.NoError(t, json.Unmarshal([]byte(aws.ToString(msg.Body)), &ev))
		require.Equal(t, "s3:TestEvent", ev["Event"])
		require.Equal(t, b.res.Names.Bucket, ev["Bucket"])
		// Where the bucket sent one when its notification was configured, CreateResources took it off the queue.
		require.Equal(t, "VIADUCTTEST", ev["RequestId"], "the test event Announce sent, not the bucket's")
		deleteMessage(t, b.env, b.res.QueueURL, msg)
	})

	t.Run("BucketSendsItsOwnNotifications", func(t *testing.T) {
		t.Parallel()
		b := setup(t, nil)
		ctx := context.Background()
		bucket := b.res.Names.Bucket

		require.Equal(t, b.env.DeliversNotifications(), b.res.BucketNotifies)
		if !b.res.BucketNotifies {
			t.Logf("%s delivers no bucket notifications; Announce publishes them (the Announce subtests)", b.env.Emulator)
			return
		}

		// The first message on the queue is the upload's: the s3:TestEvent is gone.
		key := "exports/COVID19 ECLRS+Export 2026-12-04 09:30.TXT"
		content := []byte("header\nrow\n")
		require.NoError(t, b.env.Upload(ctx, bucket, key, bytes.NewReader(content)))
		require.NoError(t, b.env.Announce(ctx, b.res, bucket, key, AnnounceOpts{}))
		msg := receiveOne(t, b.env, b.res.QueueURL, 10*time.Second)
		body, wrapped := unwrap(t, aws.ToString(msg.Body))
		require.True(t, wrapped, "through the topic, whose subscription wraps")
		rec := decodeEvent(t, body)
		require.Equal(t, "ObjectCreated:Put", rec.EventName)
		require.Equal(t, bucket, rec.S3.Bucket.Name)
		got, err := url.QueryUnescape(rec.S3.Object.Key)
		require.NoError(t, err)
		require.Equal(t, key, got, "the key, form-encoded (%s)", rec.S3.Object.Key)
		require.Equal(t, int64(len(content)), rec.S3.Object.Size)
		sum := md5.Sum(content)
		require.Equal(t, hex.EncodeToString(sum[:]), rec.S3.Object.ETag)
		deleteMessage(t, b.env, b.res.QueueURL, msg)

		// A key the configuration does not cover is not announced, and Announce does not wait for it.
		require.NoError(t, b.env.Upload(ctx, bucket, "report.csv", strings.NewReader("x")))
		require.NoError(t, b.env.Announce(ctx, b.res, bucket, "report.csv", AnnounceOpts{}))

		// A multipart upload: S3 announces its CompleteMultipartUpload; moto a Put first, for the same object.
		big := bytes.Repeat([]byte("multipart\n"), (PartSize+10)/10)
		require.NoError(t, b.env.Upload(ctx, bucket, "big.txt", bytes.NewReader(big)))
		require.NoError(t, b.env.Announce(ctx, b.res, bucket, "big.txt", AnnounceOpts{}))
		var events []string
		for {
			out, err := b.env.SQS.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(b.res.QueueURL),
				MaxNumberOfMessages: 10, WaitTimeSeconds: 1})
			require.NoError(t, err)
			if len(out.Messages) == 0 {
				break
			}
			for _, m := range out.Messages {
				body, _ := unwrap(t, aws.ToString(m.Body))
				rec := decodeEvent(t, body)
				require.Equal(t, "big.txt", rec.S3.Object.Key, "nothing for report.csv")
				require.Regexp(t, `-2$`, rec.S3.Object.ETag, "two parts")
				require.Equal(t, int64(len(big)), rec.S3.Object.Size)
				events = append(events, rec.EventName)
				deleteMessage(t, b.env, b.res.QueueURL, m)
			}
		}
		require.NotEmpty(t, events)
		require.Equal(t, "ObjectCreated:CompleteMultipartUpload", events[len(events)-1], "events: %v", events)
		if b.env.Emulator == EmulatorMoto {
			require.Equal(t, []string{"ObjectCreated:Put", "ObjectCreated:CompleteMultipartUpload"}, events)
		}
	})

	t.Run("UploadFromStream", func(t *testing.T) {
		t.Parallel()
		b := setup(t, nil)
		ctx := context.Background()

		// A reader that is not a Seeker takes the temporary-file path.
		content := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
		require.NoError(t, b.env.Upload(ctx, b.res.Names.Bucket, "stream.txt", io.MultiReader(bytes.NewReader(content))))

		out, err := b.env.S3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(b.res.Names.Bucket), Key: aws.String("stream.txt")})
		require.NoError(t, err)
		defer out.Body.Close()
		got, err := io.ReadAll(out.Body)
		require.NoError(t, err)
		require.Equal(t, content, got)
	})

	t.Run("UploadMultipart", func(t *testing.T) {
		t.Parallel()
		b := setup(t, &CreateOpts{SilentBucket: true})
		ctx := context.Background()

		content := bytes.Repeat([]byte("multipart\n"), (2*PartSize+123)/10)
		require.NoError(t, b.env.Upload(ctx, b.res.Names.Bucket, "big.TXT", bytes.NewReader(content)))

		out, err := b.env.S3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(b.res.Names.Bucket), Key: aws.String("big.TXT")})
		require.NoError(t, err)
		defer out.Body.Close()
		got, err := io.ReadAll(out.Body)
		require.NoError(t, err)
		require.True(t, bytes.Equal(content, got), "downloaded %d bytes, uploaded %d", len(got), len(content))

		require.NoError(t, b.env.Announce(ctx, b.res, b.res.Names.Bucket, "big.TXT", AnnounceOpts{Raw: true}))
		msg := receiveOne(t, b.env, b.res.QueueURL, 10*time.Second)
		body, _ := unwrap(t, aws.ToString(msg.Body))
		rec := decodeEvent(t, body)
		require.Equal(t, int64(len(content)), rec.S3.Object.Size)
		// S3 gives a multipart object the ETag md5-of-part-md5s "-" parts and announces CompleteMultipartUpload;
		// gofakes3's HeadObject gives the whole object's MD5, so Announce cannot tell and says Put.
		if strings.Contains(rec.S3.Object.ETag, "-") {
			require.Regexp(t, `-3$`, rec.S3.Object.ETag, "three parts")
			require.Equal(t, "ObjectCreated:CompleteMultipartUpload", rec.EventName)
		} else {
			require.Equal(t, EmulatorInProcess, b.env.Emulator, "only gofakes3 hides the multipart ETag")
			require.Equal(t, "ObjectCreated:Put", rec.EventName)
		}
		deleteMessage(t, b.env, b.res.QueueURL, msg)
	})

	t.Run("RedrivesToDeadLetterQueue", func(t *testing.T) {
		t.Parallel()
		b := setup(t, &CreateOpts{VisibilityTimeout: time.Second, MaxReceiveCount: 1})
		ctx := context.Background()

		_, err := b.env.SQS.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(b.res.QueueURL), MessageBody: aws.String("poison")})
		require.NoError(t, err)
		receiveOne(t, b.env, b.res.QueueURL, 10*time.Second) // and never delete it

		// SQS moves a message when a receive finds it over maxReceiveCount, goaws when its visibility expires;
		// polling the source queue first serves both.
		ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		defer cancel()
		for {
			out, err := b.env.SQS.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(b.res.QueueURL), WaitTimeSeconds: 1})
			require.NoError(t, err)
			require.Empty(t, out.Messages, "a message over maxReceiveCount must not be delivered again")

			out, err = b.env.SQS.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(b.res.DLQURL)})
			require.NoError(t, err)
			if len(out.Messages) > 0 {
				require.Equal(t, "poison", aws.ToString(out.Messages[0].Body))
				return
			}
		}
	})
}

func TestStartInProcessIsShared(t *testing.T) {
	t.Parallel()

	first := startEnv(t)
	if first.Emulator != EmulatorInProcess {
		t.Logf("endpoint configured (%s): nothing in-process to share", first.Emulator)
		return
	}
	second := startEnv(t)
	require.Equal(t, first.Endpoint, second.Endpoint)
	require.Equal(t, first.Endpoint, aws.ToString(first.AWSConfig.BaseEndpoint))

	// One endpoint serves every service, told apart by the signature; an unsigned request is S3's.
	resp, err := http.Get(first.Endpoint + "/")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode) // gofakes3's ListBuckets
}

func TestStartSelectsEndpoint(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name         string
		env          map[string]string
		wantEmulator string
		wantEndpoint string
		wantPath     bool
		wantNotifies bool
		wantErr      string
	}{
		{
			name:         "EndpointURL",
			env:          map[string]string{"AWS_ENDPOINT_URL": "http://127.0.0.1:4566"},
			wantEmulator: EmulatorExternal,
			wantEndpoint: "http://127.0.0.1:4566",
			wantPath:     true,
		},
		{
			name:         "ServiceEndpointOnly",
			env:          map[string]string{"AWS_ENDPOINT_URL_SQS": "http://127.0.0.1:4566"},
			wantEmulator: EmulatorExternal,
			wantPath:     true,
		},
		{
			name:         "LocalStack",
			env:          map[string]string{"AWS_ENDPOINT_URL": "http://localhost:4566", "AWS_EMULATOR": "localstack"},
			wantEmulator: EmulatorLocalStack,
			wantEndpoint: "http://localhost:4566",
			wantPath:     true,
			wantNotifies: true,
		},
		{
			name:         "Moto",
			env:          map[string]string{"AWS_ENDPOINT_URL": "http://127.0.0.1:5000", "AWS_EMULATOR": "moto"},
			wantEmulator: EmulatorMoto,
			wantEndpoint: "http://127.0.0.1:5000",
			wantPath:     true,
			wantNotifies: true,
		},
		{
			name:         "UnknownEmulatorIsExternal",
			env:          map[string]string{"AWS_ENDPOINT_URL": "http://127.0.0.1:4566", "AWS_EMULATOR": "fauxqs"},
			wantEmulator: EmulatorExternal,
			wantEndpoint: "http://127.0.0.1:4566",
			wantPath:     true,
		},
		{
			name:         "VirtualHostStyle",
			env:          map[string]string{"AWS_ENDPOINT_URL": "http://s3.example:4566", "S3_USE_PATH_STYLE": "false"},
			wantEmulator: EmulatorExternal,
			wantEndpoint: "http://s3.example:4566",
		},
		{
			name:    "BadPathStyle",
			env:     map[string]string{"AWS_ENDPOINT_URL": "http://127.0.0.1:4566", "S3_USE_PATH_STYLE": "sometimes"},
			wantErr: "S3_USE_PATH_STYLE",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			env, cleanup, err := start(context.Background(), func(k string) string { return tt.env[k] })
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			defer cleanup()
			require.Equal(t, tt.wantEmulator, env.Emulator)
			require.Equal(t, tt.wantNotifies, env.DeliversNotifications())
			require.Equal(t, tt.wantEndpoint, env.Endpoint)
			require.Equal(t, tt.wantPath, env.S3UsePathStyle)
			require.Equal(t, Region, env.AWSConfig.Region)
		})
	}
}

func TestUniqueNames(t *testing.T) {
	t.Parallel()

	bucketRE := regexp.MustCompile(`^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$`)
	queueRE := regexp.MustCompile(`^[A-Za-z0-9_-]{1,80}$`)

	tests := []struct {
		name   string
		prefix string
	}{
		{name: "TestName", prefix: "TestEnv/AnnounceRaw"},
		{name: "Empty", prefix: ""},
		{name: "OnlySymbols", prefix: "/#!"},
		{name: "Long", prefix: strings.Repeat("Abc_", 40)},
		{name: "Unicode", prefix: "Größe ✓ 10"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a, b := UniqueNames(tt.prefix), UniqueNames(tt.prefix)
			require.NotEqual(t, a, b)
			for _, n := range []Names{a, b} {
				require.Regexp(t, bucketRE, n.Bucket)
				for _, q := range []string{n.Queue, n.DLQ, n.Topic} {
					require.Regexp(t, queueRE, q)
				}
			}
		})
	}
}

func TestEncodeEventKey(t *testing.T) {
	t.Parallel()

	tests := []struct {
		key  string
		want string
	}{
		{key: "plain.txt", want: "plain.txt"},
		{key: "COVID19_ECLRS_Export_positive_2020-10-20 0402.TXT", want: "COVID19_ECLRS_Export_positive_2020-10-20+0402.TXT"},
		{key: "dir/sub dir/a:b.txt", want: "dir/sub+dir/a%3Ab.txt"},
		{key: "plus+percent%.txt", want: "plus%2Bpercent%25.txt"},
		{key: "ünïcode.txt", want: "%C3%BCn%C3%AFcode.txt"},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.want, EncodeEventKey(tt.key))
		})
	}
}

func TestObjectCreatedEvent(t *testing.T) {
	t.Parallel()

	at := time.Date(2020, 10, 20, 4, 2, 0, 0, time.FixedZone("EDT", -4*3600))
	body, err := ObjectCreatedEvent(ObjectInfo{Bucket: "b", Key: "a b.txt", Size: 42, ETag: "abc", VersionID: "v1"},
		AnnounceOpts{EventTime: at, EventName: "ObjectCreated:CompleteMultipartUpload"})
	require.NoError(t, err)

	// Check the wire names, not just a round trip through our own struct.
	var generic struct {
		Records []map[string]any
	}
	require.NoError(t, json.Unmarshal(body, &generic))
	require.Len(t, generic.Records, 1)
	r := generic.Records[0]
	require.Equal(t, "2.1", r["eventVersion"])
	require.Equal(t, "aws:s3", r["eventSource"])
	require.Equal(t, "2020-10-20T08:02:00.000Z", r["eventTime"])
	require.Equal(t, "ObjectCreated:CompleteMultipartUpload", r["eventName"])
	s3 := r["s3"].(map[string]any)
	require.Equal(t, "b", s3["bucket"].(map[string]any)["name"])
	obj := s3["object"].(map[string]any)
	require.Equal(t, "a+b.txt", obj["key"])
	require.InDelta(t, 42, obj["size"], 0)
	require.Equal(t, "abc", obj["eTag"])
	require.Equal(t, "v1", obj["versionId"])
	require.Regexp(t, `^[0-9A-F]{18}$`, obj["sequencer"])

	test, err := S3TestEvent("b", at)
	require.NoError(t, err)
	require.JSONEq(t, `{"Service":"Amazon S3","Event":"s3:TestEvent","Time":"2020-10-20T08:02:00.000Z","Bucket":"b","RequestId":"VIADUCTTEST","HostId":"viaduct/test"}`, string(test))
}

func TestBucketNotification(t *testing.T) {
	t.Parallel()

	const topic = "arn:aws:sns:us-east-1:000000000000:eclrs-exports"
	config, err := BucketNotification(topic)
	require.NoError(t, err)
	require.Equal(t, []string{".txt", ".TXT"}, NotificationSuffixes)
	require.Len(t, config.TopicConfigurations, len(NotificationSuffixes))
	for i, c := range config.TopicConfigurations {
		require.Equal(t, "eclrs-created"+NotificationSuffixes[i], aws.ToString(c.Id))
		require.Equal(t, topic, aws.ToString(c.TopicArn))
		require.Equal(t, []s3types.Event{"s3:ObjectCreated:*"}, c.Events)
	}
	require.Empty(t, config.QueueConfigurations)
	require.Empty(t, config.LambdaFunctionConfigurations)

	for key, want := range map[string]bool{"a.txt": true, "dir/A.TXT": true, "a.Txt": false, "a.csv": false, "txt": false} {
		require.Equal(t, want, bucketAnnounces(key), key)
	}
}

func TestSigningService(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name   string
		header map[string]string
		query  string
		want   string
	}{
		{
			name:   "SQS",
			header: map[string]string{"Authorization": "AWS4-HMAC-SHA256 Credential=test/20261121/us-east-1/sqs/aws4_request, SignedHeaders=host, Signature=00"},
			want:   "sqs",
		},
		{
			name:   "SNS",
			header: map[string]string{"Authorization": "AWS4-HMAC-SHA256 Credential=test/20261121/us-east-1/sns/aws4_request, SignedHeaders=host, Signature=00"},
			want:   "sns",
		},
		{
			name:   "S3",
			header: map[string]string{"Authorization": "AWS4-HMAC-SHA256 Credential=test/20261121/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=00"},
			want:   "s3",
		},
		{
			name:  "Presigned",
			query: "X-Amz-Credential=test%2F20261121%2Fus-east-1%2Fs3%2Faws4_request",
			want:  "s3",
		},
		{
			name:   "UnsignedSQS",
			header: map[string]string{"X-Amz-Target": "AmazonSQS.ReceiveMessage"},
			want:   "sqs",
		},
		{
			name: "Unsigned",
			want: "s3",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r, err := http.NewRequest(http.MethodPost, "http://127.0.0.1/?"+tt.query, nil)
			require.NoError(t, err)
			for k, v := range tt.header {
				r.Header.Set(k, v)
			}
			require.Equal(t, tt.want, signingService(r))
		})
	}
}
