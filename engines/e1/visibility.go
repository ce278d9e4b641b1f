package e1

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	wmsqs "github.com/ThreeDotsLabs/watermill-aws/sqs"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// ReceiptHandleMetadataKey is the watermill metadata key under which ReceiptHandleUnmarshaler stores the SQS receipt
// handle. The handle is what ChangeMessageVisibility needs, and watermill-aws keeps it to itself.
const ReceiptHandleMetadataKey = "sqs_receipt_handle"

// ReceiveCountMetadataKey is the metadata key for the message's ApproximateReceiveCount, present when the receive
// request asked for that system attribute (MessageSystemAttributeNames). It tells a first delivery from a retry.
const ReceiveCountMetadataKey = "sqs_approximate_receive_count"

// maxVisibilityTimeout is the longest visibility timeout SQS accepts, 12 hours.
const maxVisibilityTimeout = 12 * time.Hour

// ReceiptHandleUnmarshaler wraps the default unmarshaler and copies the receipt handle into metadata.
//
// watermill-aws v1.0.3 passes the whole received types.Message to SubscriberConfig.Unmarshaler and nothing of it to
// the handler but body, message attributes and MessageId (as the UUID). This is the one hook that sees the receipt
// handle. Its zero value wraps wmsqs.DefaultMarshalerUnmarshaler.
type ReceiptHandleUnmarshaler struct {
	// Unmarshaler does the actual conversion. Defaults to wmsqs.DefaultMarshalerUnmarshaler.
	Unmarshaler wmsqs.Unmarshaler
}

// Unmarshal implements wmsqs.Unmarshaler.
func (u ReceiptHandleUnmarshaler) Unmarshal(msg *types.Message) (*message.Message, error) {
	inner := u.Unmarshaler
	if inner == nil {
		inner = wmsqs.DefaultMarshalerUnmarshaler{}
	}
	out, err := inner.Unmarshal(msg)
	if err != nil {
		return nil, err
	}
	if out.Metadata == nil {
		out.Metadata = message.Metadata{}
	}
	if msg.ReceiptHandle != nil {
		out.Metadata.Set(ReceiptHandleMetadataKey, *msg.ReceiptHandle)
	}
	if n, ok := msg.Attributes[string(types.MessageSystemAttributeNameApproximateReceiveCount)]; ok {
		out.Metadata.Set(ReceiveCountMetadataKey, n)
	}
	return out, nil
}

// ExtendVisibility calls ChangeMessageVisibility at once and then every interval (extending by `timeout`) until ctx
// is done; errors are passed to onErr and do not stop it.
//
// Run it in a goroutine for the length of a long import, with interval well below timeout (a third, say) so one
// failed call still leaves time for the next. timeout is rounded up to whole seconds, at least one, and capped at
// SQS's 12 hours; an interval of zero or less means timeout/3. onErr may be nil. The context's own cancellation is
// not reported: stopping is not a failure. Once the message is deleted SQS answers with an error, so stop extending
// before acknowledging.
func ExtendVisibility(ctx context.Context, client *sqs.Client, queueURL, receiptHandle string, interval, timeout time.Duration, onErr func(error)) {
	timeout = min(timeout, maxVisibilityTimeout)
	// Zero would make the message visible at once, the opposite of what the caller wants.
	seconds := max(int32(math.Ceil(timeout.Seconds())), 1)
	if interval <= 0 {
		interval = max(timeout/3, time.Second)
	}

	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		// The first extension goes out at once: the queue's own visibility timeout may be seconds, shorter than
		// the wait for another daemon's import, and a message that reappears is received again, spending one of
		// the receives its redrive policy allows.
		_, err := client.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{
			QueueUrl:          aws.String(queueURL),
			ReceiptHandle:     aws.String(receiptHandle),
			VisibilityTimeout: seconds,
		})
		if err != nil && onErr != nil && !errors.Is(err, context.Canceled) && ctx.Err() == nil {
			onErr(fmt.Errorf("extending visibility of SQS message by %ds: %w", seconds, err))
		}
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}
