// Package cli is the viaduct command line: every subcommand, the daemon's wiring (daemon.go), its configuration
// and the operator commands. cmd/viaduct runs it as the production binary; cmd/viaduct-dev adds the commands that
// need test stand-ins (the demo, the fake CommCare, the export generator), which never link into production.
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
//	viaduct version, --version  the build's version
//
// Every flag may also be given as an environment variable; `viaduct COMMAND --help` lists both.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/signal"
	"runtime/debug"
	"slices"
	"syscall"
)

// Command is one subcommand. Run owns its flags; ctx is cancelled by SIGINT/SIGTERM.
type Command struct {
	// Summary is the one line `viaduct help` shows.
	Summary string
	Run     func(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error
}

// commands are viaduct's own commands, the production binary's.
var commands = map[string]Command{
	"migrate":  {"Apply database migrations.", runMigrate},
	"run":      {"Run the enabled engines.", runDaemon},
	"extract":  {"Import ECLRS files as Engine 1 does and print the results as JSON.", runExtract},
	"status":   {"Print each engine's state and counts per stage.", runStatus},
	"trace":    {"Print what happened to one result, in time order.", runTrace},
	"purge":    {"Remove personal data older than a retention window.", runPurge},
	"retry":    {"Make the test results Engine 2 gave up on ready again.", runRetry},
	"resend":   {"Hand index cases to Engine 4 again.", runResend},
	"reimport": {"Have Engine 1 import failed files again.", runReimport},
	"version":  {"Print the version.", runVersion},
}

// Main runs the command line with the process's arguments, signals, environment and standard streams, and exits
// with Run's code. extra adds commands to viaduct's own (cmd/viaduct-dev's).
func Main(extra map[string]Command) {
	tuneGC(os.Getenv)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := Run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr, extra)
	stop()
	os.Exit(code)
}

// Run runs the command line args (without the program's name) and returns the exit code: 0 on success, 2 for a
// usage error, 1 for any other failure. extra adds commands to viaduct's own.
func Run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer,
	extra map[string]Command) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stdout, extra)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	if args[0] == "--version" || args[0] == "-version" {
		args = append([]string{"version"}, args[1:]...)
	}
	cmd, ok := commands[args[0]]
	if extraCmd, isExtra := extra[args[0]]; isExtra {
		cmd, ok = extraCmd, true
	}
	if !ok {
		fmt.Fprintf(stderr, "viaduct: unknown command %q\n\n", args[0])
		usage(stderr, extra)
		return 2
	}
	errLog := &stderrLog{w: stderr}
	err := cmd.Run(ctx, args[1:], getenv, stdout, errLog)
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

// UsageError marks err as a problem with the command line (exit 2, pointing at --help); help requests and nil pass
// through.
func UsageError(err error) error {
	if err == nil || errors.Is(err, errHelp) {
		return err
	}
	return fmt.Errorf("%w:\n%w", errUsage, err)
}

func usage(w io.Writer, extra map[string]Command) {
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
  version   Print the version (also --version).
`)
	if len(extra) > 0 {
		fmt.Fprintln(w, "\nFor development (viaduct-dev):")
		for _, name := range slices.Sorted(maps.Keys(extra)) {
			fmt.Fprintf(w, "  %-9s %s\n", name, extra[name].Summary)
		}
	}
	fmt.Fprint(w, "\nRun 'viaduct COMMAND --help' for a command's flags and their environment variables.\n")
}

// version is set at build time with -ldflags "-X github.com/viaduct-nys/viaduct/internal/cli.version=…" (make
// release does); otherwise the module's build info is used.
var version = ""

func runVersion(_ context.Context, args []string, getenv func(string) string, stdout, _ io.Writer) error {
	s := NewOptionSet("version", "", "Print the version.", getenv)
	if err := s.Parse(args, stdout); err != nil {
		return UsageError(err)
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
