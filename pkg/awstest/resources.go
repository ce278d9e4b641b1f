package awstest

import (
	"crypto/rand"
	"encoding/hex"
	"strings"
	"time"
)

// The resource names used by the tests, the demo, localstack/init/ready.d/10-resources.sh and .ci/fauxqs-init.json.
// TestInitFilesMatchConstants fails when those files drift from these values. The bucket's notification
// configuration is not repeated anywhere: it is bucket-notification.json, read by Go and by the LocalStack script.
const (
	// BucketName is the bucket the ECLRS exports are uploaded to.
	BucketName = "eclrs-exports"
	// QueueName is the queue engine 1 listens on.
	QueueName = "eclrs-notifications"
	// DeadLetterQueueName receives messages that failed MaxReceiveCount times.
	DeadLetterQueueName = "eclrs-notifications-dlq"
	// TopicName is the SNS topic the bucket notifies and the queue subscribes to.
	TopicName = "eclrs-exports"
	// Region is the region every emulator is addressed in.
	Region = "us-east-1"
	// AccountID is the account LocalStack and fauxqs put in ARNs and queue URLs, and the one the in-process
	// emulator is told to use, so ARNs look alike everywhere.
	AccountID = "000000000000"
	// MaxReceiveCount is how often a message may be received before SQS moves it to the dead-letter queue.
	MaxReceiveCount = 5
	// DefaultVisibilityTimeout is the queue's visibility timeout unless CreateOpts says otherwise. It is long because
	// an import of a 300 MB export runs for minutes; engine 1 also extends visibility while it works.
	DefaultVisibilityTimeout = 15 * time.Minute
)

// Names are the names of one set of resources: a bucket announcing to a topic, which feeds a queue with a
// dead-letter queue.
type Names struct {
	Bucket string // S3 bucket the exports are uploaded to
	DLQ    string // SQS dead-letter queue of Queue
	Queue  string // SQS queue subscribed to Topic
	Topic  string // SNS topic the bucket notifies
}

// DefaultNames returns the canonical names, the ones the LocalStack and fauxqs init files create.
func DefaultNames() Names {
	return Names{Bucket: BucketName, DLQ: DeadLetterQueueName, Queue: QueueName, Topic: TopicName}
}

// UniqueNames returns names no other caller gets, so tests sharing one emulator (goaws state is per process, an
// external emulator is per machine) do not read each other's messages. prefix, typically t.Name(), is folded into
// the characters bucket and queue names allow and shortened; a random suffix makes the names unique.
func UniqueNames(prefix string) Names {
	base := sanitizeName(prefix)
	if len(base) > 30 {
		base = strings.TrimRight(base[:30], "-")
	}
	if base == "" {
		base = "test"
	}

	var b [4]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never returns an error.
	base += "-" + hex.EncodeToString(b[:])

	return Names{
		Bucket: base + "-exports",
		DLQ:    base + "-notifications-dlq",
		Queue:  base + "-notifications",
		Topic:  base + "-exports",
	}
}

// sanitizeName keeps what is valid in both a bucket name (lower case, digits, hyphen) and a queue or topic name,
// turning everything else into single hyphens.
func sanitizeName(s string) string {
	var b strings.Builder
	lastHyphen := true // drops leading hyphens; buckets must start with a letter or digit
	for _, r := range strings.ToLower(s) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
			lastHyphen = false
		case !lastHyphen:
			b.WriteByte('-')
			lastHyphen = true
		}
	}
	return strings.TrimRight(b.String(), "-")
}
