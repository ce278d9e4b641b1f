package e1

import (
	"context"
	"errors"
	"testing"
	"time"

	wmsqs "github.com/ThreeDotsLabs/watermill-aws/sqs"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/stretchr/testify/require"

	"github.com/viaduct-nys/viaduct/pkg/awstest"
)

// failingUnmarshaler is an inner unmarshaler that refuses everything.
type failingUnmarshaler struct{}

func (failingUnmarshaler) Unmarshal(*types.Message) (*message.Message, error) {
	return nil, errors.New("refused")
}

func TestReceiptHandleUnmarshaler(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name     string
		inner    wmsqs.Unmarshaler
		msg      types.Message
		wantMeta message.Metadata
		wantUUID string
		wantErr  string
	}{
		{
			name:     "CopiesReceiptHandle",
			msg:      types.Message{MessageId: aws.String("m1"), ReceiptHandle: aws.String("rh1"), Body: aws.String("{}")},
			wantMeta: message.Metadata{ReceiptHandleMetadataKey: "rh1"},
			wantUUID: "m1",
		},
		{
			name: "CopiesReceiveCountAndKeepsAttributes",
			msg: types.Message{
				MessageId:     aws.String("m2"),
				ReceiptHandle: aws.String("rh2"),
				Attributes:    map[string]string{"ApproximateReceiveCount": "3"},
				MessageAttributes: map[string]types.MessageAttributeValue{
					"origin": {DataType: aws.String("String"), StringValue: aws.String("test")},
				},
			},
			wantMeta: message.Metadata{ReceiptHandleMetadataKey: "rh2", ReceiveCountMetadataKey: "3", "origin": "test"},
			wantUUID: "m2",
		},
		{
			name:     "NoReceiptHandle",
			msg:      types.Message{MessageId: aws.String("m3")},
			wantMeta: message.Metadata{},
			wantUUID: "m3",
		},
		{
			name:    "InnerError",
			inner:   failingUnmarshaler{},
			msg:     types.Message{ReceiptHandle: aws.String("rh4")},
			wantErr: "refused",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ReceiptHandleUnmarshaler{Unmarshaler: tt.inner}.Unmarshal(&tt.msg)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.wantUUID, got.UUID)
			require.Equal(t, tt.wantMeta, got.Metadata)
		})
	}
}

