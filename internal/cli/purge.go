package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/viaduct-nys/viaduct/pkg/retention"
)

func runPurge(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var c Config
	var olderThan time.Duration
	var batchSize int
	var dryRun, asJSON bool
	s := NewOptionSet("purge", "--older-than DURATION [--dry-run] [flags]",
		"Remove the personal data Viaduct holds that is older than DURATION (90d, 2160h; at least 14d), keeping what the\n"+
			"engines still need: the identity checksums that keep re-sent results from coming back as new, the events\n"+
			"and cases of people whose cases are open or recently changed, and every count. Prints what went, per table.\n"+
			"Safe to stop and to run again: every batch commits on its own, and a purge goes on where the last stopped.", getenv)
	addDatabase(s, &c)
	AddLogging(s, &c, "json")
	s.window(&olderThan, "older-than", "VIADUCT_RETENTION",
		"Purge what was written longer ago than this: a number of days (90d) or a duration (2160h). Required.")
	s.Bool(&dryRun, "dry-run", "", false, "Print what would go, per table, and change nothing.")
	s.Int(&batchSize, "batch-size", "VIADUCT_PURGE_BATCH_SIZE", 5000, "Rows stripped or deleted per transaction.")
	s.Bool(&asJSON, "json", "", false, "Print JSON instead of a table.")
	purgeConfig := func() retention.Config {
		return retention.Config{Window: olderThan, BatchSize: batchSize, DryRun: dryRun}
	}
	s.Check(func() error {
		if olderThan == 0 {
			return errors.New("--older-than (VIADUCT_RETENTION) is required: how old personal data may get, e.g. 90d")
		}
		if batchSize < 1 {
			return fmt.Errorf("--batch-size %d must be positive", batchSize)
		}
		return purgeConfig().Validate()
	})
	if err := s.Parse(args, stdout); err != nil {
		return UsageError(err)
	}
	logger := NewLogger(&c, stderr)
	defer logger.Sync() //nolint:errcheck
	pool, err := OpenPool(ctx, c.DatabaseURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	purger, err := retention.New(purgeConfig(), retention.Deps{Pool: pool, Logger: logger.Named("retention")})
	if err != nil {
		return err
	}
	res, err := purger.Purge(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("interrupted: what was purged so far stays purged; run it again to finish (%w)", err)
		}
		return err
	}
	purger.Log(res)
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	writePurge(stdout, res)
	return nil
}

// writePurge writes what a purge did, or would do, as a table.
func writePurge(w io.Writer, res *retention.Result) {
	cutoff := res.Cutoff.UTC().Format(time.RFC3339)
	if res.DryRun {
		fmt.Fprintf(w, "Dry run, nothing changed. A purge would remove the personal data written before %s "+
			"(older than %s):\n\n", cutoff, res.Window)
	} else {
		fmt.Fprintf(w, "Removed the personal data written before %s (older than %s):\n\n", cutoff, res.Window)
	}
	const row = "%-20s  %-12s  %10s  %10s\n"
	fmt.Fprintf(w, row, "table", "action", "rows", "bytes")
	for _, t := range res.Tables {
		action := map[string]string{retention.ActionStrip: "stripped", retention.ActionDelete: "deleted"}[t.Action]
		if res.DryRun {
			action = map[string]string{retention.ActionStrip: "would strip", retention.ActionDelete: "would delete"}[t.Action]
		}
		fmt.Fprintf(w, row, t.Name, action, strconv.FormatInt(t.Rows, 10), formatBytes(t.Bytes))
	}
}

// formatBytes writes n bytes in binary units, one decimal.
func formatBytes(n int64) string {
	if n < 1024 {
		return strconv.FormatInt(n, 10) + " B"
	}
	v, unit := float64(n)/1024, "KiB"
	for _, u := range []string{"MiB", "GiB", "TiB"} {
		if v < 1024 {
			break
		}
		v, unit = v/1024, u
	}
	return strconv.FormatFloat(v, 'f', 1, 64) + " " + unit
}

// window declares a retention window option: a whole number of days ("90d") or a Go duration ("2160h"). No
// default: unset leaves p at 0.
func (s *OptionSet) window(p *time.Duration, name, env, help string) {
	raw := s.register(name, env, "", help)
	v, err := parseWindow(raw)
	if err != nil {
		s.errs = append(s.errs, fmt.Errorf("%s=%q: %w", env, raw, err))
	}
	*p = v
	s.fs.Var((*windowValue)(p), name, help)
}

// windowValue is a retention window as a flag.Value.
type windowValue time.Duration

// String writes the window as retention.FormatWindow does; "" when unset.
func (w *windowValue) String() string {
	if w == nil || *w == 0 {
		return ""
	}
	return retention.FormatWindow(time.Duration(*w))
}

// Set parses a window given on the command line.
func (w *windowValue) Set(s string) error {
	v, err := parseWindow(s)
	if err != nil {
		return err
	}
	*w = windowValue(v)
	return nil
}

// parseWindow reads a retention window: "" (none), a whole number of days ("90d"), or a Go duration ("2160h").
func parseWindow(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	var d time.Duration
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n > 100*366 {
			return 0, errors.New("not a window (a number of days such as 90d, or a duration such as 2160h)")
		}
		d = time.Duration(n) * 24 * time.Hour
	} else {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			return 0, errors.New("not a window (a number of days such as 90d, or a duration such as 2160h)")
		}
	}
	if d < 0 {
		return 0, errors.New("a window cannot be negative")
	}
	return d, nil
}
