package awstest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// The files outside Go that create the same resources, relative to this package.
var (
	localStackInit    = filepath.Join("..", "..", "localstack", "init", "ready.d", "10-resources.sh")
	localStackEnv     = filepath.Join("..", "..", "localstack", "env.localstack")
	localStackCompose = filepath.Join("..", "..", "localstack", "docker-compose.yml")
	fauxqsInit        = filepath.Join("..", "..", ".ci", "fauxqs-init.json")
)

// localStackNotification is where docker-compose.yml mounts bucket-notification.json for the init script.
const localStackNotification = "/opt/viaduct/bucket-notification.json"

// TestInitFilesMatchConstants keeps the LocalStack init script, the LocalStack env file and the fauxqs init file in
// step with resources.go, so a renamed queue cannot pass in-process and fail only where Docker runs.
func TestInitFilesMatchConstants(t *testing.T) {
	t.Parallel()

	visibility := strconv.Itoa(int(DefaultVisibilityTimeout.Seconds()))
	dlqARN := "arn:aws:sqs:" + Region + ":" + AccountID + ":" + DeadLetterQueueName

	t.Run("LocalStackScript", func(t *testing.T) {
		t.Parallel()
		script, err := os.ReadFile(localStackInit)
		require.NoError(t, err)

		vars := map[string]string{}
		for _, m := range regexp.MustCompile(`(?m)^([A-Z_]+)=(\S+)$`).FindAllSubmatch(script, -1) {
			vars[string(m[1])] = string(m[2])
		}
		require.Equal(t, map[string]string{
			"BUCKET":             BucketName,
			"QUEUE":              QueueName,
			"DLQ":                DeadLetterQueueName,
			"TOPIC":              TopicName,
			"REGION":             Region,
			"VISIBILITY_TIMEOUT": visibility,
			"MAX_RECEIVE_COUNT":  strconv.Itoa(MaxReceiveCount),
			"NOTIFICATION":       localStackNotification,
		}, vars)

		// The bucket notification is bucket-notification.json with the topic's ARN put in, not a copy.
		require.Contains(t, string(script), `sed "s|`+topicARNPlaceholder+`|$topic_arn|g" "$NOTIFICATION"`)
		require.NotContains(t, string(script), "TopicConfigurations")
		require.Contains(t, string(script), "RawMessageDelivery=false")

		compose, err := os.ReadFile(localStackCompose)
		require.NoError(t, err)
		require.Contains(t, string(compose), "- ../pkg/awstest/bucket-notification.json:"+localStackNotification+":ro")

		info, err := os.Stat(localStackInit)
		require.NoError(t, err)
		require.NotZero(t, info.Mode()&0o111, "LocalStack runs init scripts directly; keep it executable")
	})

	t.Run("LocalStackEnv", func(t *testing.T) {
		t.Parallel()
		data, err := os.ReadFile(localStackEnv)
		require.NoError(t, err)

		vars := map[string]string{}
		sc := bufio.NewScanner(bytes.NewReader(data))
		for sc.Scan() {
			line := strings.TrimSpace(sc.Text())
			if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
				vars[k] = v
			}
		}
		require.NoError(t, sc.Err())
		require.Equal(t, Region, vars["AWS_REGION"])
		require.Equal(t, EmulatorLocalStack, vars["AWS_EMULATOR"])
		require.Equal(t, "true", vars["S3_USE_PATH_STYLE"])
		require.NotEmpty(t, vars["AWS_ENDPOINT_URL"])
		require.True(t, strings.HasSuffix(vars["VIADUCT_SQS_QUEUE_URL"], "/"+AccountID+"/"+QueueName), vars["VIADUCT_SQS_QUEUE_URL"])
	})

	t.Run("FauxqsInit", func(t *testing.T) {
		t.Parallel()
		data, err := os.ReadFile(fauxqsInit)
		require.NoError(t, err)

		// The subset of fauxqs's init schema (fauxqs/dist/initConfig.js) that is used.
		var init struct {
			Region string `json:"region"`
			Queues []struct {
				Name       string            `json:"name"`
				Attributes map[string]string `json:"attributes"`
			} `json:"queues"`
			Topics []struct {
				Name string `json:"name"`
			} `json:"topics"`
			Subscriptions []struct {
				Topic      string            `json:"topic"`
				Queue      string            `json:"queue"`
				Attributes map[string]string `json:"attributes"`
			} `json:"subscriptions"`
			Buckets []string `json:"buckets"`
		}
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.DisallowUnknownFields()
		require.NoError(t, dec.Decode(&init))

		require.Equal(t, Region, init.Region)
		require.Len(t, init.Queues, 2)
		require.Equal(t, DeadLetterQueueName, init.Queues[0].Name, "the dead-letter queue must exist before the queue naming it")
		require.Equal(t, QueueName, init.Queues[1].Name)
		require.Equal(t, visibility, init.Queues[1].Attributes["VisibilityTimeout"])

		var redrive map[string]string
		require.NoError(t, json.Unmarshal([]byte(init.Queues[1].Attributes["RedrivePolicy"]), &redrive))
		require.Equal(t, map[string]string{"deadLetterTargetArn": dlqARN, "maxReceiveCount": strconv.Itoa(MaxReceiveCount)}, redrive)

		require.Len(t, init.Topics, 1)
		require.Equal(t, TopicName, init.Topics[0].Name)
		require.Len(t, init.Subscriptions, 1)
		require.Equal(t, TopicName, init.Subscriptions[0].Topic)
		require.Equal(t, QueueName, init.Subscriptions[0].Queue)
		require.Equal(t, "false", init.Subscriptions[0].Attributes["RawMessageDelivery"])
		require.Equal(t, []string{BucketName}, init.Buckets)
	})
}