// TestExtendVisibility runs a real watermill-aws subscriber against the configured AWS endpoint (in-process
// emulators unless AWS_ENDPOINT_URL* says otherwise): the handler sees the receipt handle, and extending with it
// keeps the message hidden well past the queue's visibility timeout; once extending stops, the message returns.
func TestExtendVisibility(t *testing.T) {
	t.Parallel()

	const visibility = 2 * time.Second
	ctx := context.Background()

	env, cleanup, err := awstest.Start(ctx)
	require.NoError(t, err)
	t.Cleanup(cleanup)
	res, err := env.CreateResources(ctx, awstest.UniqueNames(t.Name()), &awstest.CreateOpts{VisibilityTimeout: visibility})
	require.NoError(t, err)

	_, err = env.SQS.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(res.QueueURL), MessageBody: aws.String(`{"Records":[]}`)})
	require.NoError(t, err)

	sub, err := wmsqs.NewSubscriber(wmsqs.SubscriberConfig{
		AWSConfig:                   env.AWSConfig,
		QueueUrlResolver:            wmsqs.TransparentUrlResolver{},
		DoNotCreateQueueIfNotExists: true,
		Unmarshaler:                 ReceiptHandleUnmarshaler{},
		GenerateReceiveMessageInput: func(ctx context.Context, queueURL wmsqs.QueueURL) (*sqs.ReceiveMessageInput, error) {
			in, err := wmsqs.GenerateReceiveMessageInputDefault(ctx, queueURL)
			if err != nil {
				return nil, err
			}
			in.WaitTimeSeconds = 1 // keeps Close quick
			in.MessageSystemAttributeNames = []types.MessageSystemAttributeName{types.MessageSystemAttributeNameApproximateReceiveCount}
			return in, nil
		},
	}, nil)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, sub.Close()) })

	subCtx, cancelSub := context.WithCancel(ctx)
	t.Cleanup(cancelSub)
	messages, err := sub.Subscribe(subCtx, res.QueueURL)
	require.NoError(t, err)

	next := func(within time.Duration) *message.Message {
		t.Helper()
		select {
		case msg := <-messages:
			return msg
		case <-time.After(within):
			require.FailNow(t, "the subscriber delivered nothing", "waited %s", within)
			return nil
		}
	}

	first := next(10 * time.Second)
	receipt := first.Metadata.Get(ReceiptHandleMetadataKey)
	require.NotEmpty(t, receipt)
	require.Equal(t, "1", first.Metadata.Get(ReceiveCountMetadataKey))

	extendCtx, stopExtending := context.WithCancel(ctx)
	errs := make(chan error, 100)
	extended := make(chan struct{})
	go func() {
		defer close(extended)
		ExtendVisibility(extendCtx, env.SQS, res.QueueURL, receipt, visibility/4, visibility, func(err error) { errs <- err })
	}()

	// Three visibility timeouts: without the extension the message would be back by now. Another client watches
	// the queue meanwhile, since the subscriber's only worker waits for the first message's ack.
	deadline := time.Now().Add(3 * visibility)
	for time.Now().Before(deadline) {
		out, err := env.SQS.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(res.QueueURL), WaitTimeSeconds: 1})
		require.NoError(t, err)
		require.Empty(t, out.Messages, "the message became visible while its visibility was being extended")
	}
	stopExtending()
	<-extended
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}

	// Control: with the extension stopped the message comes back after one timeout. Nack frees the worker (it
	// deletes nothing; watermill-aws leaves the message to its timeout).
	first.Nack()
	second := next(3 * visibility)
	require.Equal(t, first.UUID, second.UUID, "the same SQS message")
	require.NotEmpty(t, second.Metadata.Get(ReceiptHandleMetadataKey))
	require.NotEqual(t, receipt, second.Metadata.Get(ReceiptHandleMetadataKey), "a new receive gets a new receipt handle")
	if env.Emulator != awstest.EmulatorInProcess { // goaws reports every receive as the first
		require.Equal(t, "2", second.Metadata.Get(ReceiveCountMetadataKey))
	}
	second.Ack()

	// The ack deletes the message: the queue drains.
	for start := time.Now(); ; {
		out, err := env.SQS.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
			QueueUrl: aws.String(res.QueueURL),
			AttributeNames: []types.QueueAttributeName{
				types.QueueAttributeNameApproximateNumberOfMessages,
				types.QueueAttributeNameApproximateNumberOfMessagesNotVisible,
			},
		})
		require.NoError(t, err)
		if out.Attributes["ApproximateNumberOfMessages"] == "0" && out.Attributes["ApproximateNumberOfMessagesNotVisible"] == "0" {
			break
		}
		require.Less(t, time.Since(start), 10*time.Second, "the acked message was not deleted: %v", out.Attributes)
		time.Sleep(100 * time.Millisecond)
	}
}

func TestExtendVisibilityStopsWithContext(t *testing.T) {
	t.Parallel()

	// A client pointing nowhere: every call fails, and the failures must reach onErr without stopping the loop.
	client := sqs.New(sqs.Options{
		Region:           awstest.Region,
		BaseEndpoint:     aws.String("http://127.0.0.1:1"),
		RetryMaxAttempts: 1,
		Credentials:      aws.AnonymousCredentials{},
	})

	ctx, cancel := context.WithCancel(context.Background())
	errs := make(chan error, 100)
	done := make(chan struct{})
	go func() {
		defer close(done)
		ExtendVisibility(ctx, client, "http://127.0.0.1:1/000000000000/q", "rh", 10*time.Millisecond, time.Second, func(err error) { errs <- err })
	}()

	for range 2 {
		select {
		case err := <-errs:
			require.ErrorContains(t, err, "extending visibility of SQS message by 1s")
		case <-time.After(10 * time.Second):
			require.FailNow(t, "no error reported")
		}
	}
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		require.FailNow(t, "ExtendVisibility did not return after its context was cancelled")
	}
}
