package e1

import (
	"context"
	"errors"
	"net"
	"testing"

	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/smithy-go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/viaduct-nys/viaduct/pkg/awstest"
)

// TestMissingQueueIsReported runs Engine 1 on a queue that does not exist: it keeps running, and says why it reads
// nothing, since when, in its ReceiveProblem and its metrics.
func TestMissingQueueIsReported(t *testing.T) {
	t.Parallel()
	env, stop, err := awstest.Start(context.Background())
	require.NoError(t, err)
	t.Cleanup(stop)
	reg := prometheus.NewRegistry()
	e := newQueueEngine(t, env, "e1missing", nil, func(c *Config, d *Deps) {
		c.QueueURL += "-missing"
		c.UntilIdle = false
		d.Metrics = NewMetrics(reg)
	})
	e.TestSignals.Init(t)
	require.Nil(t, e.ReceiveProblem(), "no problem before the first receive")

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	first := e.TestSignals.ReceiveFailed.WaitOrTimeout()
	second := e.TestSignals.ReceiveFailed.WaitOrTimeout()
	cancel()
	require.NoError(t, <-done, "the engine keeps running on a missing queue; only the stop ends it")

	require.Equal(t, ReasonQueueMissing, first.Reason, first.Message)
	require.Equal(t, first.Since, second.Since, "the problem is dated from its first failure")
	require.Equal(t, first.Errors+1, second.Errors)
	p := e.ReceiveProblem()
	require.NotNil(t, p)
	require.Equal(t, ReasonQueueMissing, p.Reason)
	require.GreaterOrEqual(t, testutil.ToFloat64(e.deps.Metrics.receiveErrors.WithLabelValues(ReasonQueueMissing)), 2.0)
}

func TestReceiveReason(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"QueueDoesNotExist", &smithy.GenericAPIError{Code: "AWS.SimpleQueueService.NonExistentQueue"}, ReasonQueueMissing},
		{"QueueDoesNotExistJSON", &smithy.GenericAPIError{Code: "QueueDoesNotExist"}, ReasonQueueMissing},
		{"AccessDenied", &smithy.GenericAPIError{Code: "AccessDenied"}, ReasonAccessDenied},
		{"BadKey", &smithy.GenericAPIError{Code: "InvalidClientTokenId"}, ReasonBadCredentials},
		{"BadSignature", &smithy.GenericAPIError{Code: "SignatureDoesNotMatch"}, ReasonBadCredentials},
		{"NoCredentials", &v4.SigningError{Err: errors.New("failed to retrieve credentials: no EC2 IMDS role found")},
			ReasonNoCredentials},
		{"WrongRegion", &net.DNSError{Err: "no such host", Name: "sqs.mars-1.amazonaws.com", IsNotFound: true},
			ReasonUnreachable},
		{"Throttled", &smithy.GenericAPIError{Code: "ThrottlingException"}, ReasonOther},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.want, receiveReason(tt.err))
		})
	}
}
