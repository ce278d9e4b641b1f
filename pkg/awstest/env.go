package awstest

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
)

// The values of Env.Emulator.
const (
	// EmulatorInProcess is gofakes3 and goaws started by Start inside this process.
	EmulatorInProcess = "inprocess"
	// EmulatorExternal is any endpoint named by AWS_ENDPOINT_URL*, such as fauxqs, that does not deliver bucket
	// notifications.
	EmulatorExternal = "external"
	// EmulatorLocalStack is LocalStack, selected by AWS_EMULATOR=localstack. Its buckets deliver real notifications.
	EmulatorLocalStack = "localstack"
	// EmulatorMoto is moto_server, selected by AWS_EMULATOR=moto (.ci/moto.sh). Its buckets deliver real
	// notifications.
	EmulatorMoto = "moto"
)

// endpointVars are the variables the SDK's default configuration reads endpoint overrides from. Any of them being
// set means "use that emulator, start nothing".
var endpointVars = []string{"AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL_SQS", "AWS_ENDPOINT_URL_SNS"}

// Env is one S3 + SQS + SNS endpoint with clients for it.
type Env struct {
	// S3, SQS and SNS are clients for the endpoint; S3 uses path-style addressing when S3UsePathStyle is set.
	S3  *s3.Client
	SQS *sqs.Client
	SNS *sns.Client

	// AWSConfig is the configuration the clients were built from. Hand it to other clients (the watermill-aws
	// subscriber, the daemon) so they reach the same endpoint; only S3 clients need S3UsePathStyle on top.
	AWSConfig aws.Config

	// S3UsePathStyle says S3 must be addressed as endpoint/bucket/key. Emulators on localhost or an IP cannot serve
	// bucket.host names, and the SDK has no environment variable for it, so it is carried here.
	S3UsePathStyle bool

	// Emulator is EmulatorInProcess, EmulatorExternal, EmulatorLocalStack or EmulatorMoto.
	Emulator string

	// Endpoint is the URL serving all three services: the in-process server, or AWS_ENDPOINT_URL. It is empty when
	// only the per-service variables are set.
	Endpoint string

	// heard counts, per witness queue, the bucket notifications read there that no Announce has waited for yet.
	heardMu sync.Mutex
	heard   map[string]map[heardObject]int
}

// DeliversNotifications reports whether the endpoint's buckets send S3 event notifications themselves once
// configured to (LocalStack, moto). CreateResources then configures them and Announce waits for what they send.
func (e *Env) DeliversNotifications() bool {
	return e.Emulator == EmulatorLocalStack || e.Emulator == EmulatorMoto
}

// Start returns an Env for the endpoint the environment names, or for in-process emulators when it names none
// (see the package documentation). The returned function releases what Start started; call it once the Env is no
// longer used. It is safe to call more than once.
func Start(ctx context.Context) (*Env, func(), error) {
	return start(ctx, os.Getenv)
}

// start is Start with the environment passed in, so tests can check the choice without touching the process
// environment.
func start(ctx context.Context, getenv func(string) string) (*Env, func(), error) {
	external := false
	for _, v := range endpointVars {
		if getenv(v) != "" {
			external = true
		}
	}

	if !external {
		// The clients share one transport so that the cleanup can close its idle keep-alive connections; left
		// open, their goroutines outlive the test and trip goleak.
		transport := http.DefaultTransport.(*http.Transport).Clone()
		url, err := sharedInProcess.acquire()
		if err != nil {
			return nil, nil, err
		}
		cfg := aws.Config{
			Region:       Region,
			Credentials:  aws.NewCredentialsCache(credentials.NewStaticCredentialsProvider("test", "test", "")),
			BaseEndpoint: aws.String(url),
			HTTPClient:   &http.Client{Transport: transport},
		}
		var once sync.Once
		cleanup := func() {
			once.Do(func() {
				transport.CloseIdleConnections()
				sharedInProcess.release()
			})
		}
		return newEnv(cfg, true, EmulatorInProcess, url), cleanup, nil
	}

	pathStyle := true
	if v := getenv("S3_USE_PATH_STYLE"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return nil, nil, fmt.Errorf("parsing S3_USE_PATH_STYLE: %w", err)
		}
		pathStyle = b
	}

	opts := []func(*config.LoadOptions) error{config.WithDefaultRegion(Region)}
	if getenv("AWS_ACCESS_KEY_ID") == "" {
		// Emulators accept any key; the SDK refuses to sign without one, and falling through to the shared config
		// or instance metadata would only make a test hang or pick up a developer's real account.
		opts = append(opts, config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("test", "test", "")))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("loading AWS config: %w", err)
	}
	// As above, one transport the cleanup can close. The SDK's client may carry AWS_CA_BUNDLE's roots; GetTransport
	// returns a copy with them, and the SDK only insists on its own client type while loading.
	transport := http.DefaultTransport.(*http.Transport).Clone()
	if bc, ok := cfg.HTTPClient.(*awshttp.BuildableClient); ok {
		transport = bc.GetTransport()
	}
	cfg.HTTPClient = &http.Client{Transport: transport}

	emulator := EmulatorExternal
	for _, known := range []string{EmulatorLocalStack, EmulatorMoto} {
		if strings.EqualFold(getenv("AWS_EMULATOR"), known) {
			emulator = known
		}
	}
	return newEnv(cfg, pathStyle, emulator, getenv("AWS_ENDPOINT_URL")), transport.CloseIdleConnections, nil
}

// newEnv builds the three clients from cfg.
func newEnv(cfg aws.Config, pathStyle bool, emulator, endpoint string) *Env {
	return &Env{
		S3:             s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = pathStyle }),
		SQS:            sqs.NewFromConfig(cfg),
		SNS:            sns.NewFromConfig(cfg),
		AWSConfig:      cfg,
		S3UsePathStyle: pathStyle,
		Emulator:       emulator,
		Endpoint:       endpoint,
	}
}
