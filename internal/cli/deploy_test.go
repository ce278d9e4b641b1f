package cli

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The files an operator installs with the binary (README, "Deploying").
const (
	unitFile   = "../../deploy/systemd/viaduct.service"
	envExample = "../../deploy/systemd/viaduct.env.example"
)

// TestCLIDeployEnvExample: the example environment names only variables `viaduct run` reads (or the AWS SDK does),
// and is a configuration `viaduct run` accepts: with the database pointed somewhere unreachable, it gets as far as
// connecting.
func TestCLIDeployEnvExample(t *testing.T) {
	t.Parallel()
	env := map[string]string{}
	f, err := os.Open(envExample)
	require.NoError(t, err)
	defer f.Close()
	line := regexp.MustCompile(`^#?([A-Z][A-Z0-9_]*)=(.*)$`)
	sc := bufio.NewScanner(f)
	var names []string
	for sc.Scan() {
		m := line.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		names = append(names, m[1])
		if !strings.HasPrefix(sc.Text(), "#") {
			env[m[1]] = m[2]
		}
	}
	require.NoError(t, sc.Err())
	require.NotEmpty(t, env)

	help := runCLI(t, nil, "run", "--help").stdout
	for _, name := range names {
		if strings.HasPrefix(name, "AWS_") {
			continue
		}
		require.Regexp(t, `(?m)^\s+--\S+\s+`+name+`\s`, help, "%s in %s is not a variable `viaduct run` reads", name, envExample)
	}

	env["DATABASE_URL"] = "postgres://viaduct@127.0.0.1:1/viaduct"
	res := runCLI(t, env, "run")
	require.Equal(t, 1, res.code, "a configuration error exits 2; stderr:\n%s", res.stderr)
	require.Contains(t, res.stderr, "127.0.0.1:1", "it failed on the database; stderr:\n%s", res.stderr)
}

// TestCLIDeployUnit: the systemd unit keeps its hardening, gives the daemon longer to stop than its default shutdown
// grace, and passes `systemd-analyze verify` without a warning and `systemd-analyze security` at "OK" or better.
func TestCLIDeployUnit(t *testing.T) {
	t.Parallel()
	src, err := os.ReadFile(unitFile)
	require.NoError(t, err)
	service := unitSection(string(src), "Service")

	for key, want := range map[string]string{
		"Type":                    "simple",
		"ExecStart":               "/usr/local/bin/viaduct run",
		"EnvironmentFile":         "/etc/viaduct/viaduct.env",
		"DynamicUser":             "yes",
		"Restart":                 "on-failure",
		"NoNewPrivileges":         "yes",
		"CapabilityBoundingSet":   "",
		"ProtectSystem":           "strict",
		"ProtectHome":             "yes",
		"PrivateTmp":              "yes",
		"PrivateDevices":          "yes",
		"ProtectKernelTunables":   "yes",
		"ProtectKernelModules":    "yes",
		"ProtectKernelLogs":       "yes",
		"ProtectControlGroups":    "yes",
		"RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
		"RestrictNamespaces":      "yes",
		"LockPersonality":         "yes",
		"MemoryDenyWriteExecute":  "yes",
		"SystemCallArchitectures": "native",
		"SystemCallFilter":        "@system-service",
		"SystemCallErrorNumber":   "EPERM",
		"RestrictSUIDSGID":        "yes",
		"RestrictRealtime":        "yes",
		"ProtectClock":            "yes",
		"ProtectHostname":         "yes",
		"PrivateUsers":            "yes",
		"AmbientCapabilities":     "",
		"UMask":                   "0077",
		"PrivateMounts":           "yes",
		"ProtectProc":             "invisible",
		"ProcSubset":              "pid",
		"RemoveIPC":               "yes",
		"Environment":             "VIADUCT_LOG_FORMAT=json",
		"KillSignal":              "SIGTERM",
		"RestartSec":              "5s",
		"TimeoutStopSec":          "60s",
	} {
		require.Contains(t, service[key], want, "[Service] %s=%s", key, want)
	}

	var c Config
	addRun(NewOptionSet("run", "", "", func(string) string { return "" }), &c) // declaring a flag sets its default
	stop, err := time.ParseDuration(service["TimeoutStopSec"][0])
	require.NoError(t, err)
	require.Greater(t, stop, c.ShutdownGrace, "systemd must wait out --shutdown-grace before it kills")

	// systemd-analyze checks that ExecStart exists: the unit is checked with the test's binary in its place.
	analyze, err := exec.LookPath("systemd-analyze")
	require.NoError(t, err, "systemd-analyze checks the unit: apt-get install systemd")
	unit := filepath.Join(t.TempDir(), "viaduct.service")
	require.NoError(t, os.WriteFile(unit, []byte(strings.ReplaceAll(string(src), "/usr/local/bin/viaduct", viaductBin)), 0o644))
	out, err := exec.CommandContext(t.Context(), analyze, "verify", unit).CombinedOutput()
	require.NoError(t, err, "systemd-analyze verify:\n%s", out)
	require.Empty(t, string(out), "systemd-analyze verify warns (it exits 0 on unknown keys and bad values)")
	// Exposure runs from 0 (best) to 10; systemd calls up to 1.9 "OK".
	out, err = exec.CommandContext(t.Context(), analyze, "security", "--offline=yes", "--threshold=19", unit).CombinedOutput()
	require.NoError(t, err, "systemd-analyze security:\n%s", out)
}

// unitSection returns the settings of one section of a systemd unit: key → values, in order (a key may repeat).
func unitSection(src, section string) map[string][]string {
	settings := map[string][]string{}
	var in bool
	for line := range strings.Lines(src) {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "["):
			in = line == "["+section+"]"
		case in:
			if k, v, ok := strings.Cut(line, "="); ok {
				settings[k] = append(settings[k], v)
			}
		}
	}
	return settings
}
