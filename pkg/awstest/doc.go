// Package awstest gives integration tests and the daemon's demo subcommand an S3, SQS and SNS endpoint, the
// resources viaduct expects on it, and a way to announce an uploaded object the way S3 would.
//
// # Choosing the endpoint
//
// [Start] looks at AWS_ENDPOINT_URL, AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL_SQS and AWS_ENDPOINT_URL_SNS. When none
// is set it starts in-process emulators behind one loopback URL, the way LocalStack and fauxqs serve all three
// services on one port: gofakes3 (memory backend) answers S3 and goaws answers SQS and SNS. Requests are told apart
// by the service named in their SigV4 signature, so one aws.Config with one BaseEndpoint serves every client. When
// an endpoint variable is set, the SDK's default configuration chain is used instead, so the same tests run
// unchanged against fauxqs (.ci/fauxqs.sh), moto (.ci/moto.sh) or LocalStack (localstack/).
//
// # Who sends the notification
//
// gofakes3 and fauxqs deliver no S3 event notifications: there [Env.Announce] sends the message S3 would have sent,
// through SNS or straight to the queue. moto (AWS_EMULATOR=moto) and LocalStack (AWS_EMULATOR=localstack) do, once
// the bucket has a notification configuration. There [Env.CreateResources] puts the one bucket-notification.json
// defines (the same that localstack/init puts), takes off the queue the s3:TestEvent that saving it sends, and
// Announce publishes nothing: it waits until the bucket has sent its own message for the object, so what reaches
// Engine 1 is what the emulator wrote (moto's has a zone-less eventTime, form-encoded keys, no sequencer, and two
// messages for a multipart upload). Tests that choose what the notification says create their resources with
// [CreateOpts].SilentBucket and keep publishing their own.
//
// goaws keeps its state in package globals, so the in-process SQS/SNS state is shared by every [Start] in a process
// while at least one is running. Tests that run in parallel should take their own resource names from
// [UniqueNames].
//
// The package imports no testing code: the demo subcommand links it into the daemon.
package awstest
