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
// unchanged against fauxqs (.ci/fauxqs.sh) or LocalStack (localstack/).
//
// # What the emulators cannot do
//
// None of the emulators that run without Docker delivers S3 event notifications. [Env.Announce] therefore sends the
// message S3 would have sent, through SNS or straight to the queue. Against LocalStack (AWS_EMULATOR=localstack) the
// bucket's real notification configuration delivers it, and Announce does nothing.
//
// goaws keeps its state in package globals, so the in-process SQS/SNS state is shared by every [Start] in a process
// while at least one is running. Tests that run in parallel should take their own resource names from
// [UniqueNames].
//
// The package imports no testing code: the demo subcommand links it into the daemon.
package awstest
