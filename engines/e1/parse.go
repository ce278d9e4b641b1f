package e1

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/viaduct-nys/viaduct/pkg/eclrs"
)

// row is one data line after the identify stage: its identity, and its parsed fields when identifying it already
// took the full parser. Rows that turn out to be new are parsed by the writer; the ~99% already imported never are.
type row struct {
	line   int
	raw    []byte // the line, a slice of its chunk's data
	sum    [32]byte
	county int64
	rec    *eclrs.Record // nil until parsed
	err    *rowError     // set when parsing found the row malformed
}

// identifiedChunk is a chunk after the identify stage: its rows in file order, and its malformed rows.
type identifiedChunk struct {
	rows   []row
	errors []rowError
}

// rowError is a malformed row with the line it came from, kept for file_row_errors.
type rowError struct {
	*eclrs.RowError
	raw string
}

// identifyChunks is an identify worker: it turns chunks from work into identifiedChunks on each chunk's own channel,
// so the writer can take them in file order although several workers run at once.
func identifyChunks(ctx context.Context, version eclrs.Version, work <-chan *chunk) error {
	for c := range work {
		out := &identifiedChunk{rows: make([]row, 0, len(c.lines))}
		for i, line := range c.lines {
			lineNo := c.lineNumbers[i]
			if reason := unstorable(line, c.tooLong[i]); reason != "" {
				out.errors = append(out.errors, rowError{RowError: &eclrs.RowError{Line: lineNo, Reason: reason}, raw: sanitize(line)})
				continue
			}
			if sum, county, ok := version.Identify(line); ok {
				out.rows = append(out.rows, row{line: lineNo, raw: line, sum: sum, county: county})
				continue
			}
			// Quotes, a wrong field count or a bad county code: only the parser can tell which.
			rec, err := parseRow(version, line, lineNo)
			if err != nil {
				if c.unended == i+1 {
					// A last line without its line ending that does not parse is most likely a row cut off: say
					// so, so that the sender looks at the transfer, not at the row.
					re := *err.RowError
					re.Reason = "the file ends in the middle of this row (no line ending after it), so the export " +
						"was probably cut short: " + re.Reason
					err.RowError = &re
				}
				out.errors = append(out.errors, *err)
				continue
			}
			out.rows = append(out.rows, row{line: lineNo, raw: line, sum: rec.Checksum, county: rec.CountyID, rec: rec})
		}
		select {
		case c.identified <- out:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// parseRow parses a line fully, returning the record or the row error to record.
func parseRow(version eclrs.Version, line []byte, lineNo int) (*eclrs.Record, *rowError) {
	rec, err := version.ParseLine(line, lineNo)
	if err != nil {
		var re *eclrs.RowError
		if !errors.As(err, &re) {
			re = &eclrs.RowError{Line: lineNo, Reason: err.Error()}
		}
		return nil, &rowError{RowError: re, raw: string(bytes.TrimSpace(line))}
	}
	return &rec, nil
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
