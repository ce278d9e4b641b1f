package e1

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
	"go.uber.org/zap"

	"github.com/viaduct-nys/viaduct/pkg/poll"
)

// Reasons Engine 1 cannot read its queue, as ReceiveProblem.Reason and the receive_errors metric name them.
const (
	ReasonQueueMissing   = "queue_missing"
	ReasonAccessDenied   = "access_denied"
	ReasonNoCredentials  = "no_credentials"
	ReasonBadCredentials = "bad_credentials"
	ReasonUnreachable    = "unreachable"
	ReasonOther          = "other"
)

// ReceiveProblem says why Engine 1 cannot read its queue: until it can, no export is imported, however many S3
// announces. Watermill retries every second by itself; this is what an operator needs from those retries.
type ReceiveProblem struct {
	// Reason is one of the Reason constants.
	Reason string `json:"reason"`
	// Message is the newest error as AWS worded it (it names the queue or the missing permission, never a secret).
	Message string `json:"message"`
	// Since is when receiving started failing; Errors counts the failed receives since then.
	Since  time.Time `json:"since"`
	Errors int64     `json:"errors"`
}

// receiveLogEvery is how often a receive failure that goes on is logged again: often enough to be seen in the
// logs of the last hour, not once a second as watermill retries.
const receiveLogEvery = 5 * time.Minute

// receiveHealth follows the outcome of every ReceiveMessage call the subscriber makes.
type receiveHealth struct {
	queueURL string
	logger   *zap.Logger
	metrics  *Metrics
	failed   poll.Signal[ReceiveProblem]

	mu      sync.Mutex
	problem *ReceiveProblem
	logged  time.Time
}

// observe records the outcome of one ReceiveMessage call.
func (h *receiveHealth) observe(err error) {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return // stopping, or a long poll cut short: says nothing about the queue
	}
	now := time.Now()
	h.mu.Lock()
	defer h.mu.Unlock()
	if err == nil {
		if h.problem != nil {
			h.logger.Info("reading the queue again", zap.String("queue_url", h.queueURL),
				zap.String("reason", h.problem.Reason), zap.Duration("failing_for", now.Sub(h.problem.Since).Round(time.Second)),
				zap.Int64("failed_receives", h.problem.Errors))
			h.problem = nil
		}
		return
	}
	reason := receiveReason(err)
	h.metrics.receiveError(reason)
	if h.problem == nil || h.problem.Reason != reason {
		h.problem = &ReceiveProblem{Reason: reason, Since: now}
		h.logged = time.Time{}
	}
	h.problem.Message = err.Error()
	h.problem.Errors++
	if now.Sub(h.logged) >= receiveLogEvery {
		h.logger.Error("cannot read the queue: no export is imported until this is fixed",
			zap.String("queue_url", h.queueURL), zap.String("reason", reason), zap.Time("since", h.problem.Since),
			zap.Int64("failed_receives", h.problem.Errors), zap.Error(err))
		h.logged = now
	}
	h.failed.Signal(*h.problem)
}

// current returns the problem, nil when the last receive worked.
func (h *receiveHealth) current() *ReceiveProblem {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.problem == nil {
		return nil
	}
	p := *h.problem
	return &p
}

// receiveReason classifies a failed receive by what an operator has to fix.
func receiveReason(err error) string {
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		code := apiErr.ErrorCode()
		switch {
		case strings.Contains(code, "NonExistentQueue"), strings.Contains(code, "QueueDoesNotExist"):
			return ReasonQueueMissing
		case strings.Contains(code, "AccessDenied"), code == "AuthorizationError", code == "KMS.AccessDeniedException":
			return ReasonAccessDenied
		case code == "InvalidClientTokenId", code == "SignatureDoesNotMatch", code == "UnrecognizedClientException",
			code == "ExpiredToken", code == "InvalidSecurity", code == "MissingAuthenticationToken":
			return ReasonBadCredentials
		}
		return ReasonOther
	}
	// The SDK's signer wraps whatever the credential chain said in a SigningError with this text.
	var signErr *v4.SigningError
	if errors.As(err, &signErr) && strings.Contains(signErr.Error(), "failed to retrieve credentials") {
		return ReasonNoCredentials
	}
	var netErr net.Error
	if errors.As(err, &netErr) {
		return ReasonUnreachable // no such host (a wrong region or endpoint), refused, timed out
	}
	return ReasonOther
}

// watchReceives is an SQS client option that reports the outcome of every ReceiveMessage call to h.
func (h *receiveHealth) watchReceives(o *sqs.Options) {
	o.APIOptions = append(o.APIOptions, func(stack *middleware.Stack) error {
		return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("ViaductReceiveHealth",
			func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (
				middleware.InitializeOutput, middleware.Metadata, error) {
				out, md, err := next.HandleInitialize(ctx, in)
				if _, ok := in.Parameters.(*sqs.ReceiveMessageInput); ok {
					h.observe(err)
				}
				return out, md, err
			}), middleware.Before)
	})
}

// quietReceiveErrors is watermill's logger with its once-a-second "Cannot connect receive messages" lowered to
// Debug: receiveHealth reports the same failure with its reason, at most every receiveLogEvery.
type quietReceiveErrors struct{ watermill.LoggerAdapter }

// Error implements watermill.LoggerAdapter.
func (q quietReceiveErrors) Error(msg string, err error, fields watermill.LogFields) {
	if msg == "Cannot connect receive messages" {
		q.Debug(msg, fields.Add(watermill.LogFields{"error": err.Error()}))
		return
	}
	q.LoggerAdapter.Error(msg, err, fields)
}

// With implements watermill.LoggerAdapter, keeping the quieting for derived loggers.
func (q quietReceiveErrors) With(fields watermill.LogFields) watermill.LoggerAdapter {
	return quietReceiveErrors{q.LoggerAdapter.With(fields)}
}
