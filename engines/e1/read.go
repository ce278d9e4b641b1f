package e1

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
)

// maxLineBytes bounds one line. An ECLRS row is about 600 bytes; anything near this is not a row, and reading it
// whole would let one bad file take the daemon's memory.
const maxLineBytes = 1 << 20

// chunk is a run of consecutive lines handed from the reader to a parse worker. The lines are slices of data, so a
// chunk costs two allocations however many lines it holds.
type chunk struct {
	data        []byte
	lines       [][]byte
	lineNumbers []int        // the file line number of each line; the header is line 1
	tooLong     map[int]bool // indexes of lines cut at maxLineBytes
	unended     int          // index+1 of a last line that had no line ending (the file may be cut short); 0: none
	identified  chan *identifiedChunk
}

// lineReader reads an export line by line. It reports only I/O errors; what a line contains is the parser's concern.
type lineReader struct {
	r       *bufio.Reader
	line    int
	cutOff  bool // the last line returned was longer than maxLineBytes and was cut
	unended bool // the last line returned ended the file without a line ending
}

func newLineReader(r io.Reader) *lineReader {
	return &lineReader{r: bufio.NewReaderSize(r, 1<<20)}
}

// next returns the next line without its line ending, io.EOF after the last one. The slice is valid until the next
// call.
func (lr *lineReader) next() ([]byte, error) {
	lr.cutOff, lr.unended = false, false
	line, err := lr.r.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		long := append([]byte(nil), line...)
		for errors.Is(err, bufio.ErrBufferFull) {
			line, err = lr.r.ReadSlice('\n')
			if len(long) < maxLineBytes {
				long = append(long, line...)
			}
		}
		if len(long) >= maxLineBytes {
			long = long[:maxLineBytes]
			lr.cutOff = true
		}
		line = long
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("reading line %d: %w", lr.line+1, err)
	}
	if len(line) == 0 && errors.Is(err, io.EOF) {
		return nil, io.EOF
	}
	lr.line++
	lr.unended = errors.Is(err, io.EOF)
	return bytes.TrimRight(line, "\r\n"), nil
}

// readChunks reads the data lines after the header into chunks of up to chunkLines lines and sends each to work
// (for a parse worker) and to ordered (for the writer, which consumes them in file order). Blank lines carry no
// data and are skipped. Both channels are bounded, so a slow database holds the reader back instead of filling memory.
func readChunks(ctx context.Context, lr *lineReader, chunkLines int, work, ordered chan<- *chunk) error {
	defer close(work)
	defer close(ordered)
	for {
		c := &chunk{data: make([]byte, 0, chunkLines*700), identified: make(chan *identifiedChunk, 1)}
		offsets := make([][2]int, 0, chunkLines)
		lineNumbers := make([]int, 0, chunkLines)
		var eof bool
		for len(offsets) < chunkLines {
			line, err := lr.next()
			if errors.Is(err, io.EOF) {
				eof = true
				break
			}
			if err != nil {
				return err
			}
			if len(bytes.TrimSpace(line)) == 0 {
				continue
			}
			if lr.cutOff {
				if c.tooLong == nil {
					c.tooLong = make(map[int]bool)
				}
				c.tooLong[len(offsets)] = true
			}
			if lr.unended {
				c.unended = len(offsets) + 1
			}
			start := len(c.data)
			c.data = append(c.data, line...)
			offsets = append(offsets, [2]int{start, len(c.data)})
			lineNumbers = append(lineNumbers, lr.line)
		}
		if len(offsets) > 0 {
			c.lines = make([][]byte, len(offsets))
			for i, o := range offsets {
				c.lines[i] = c.data[o[0]:o[1]:o[1]]
			}
			c.lineNumbers = lineNumbers
			select {
			case work <- c:
			case <-ctx.Done():
				return ctx.Err()
			}
			select {
			case ordered <- c:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if eof {
			return nil
		}
	}
}
