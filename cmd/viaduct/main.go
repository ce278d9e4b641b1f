// Command viaduct is the Viaduct daemon and its operator commands: it moves positive lab results from ECLRS exports
// into CommCare through five independent engines that share only a PostgreSQL database.
//
//	viaduct migrate             apply River's and Viaduct's migrations (safe to run from several hosts at once)
//	viaduct migrate status      list the migrations, applied and pending
//	viaduct run --e1 …          run the enabled engines until SIGINT/SIGTERM (or, with --until-idle, until idle)
//	viaduct extract FILE|s3://… import ECLRS exports exactly as Engine 1 does and print one JSON object per file
//	viaduct status [--json]     each engine's state (ok, amber or red, and why), its daemons and counts per stage
//	viaduct trace --file F --line N | --accession A | --patient-key K | --case-id C
//	                            one result's journey through the engines, in time order
//	viaduct purge --older-than D remove the personal data older than D, keeping what the engines need (--dry-run)
//	viaduct retry e2 | resend | reimport
//	                            repairs: failed test results, cases for CommCare, failed files, handed back
//	viaduct demo                the whole pipeline on local stand-ins for S3 and SQS
//	viaduct version, --version  the build's version
//
// Every flag may also be given as an environment variable; `viaduct COMMAND --help` lists both.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// command is one subcommand. Its run function owns its flags; ctx is cancelled by SIGINT/SIGTERM.
type command struct {
	summary string
	run     func(ctx context.Context, args []string, env func(string) string, stdout, stderr io.Writer) error
}

var commands map[string]command

func init() {
	commands = map[string]command{
		"migrate":       {"Apply database migrations.", runMigrate},
		"run":           {"Run the enabled engines.", runDaemon},
		"extract":       {"Import ECLRS files as Engine 1 does and print the results as JSON.", runExtract},
		"status":        {"Print each engine's state and counts per stage.", runStatus},
		"trace":         {"Print what happened to one result, in time order.", runTrace},
		"purge":         {"Remove personal data older than a retention window.", runPurge},
		"retry":         {"Make the test results Engine 2 gave up on ready again.", runRetry},
		"resend":        {"Hand index cases to Engine 4 again.", runResend},
		"reimport":      {"Have Engine 1 import failed files again.", runReimport},
		"demo":          {"Run the pipeline on local stand-ins for S3, SQS and CommCare.", runDemo},
		"fake-commcare": {"Serve a fake CommCare HQ for trying the daemon by hand.", runFakeCommCare},
		"version":       {"Print the version.", runVersion},
	}
}

// run is main without the process: it returns the exit code, so tests can call it.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stdout)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	if args[0] == "--version" || args[0] == "-version" {
		args = append([]string{"version"}, args[1:]...)
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "viaduct: unknown command %q\n\n", args[0])
		usage(stderr)
		return 2
	}
	errLog := &stderrLog{w: stderr}
	err := cmd.run(ctx, args[1:], getenv, stdout, errLog)
	switch {
	case err == nil, errors.Is(err, errHelp):
		return 0
	case errors.Is(err, errUsage):
		fmt.Fprintf(stderr, "viaduct %s: %v\n", args[0], err)
		fmt.Fprintf(stderr, "Run 'viaduct %s --help' for the flags.\n", args[0])
		return 2
	case errors.Is(err, errNotConfirmed):
		fmt.Fprintf(stderr, "viaduct %s: %v\n", args[0], err)
		return 2
	default:
		errLog.fatal(args[0], err)
		return 1
	}
}

// errUsage wraps configuration problems, which exit 2 and point at --help.
var errUsage = errors.New("invalid configuration")

func usageError(err error) error {
	if err == nil || errors.Is(err, errHelp) {
		return err
	}
	return fmt.Errorf("%w:\n%w", errUsage, err)
}

func usage(w io.Writer) {
	fmt.Fprint(w, `Viaduct moves positive lab results from ECLRS exports into CommCare.

Usage: viaduct COMMAND [flags]

Commands:
  migrate   Apply database migrations (River's and Viaduct's), safe to run from several hosts at once;
            'migrate status' lists them, applied and pending.
  run       Run the enabled engines (--e1 … --e5) until SIGINT/SIGTERM, or with --until-idle until idle.
  extract   Import ECLRS files (paths or s3://bucket/key) as Engine 1 does; one JSON object per file.
  status    Print each engine's state (ok, amber or red, and why), the daemons running them, and counts per
            stage (--json for machines).
  trace     Print what happened to a result (--file F --line N, --accession, --patient-key or --case-id), in
            time order: its file, Engine 2's outcome, each hand-off, post to CommCare and merge back.
  purge     Remove the personal data older than --older-than (90d, at least 14d), keeping what the engines
            need; --dry-run prints what would go, per table. 'run --retention' does it daily.
  retry     'retry e2': make the test results Engine 2 gave up on ready again (--since, --test-result).
  resend    Hand index cases to Engine 4 again (--case-id, or --domain with --since).
  reimport  Have Engine 1 import failed files again from S3 (FILE_ID …).
            The repairs print what they will do, need --yes beyond 10 items and record who asked (--by, --reason).
  demo      Run all five engines on local stand-ins for S3, SQS and CommCare with a generated export.
  fake-commcare
            Serve a fake CommCare HQ (county list, case API, form receiver) for trying the daemon by hand.
  version   Print the version (also --version).

Run 'viaduct COMMAND --help' for a command's flags and their environment variables.
`)
}

// version is set at build time with -ldflags "-X main.version=…"; otherwise the module's build info is used.
var version = ""

func runVersion(_ context.Context, args []string, getenv func(string) string, stdout, _ io.Writer) error {
	s := newOptionSet("version", "", "Print the version.", getenv)
	if err := s.parse(args, stdout); err != nil {
		return usageError(err)
	}
	fmt.Fprintln(stdout, "viaduct", buildVersion())
	return nil
}

func buildVersion() string {
	if version != "" {
		return version
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "(unknown)"
	}
	v := info.Main.Version
	for _, s := range info.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			v += " " + s.Value[:12]
		}
	}
	return v + " " + info.GoVersion
}
