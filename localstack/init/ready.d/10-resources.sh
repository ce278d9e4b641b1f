#!/bin/bash
# Creates what viaduct expects in AWS: a bucket that announces new exports to an SNS topic, and a queue with a
# dead-letter queue subscribed to that topic (SNS envelope, not raw delivery, as the production chain delivers).
# LocalStack runs this once it is ready. The names must match pkg/awstest/resources.go and .ci/fauxqs-init.json;
# pkg/awstest's TestInitFilesMatchConstants reads the assignments below. Putting the bucket notification makes S3
# send an s3:TestEvent through the topic: it is the first message on the queue, and engine 1 acknowledges it.
set -euo pipefail

BUCKET=eclrs-exports
QUEUE=eclrs-notifications
DLQ=eclrs-notifications-dlq
TOPIC=eclrs-exports
REGION=us-east-1
# Seconds. Above the longest import: an ECLRS export of 300 MB takes minutes, and engine 1 extends it while working.
VISIBILITY_TIMEOUT=900
MAX_RECEIVE_COUNT=5
NOTIFICATION=/opt/viaduct/bucket-notification.json

export AWS_DEFAULT_REGION=$REGION
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

awslocal s3api head-bucket --bucket "$BUCKET" 2>/dev/null || awslocal s3api create-bucket --bucket "$BUCKET"

dlq_url=$(awslocal sqs create-queue --queue-name "$DLQ" --query QueueUrl --output text)
dlq_arn=$(awslocal sqs get-queue-attributes --queue-url "$dlq_url" --attribute-names QueueArn --query Attributes.QueueArn --output text)

topic_arn=$(awslocal sns create-topic --name "$TOPIC" --query TopicArn --output text)

queue_url=$(awslocal sqs create-queue --queue-name "$QUEUE" --query QueueUrl --output text)
queue_arn=$(awslocal sqs get-queue-attributes --queue-url "$queue_url" --attribute-names QueueArn --query Attributes.QueueArn --output text)

# Attribute values that are themselves JSON go through a file to keep the quoting readable.
cat >"$tmp/queue-attributes.json" <<EOF
{
  "VisibilityTimeout": "$VISIBILITY_TIMEOUT",
  "RedrivePolicy": "{\"deadLetterTargetArn\":\"$dlq_arn\",\"maxReceiveCount\":\"$MAX_RECEIVE_COUNT\"}",
  "Policy": "{\"Version\":\"2012-10-17\",\"Statement\":[{\"Sid\":\"topic-to-queue\",\"Effect\":\"Allow\",\"Principal\":{\"Service\":\"sns.amazonaws.com\"},\"Action\":\"sqs:SendMessage\",\"Resource\":\"$queue_arn\",\"Condition\":{\"ArnEquals\":{\"aws:SourceArn\":\"$topic_arn\"}}}]}"
}
EOF
awslocal sqs set-queue-attributes --queue-url "$queue_url" --attributes "file://$tmp/queue-attributes.json"

# Let the bucket publish to the topic (LocalStack does not enforce it; AWS does).
awslocal sns set-topic-attributes --topic-arn "$topic_arn" --attribute-name Policy --attribute-value \
	"{\"Version\":\"2012-10-17\",\"Statement\":[{\"Sid\":\"bucket-to-topic\",\"Effect\":\"Allow\",\"Principal\":{\"Service\":\"s3.amazonaws.com\"},\"Action\":\"sns:Publish\",\"Resource\":\"$topic_arn\",\"Condition\":{\"ArnLike\":{\"aws:SourceArn\":\"arn:aws:s3:::$BUCKET\"}}}]}"

awslocal sns subscribe --topic-arn "$topic_arn" --protocol sqs --notification-endpoint "$queue_arn" \
	--attributes RawMessageDelivery=false

# The bucket notification is defined once, in pkg/awstest/bucket-notification.json (mounted by docker-compose.yml),
# which the integration tests put on their own buckets too: s3:ObjectCreated:* for keys ending in ".txt" or ".TXT"
# (S3 suffix filters are case-sensitive and ECLRS exports end in ".TXT"; engine 1 accepts any case, IsImportable).
sed "s|TOPIC_ARN|$topic_arn|g" "$NOTIFICATION" >"$tmp/bucket-notification.json"
awslocal s3api put-bucket-notification-configuration --bucket "$BUCKET" \
	--notification-configuration "file://$tmp/bucket-notification.json"

# Read by the compose healthcheck: everything above exists.
touch /tmp/viaduct-resources-ready
echo "viaduct resources ready: bucket $BUCKET, topic $topic_arn, queue $queue_url (DLQ $dlq_url)"
