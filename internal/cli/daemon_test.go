package cli

import (
	"net"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/stretchr/testify/require"

	"github.com/viaduct-nys/viaduct/pkg/awstest"
	"github.com/viaduct-nys/viaduct/pkg/pgtest"
)

// TestPortInUseStopsTheDaemonBeforeAnyMessageIsTaken runs Engine 1 with its ops port already taken: the daemon
// refuses to start, naming the port, and the waiting notification is still on the queue, untouched, for a daemon
// that can start.
func TestPortInUseStopsTheDaemonBeforeAnyMessageIsTaken(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	env, stopAWS, err := awstest.Start(ctx)
	require.NoError(t, err)
	t.Cleanup(stopAWS)
	res, err := env.CreateResources(ctx, awstest.UniqueNames("portclash"), nil)
	require.NoError(t, err)
	const key = "COVID19_ECLRS_Export_positive_2026-12-04 1000.txt"
	require.NoError(t, env.Upload(ctx, res.Names.Bucket, key, strings.NewReader("not read\n")))
	require.NoError(t, env.Announce(ctx, res, res.Names.Bucket, key, awstest.AnnounceOpts{}))
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer taken.Close()

	db := pgtest.New(t)
	vars := map[string]string{}
	for _, kv := range daemonEnv(env, db) {
		k, v, _ := strings.Cut(kv, "=")
		vars[k] = v
	}
	if vars["AWS_ENDPOINT_URL"] == "" {
		vars["AWS_ENDPOINT_URL"] = env.Endpoint
	}
	out := runCLI(t, vars, "run", "--e1", "--sqs-queue-url", res.QueueURL, "--http-addr", taken.Addr().String())
	require.Equal(t, 1, out.code, "stderr:\n%s", out.stderr)
	require.Contains(t, out.stderr, "listening on "+taken.Addr().String()+" (--http-addr)")

	got, err := env.SQS.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(res.QueueURL),
		MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{
			sqstypes.MessageSystemAttributeNameApproximateReceiveCount}})
	require.NoError(t, err)
	require.Len(t, got.Messages, 1, "the notification is still on the queue")
	require.Equal(t, "1", got.Messages[0].Attributes["ApproximateReceiveCount"], "and nobody received it before")
}
