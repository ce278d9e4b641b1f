package e1

import (
	"bytes"
	"context"
	"fmt"
	"unicode/utf8"

	"github.com/viaduct-nys/viaduct/pkg/eclrs"
)

// parsedChunk is a chunk after parsing: the rows that parsed, in file order, and the rows that did not.
type parsedChunk struct {
	records []eclrs.Record
	errors  []rowError
}

// rowError is a malformed row with the line it came from, kept for file_row_errors.
type rowError struct {
	*eclrs.RowError
	raw string
}

// parseChunks is a parse worker: it turns chunks from work into parsedChunks on each chunk's own channel, so the
// writer can take them in file order although several workers run at once.
func parseChunks(ctx context.Context, version eclrs.Version, work <-chan *chunk) error {
	for c := range work {
		p := &parsedChunk{records: make([]eclrs.Record, 0, len(c.lines))}
		for i, line := range c.lines {
			lineNo := c.lineNumbers[i]
			if reason := unstorable(line, c.tooLong[i]); reason != "" {
				p.errors = append(p.errors, rowError{
					RowError: &eclrs.RowError{Line: lineNo, Reason: reason},
					raw:      sanitize(line),
				})
				continue
			}
			rec, err := version.ParseLine(line, lineNo)
			if err != nil {
				re, ok := err.(*eclrs.RowError)
				if !ok {
					re = &eclrs.RowError{Line: lineNo, Reason: err.Error()}
				}
				p.errors = append(p.errors, rowError{RowError: re, raw: string(bytes.TrimSpace(line))})
				continue
			}
			p.records = append(p.records, rec)
		}
		select {
		case c.parsed <- p:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// unstorable says why a line cannot be stored as text at all, or "". PostgreSQL text holds neither NUL bytes nor
// invalid UTF-8; letting such a line reach COPY would fail the whole file instead of the one row.
func unstorable(line []byte, cutOff bool) string {
	switch {
	case cutOff:
		return fmt.Sprintf("line longer than %d bytes", maxLineBytes)
	case bytes.IndexByte(line, 0) >= 0:
		return "line contains a NUL byte"
	case !utf8.Valid(line):
		return "line is not valid UTF-8"
	}
	return ""
}

// sanitize makes an unstorable line storable for file_row_errors, so the operator still sees what arrived.
func sanitize(line []byte) string {
	s := bytes.ToValidUTF8(bytes.ReplaceAll(line, []byte{0}, []byte(`\0`)), []byte("\uFFFD"))
	if len(s) > 4096 {
		s = append(s[:4096:4096], "…"...)
	}
	return string(s)
}
