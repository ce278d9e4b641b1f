package cli

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/viaduct-nys/viaduct/pkg/awstest"
	"github.com/viaduct-nys/viaduct/pkg/pgtest"
)

// viaductProcess is the viaduct binary running as a subprocess, its stderr (JSON log lines) collected as it comes.
type viaductProcess struct {
	cmd    *exec.Cmd
	exited chan struct{} // closed once the process has exited and its stderr is read to the end

	mu   sync.Mutex
	logs []map[string]any // every stderr line; lines that are not JSON are kept as {"raw": line}
}

// startViaduct starts `viaduct args…` with the test's environment plus env. The process is killed at cleanup if it
// is still running, and its log is printed if the test failed.
func startViaduct(t *testing.T, env []string, args ...string) *viaductProcess {
	t.Helper()
	cmd := exec.Command(viaductBin, args...)
	cmd.Env = append(os.Environ(), env...)
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())

	p := &viaductProcess{cmd: cmd, exited: make(chan struct{})}
	go func() {
		defer close(p.exited)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
		for sc.Scan() {
			var entry map[string]any
			if json.Unmarshal(sc.Bytes(), &entry) != nil {
				entry = map[string]any{"raw": sc.Text()}
			}
			p.mu.Lock()
			p.logs = append(p.logs, entry)
			p.mu.Unlock()
		}
		// Wait closes the pipe, so it comes after the last read.
		_ = cmd.Wait()
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			_ = cmd.Process.Kill()
			<-p.exited
		}
		if t.Failed() {
			t.Logf("viaduct %s log:\n%s", strings.Join(args, " "), p.logText())
		}
	})
	return p
}

// logged returns the first log entry whose message is msg.
func (p *viaductProcess) logged(msg string) (map[string]any, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, e := range p.logs {
		if e["msg"] == msg {
			return e, true
		}
	}
	return nil, false
}

func (p *viaductProcess) logText() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var b strings.Builder
	for _, e := range p.logs {
		line, _ := json.Marshal(e)
		fmt.Fprintf(&b, "%s\n", line)
	}
	return b.String()
}

// waitLog waits until the process logs msg and returns that entry.
func (p *viaductProcess) waitLog(t *testing.T, msg string, timeout time.Duration) map[string]any {
	t.Helper()
	var entry map[string]any
	require.Eventually(t, func() bool {
		var ok bool
		entry, ok = p.logged(msg)
		return ok
	}, timeout, 20*time.Millisecond, "viaduct did not log %q within %s:\n%s", msg, timeout, p.logText())
	return entry
}

// waitExit waits for the process to exit by itself and returns its exit code.
func (p *viaductProcess) waitExit(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case <-p.exited:
		return p.cmd.ProcessState.ExitCode()
	case <-time.After(timeout):
		require.FailNow(t, "viaduct did not exit in time", "waited %s; log:\n%s", timeout, p.logText())
		return -1
	}
}

// daemonEnv returns the environment a `viaduct run --e1` subprocess needs to reach env and db.
func daemonEnv(env *awstest.Env, db *pgtest.DB) []string {
	vars := []string{
		"AWS_ACCESS_KEY_ID=test",
		"AWS_SECRET_ACCESS_KEY=test",
		"AWS_REGION=us-east-1",
		"DATABASE_URL=" + db.URL,
		"VIADUCT_LOG_FORMAT=json",
		"VIADUCT_LOG_LEVEL=info",
		"VIADUCT_SQS_WAIT_TIME=1s",
	}
	if env.Emulator == awstest.EmulatorInProcess {
		// An external emulator is named by AWS_ENDPOINT_URL* in the test's own environment, which the process
		// inherits; the in-process one lives in this test binary.
		vars = append(vars, "AWS_ENDPOINT_URL="+env.Endpoint)
	}
	return vars
}

// TestDaemonProcess runs `viaduct run --e1` as the real binary: it serves ops endpoints once started, stops cleanly
// and within its grace period on SIGTERM or SIGINT, and with --until-idle exits by itself once the queue is empty.
func TestDaemonProcess(t *testing.T) {
	t.Parallel()
	ctx := t.Context()

	env, stopAWS, err := awstest.Start(ctx)
	require.NoError(t, err)
	t.Cleanup(stopAWS)

	type testBundle struct {
		env      []string
		queueURL string
	}
	setup := func(t *testing.T) *testBundle {
		t.Helper()
		res, err := env.CreateResources(ctx, awstest.UniqueNames("sig"), nil)
		require.NoError(t, err)
		return &testBundle{env: daemonEnv(env, pgtest.New(t)), queueURL: res.QueueURL}
	}

	const grace = 10 * time.Second
	for _, tt := range []struct {
		name string
		sig  syscall.Signal
	}{{"StopsOnSIGTERM", syscall.SIGTERM}, {"StopsOnSIGINT", syscall.SIGINT}} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			p := startViaduct(t, b.env, "run", "--e1", "--sqs-queue-url", b.queueURL,
				"--http-addr", "127.0.0.1:0", "--shutdown-grace", grace.String())

			serving := p.waitLog(t, "serving the status page, River UI, metrics, health and readiness", time.Minute)
			addr, _ := serving["addr"].(string)
			require.NotEmpty(t, addr, "the log names the ops address")
			require.Equal(t, "http://"+addr+"/status", serving["status_url"])
			code, body := get(t, "http://"+addr+"/readyz")
			require.Equal(t, http.StatusOK, code, body)

			require.NoError(t, p.cmd.Process.Signal(tt.sig))
			require.Equal(t, 0, p.waitExit(t, grace), "exit code; log:\n%s", p.logText())
			_, ok := p.logged("signal received; stopping engines")
			require.True(t, ok, "log:\n%s", p.logText())
			_, ok = p.logged("stopped")
			require.True(t, ok, "log:\n%s", p.logText())
		})
	}

	t.Run("UntilIdleExitsOnEmptyQueue", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		p := startViaduct(t, b.env, "run", "--e1", "--until-idle", "--sqs-queue-url", b.queueURL, "--http-addr", "127.0.0.1:0")

		require.Equal(t, 0, p.waitExit(t, 20*time.Second), "exit code; log:\n%s", p.logText())
		_, ok := p.logged("all engines idle; exiting")
		require.True(t, ok, "log:\n%s", p.logText())
		_, ok = p.logged("stopped")
		require.True(t, ok, "log:\n%s", p.logText())
	})
}
