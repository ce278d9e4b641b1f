package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/viaduct-nys/viaduct/internal/cli"
	"github.com/viaduct-nys/viaduct/pkg/eclrs/eclrsgen"
)

// runGenerate writes a synthetic ECLRS export: made-up people and results in the real layout, for trying Viaduct
// (`viaduct extract`, an upload to a test bucket) without patient data.
func runGenerate(_ context.Context, args []string, getenv func(string) string, stdout, _ io.Writer) error {
	var (
		rows, first int
		seed        int
		out         string
	)
	s := cli.NewOptionSet("generate", "[flags]",
		"Write a synthetic ECLRS export (v3 layout, made-up people, a 14-day window) to --out or standard output. "+
			"Exports with the same --seed share their rows: --first-row 5000 repeats all but 5,000 of --first-row 0's, "+
			"as consecutive ECLRS exports do.", getenv)
	s.Int(&rows, "rows", "", 1000, "Number of data rows.")
	s.Int(&first, "first-row", "", 0, "Index of the first row.")
	s.Int(&seed, "seed", "", 1, "Data set: the same seed gives the same rows.")
	s.String(&out, "out", "", "", "File to write; empty writes to standard output.")
	s.Check(func() error {
		var errs []error
		if rows < 1 {
			errs = append(errs, fmt.Errorf("--rows %d: at least 1 row", rows))
		}
		if first < 0 {
			errs = append(errs, fmt.Errorf("--first-row %d is negative", first))
		}
		return errors.Join(errs...)
	})
	if err := s.Parse(args, stdout); err != nil {
		return cli.UsageError(err)
	}
	w := stdout
	var f *os.File
	if out != "" {
		var err error
		if f, err = os.Create(out); err != nil {
			return fmt.Errorf("creating the export: %w", err)
		}
		defer f.Close() //nolint:errcheck // closed and checked below on success
		w = f
	}
	bw := bufio.NewWriterSize(w, 1<<20)
	if err := eclrsgen.Write(bw, eclrsgen.Options{Rows: rows, FirstRow: first, Seed: int64(seed)}); err != nil {
		return fmt.Errorf("writing the export: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("writing the export: %w", err)
	}
	if f != nil {
		if err := f.Close(); err != nil {
			return fmt.Errorf("writing the export %s: %w", out, err)
		}
	}
	return nil
}
