package cli

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"go.uber.org/zap"
)

// AWSSetup is what the engines need to reach AWS.
type AWSSetup struct {
	Config    aws.Config
	S3        *s3.Client
	SQSOptFns []func(*sqs.Options)
}

// loadAWS loads the AWS configuration the standard way (AWS_REGION, AWS_ACCESS_KEY_ID, AWS_PROFILE, …) and applies
// the endpoint overrides AWS_ENDPOINT_URL, AWS_ENDPOINT_URL_S3 and AWS_ENDPOINT_URL_SQS as read through getenv.
// With an endpoint override but no credentials configured, as with a local emulator, it uses static test
// credentials.
func loadAWS(ctx context.Context, c *Config, getenv func(string) string, logger *zap.Logger) (*AWSSetup, error) {
	opts := []func(*awsconfig.LoadOptions) error{awsconfig.WithLogger(awsLogger{logger.Named("aws")})}
	if getenv("AWS_REGION") == "" && getenv("AWS_DEFAULT_REGION") == "" {
		opts = append(opts, awsconfig.WithRegion("us-east-1"))
	}
	base, s3URL, sqsURL := getenv("AWS_ENDPOINT_URL"), getenv("AWS_ENDPOINT_URL_S3"), getenv("AWS_ENDPOINT_URL_SQS")
	endpointSet := base != "" || s3URL != "" || sqsURL != ""
	if base != "" {
		opts = append(opts, awsconfig.WithBaseEndpoint(base))
	}
	if endpointSet && getenv("AWS_ACCESS_KEY_ID") == "" && getenv("AWS_PROFILE") == "" {
		opts = append(opts, awsconfig.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("test", "test", "")))
	}
	cfg, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("loading the AWS configuration: %w", err)
	}
	pathStyle := c.S3PathStyle == "true" || (c.S3PathStyle == "auto" && endpointSet)
	setup := &AWSSetup{Config: cfg}
	setup.S3 = s3.NewFromConfig(cfg, func(o *s3.Options) {
		o.UsePathStyle = pathStyle
		if s3URL != "" {
			o.BaseEndpoint = aws.String(s3URL)
		}
	})
	if sqsURL != "" {
		setup.SQSOptFns = append(setup.SQSOptFns, func(o *sqs.Options) { o.BaseEndpoint = aws.String(sqsURL) })
	}
	return setup, nil
}
