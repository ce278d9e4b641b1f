package eclrs

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"math/bits"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Record is one ECLRS data row, normalised to the v3 layout.
type Record struct {
	// Line is the 1-based line number in the file (the header is line 1).
	Line int
	// Raw is the trimmed line, stored as test_results.raw_data unless the other
	// columns rebuild it exactly (RawRebuildable).
	Raw string
	// Fields holds the parsed values at v3 positions (see the Field constants).
	// Columns absent from the file's layout are "". Unquoted values are substrings
	// of Raw, so keeping one field keeps the whole line alive.
	Fields [NumFields]string
	// Checksum is the row's identity: SHA-256 of the fields padded to v3 and
	// re-serialised (see ParseLine).
	Checksum [32]byte
	// CountyID is PIDCOUNTYCODE as a strict decimal integer.
	CountyID int64
}

// ChecksumBase64 returns the checksum in standard Base64 with padding, the spelling
// the original stored in abouts.checksums.
func (r *Record) ChecksumBase64() string {
	return base64.StdEncoding.EncodeToString(r.Checksum[:])
}

// RowError is a malformed row: the file's rest still imports. This is a deliberate
// divergence from the original, where one bad line crashed the whole import.
type RowError struct {
	// Line is the 1-based line number in the file.
	Line int
	// Field is the header name of the offending column, or "" when the problem is
	// with the row as a whole (field count, empty line, a column beyond the layout).
	Field string
	// Reason says what is wrong, quoting (a prefix of) the offending value.
	Reason string
}

// Error returns "line N: field NAME: reason", or "line N: reason" for a whole-row
// problem.
func (e *RowError) Error() string {
	if e.Field == "" {
		return "line " + strconv.Itoa(e.Line) + ": " + e.Reason
	}
	return "line " + strconv.Itoa(e.Line) + ": field " + e.Field + ": " + e.Reason
}

const (
	// maxFieldBytes caps every value. The longest real ECLRS values are free-text
	// result descriptions of a few hundred bytes; anything past 4 KiB is a broken
	// export (say, a stray quote that swallowed the row) and would only bloat the
	// database, so the row is rejected instead.
	maxFieldBytes = 4096
	// maxVarcharChars is the width of the varchar(255) test_results columns. Postgres
	// counts characters, not bytes, and raises on a longer value; rejecting the row
	// here keeps one bad value from failing a whole COPY batch.
	maxVarcharChars = 255
	// errorValueMax bounds how much of an offending value goes into an error.
	errorValueMax = 64
)

// varcharFields are the v3 positions whose test_results columns are varchar(255)
// and hold the value unchanged: the employer and school columns.
var varcharFields = [...]int{
	FieldEmployerName, FieldEmployerAddress, FieldEmployerPhone, FieldEmployerPhoneAlt,
	FieldEmployeeNumber, FieldEmployeeJobTitle, FieldSchoolName, FieldSchoolDistrict,
	FieldSchoolCode, FieldSchoolJobClass, FieldSchoolPresent,
}

// ParseLine parses one data line of a file in v's layout. lineNo is only used in the
// Record and in errors.
//
// The line is trimmed of surrounding whitespace, then split on "|" with the
// original's (HEAD's) CSV rules: a value that starts with `"` is quoted and runs to a
// `"` followed by "|" or the end of the line, `""` inside it stands for `"`, and "|" is
// literal inside it. A `"` anywhere else, text after a closing quote, an unterminated
// quote, an empty line or a field count other than the layout's are errors.
//
// Values are then checked so that the row can be written as a test_results row:
// the line must be valid UTF-8 without NUL bytes (Postgres text rejects both, which
// made such rows fail in the original too), PIDCOUNTYCODE must be a decimal integer,
// the employer/school values and the normalised phones must fit varchar(255), and no
// value may exceed 4096 bytes.
//
// The checksum is SHA-256 over the fields padded to the v3 layout (older layouts get
// empty columns inserted before RESULTPOSITIVE) and re-serialised: fields joined by
// "|", a field wrapped in quotes with inner quotes doubled if it contains `"`, "|" or
// "\n". This is the original's "v3 checksum" (its serialiser quotes on "\r\n", which
// contains "\n", so a lone "\r" is not quoted). It makes a row read from a v1 or v2
// export identical to the same row with blank new columns in a v3 export.
//
// The error, if any, is a *RowError; the Record then holds only Line and Raw.
func (v Version) ParseLine(line []byte, lineNo int) (Record, error) {
	var r Record
	if err := v.parse(&r, line, lineNo); err != nil {
		return Record{Line: r.Line, Raw: r.Raw}, err
	}
	return r, nil
}

func (v Version) parse(r *Record, line []byte, lineNo int) *RowError {
	r.Line = lineNo
	line = bytes.TrimSpace(line)
	if len(line) == 0 {
		return &RowError{Line: lineNo, Reason: "empty line"}
	}
	raw := string(line) // the row's one allocation: every unquoted value is a substring of it
	r.Raw = raw
	n := v.NumFields()
	if n == 0 {
		return &RowError{Line: lineNo, Reason: "unknown ECLRS version " + v.String()}
	}

	// A line without quotes, the usual case, needs none of the quoting rules.
	plain := bytes.IndexByte(line, '"') < 0
	var count int
	var err *RowError
	if plain {
		count = v.splitPlain(r, raw, line)
	} else {
		count, err = v.splitQuoted(r, raw)
		if err != nil {
			return err
		}
	}
	if count != n {
		return &RowError{Line: lineNo, Reason: "row has " + strconv.Itoa(count) + " fields, " + v.String() + " expects " + strconv.Itoa(n)}
	}
	if err := v.checkValues(r, line); err != nil {
		return err
	}
	county, ok := parseDecimal(r.Fields[FieldCountyCode])
	if !ok {
		return r.fieldError(FieldCountyCode, "not a decimal county code: "+clip(r.Fields[FieldCountyCode]))
	}
	r.CountyID = county

	// Without quotes or newlines the canonical re-serialisation is the line itself,
	// so it can be hashed without building anything.
	if plain && bytes.IndexByte(line, '\n') < 0 {
		r.Checksum = v.checksumPlain(line)
	} else {
		r.Checksum = checksumFields(&r.Fields)
	}
	return nil
}

// splitPlain splits a line that contains no quotes; raw and line hold the same
// bytes. It returns the number of fields; fields beyond the layout are counted but
// not kept. Separators are found eight bytes at a time: calling IndexByte once per
// field costs more than the scan itself on values this short.
func (v Version) splitPlain(r *Record, raw string, line []byte) int {
	lastIdx := v.NumFields() - 1
	count, start, i := 0, 0, 0
	for ; i+8 <= len(line); i += 8 {
		for m := pipeMask(binary.LittleEndian.Uint64(line[i:])); m != 0; m &= m - 1 {
			j := i + bits.TrailingZeros64(m)>>3
			r.store(count, lastIdx, raw[start:j])
			count++
			start = j + 1
		}
	}
	for ; i < len(line); i++ {
		if line[i] == '|' {
			r.store(count, lastIdx, raw[start:i])
			count++
			start = i + 1
		}
	}
	r.store(count, lastIdx, raw[start:])
	return count + 1
}

// pipeMask returns a word with the high bit set in exactly those bytes of x that are
// '|'. (The usual "has zero byte" trick flags false positives after a match; this
// variant cannot carry between bytes, so every flag is exact.)
func pipeMask(x uint64) uint64 {
	const low7 = 0x7F7F7F7F7F7F7F7F
	t := x ^ 0x7C7C7C7C7C7C7C7C // '|' bytes become 0
	return ^((t&low7 + low7) | t | low7)
}

// store puts the k-th field of a row whose last column is lastIdx at its v3 position:
// everything before RESULTPOSITIVE keeps its index, RESULTPOSITIVE goes to
// FieldResult. Fields past the layout are dropped (the row fails its count check);
// the last one seen is kept in FieldResult only until then.
func (r *Record) store(k, lastIdx int, s string) {
	switch {
	case k < lastIdx:
		r.Fields[k] = s
	case k == lastIdx:
		r.Fields[FieldResult] = s
	}
}

// splitQuoted splits a line with the CSV quoting rules. Only values that contain
// escaped quotes allocate.
func (v Version) splitQuoted(r *Record, raw string) (int, *RowError) {
	lastIdx := v.NumFields() - 1
	count, pos := 0, 0
	for {
		var f string
		if pos < len(raw) && raw[pos] == '"' {
			start := pos + 1
			j, escaped := start, false
			for {
				q := strings.IndexByte(raw[j:], '"')
				if q < 0 {
					return count, v.columnError(r, count, "unterminated quoted value: "+clip(raw[pos:]))
				}
				q += j
				if q+1 < len(raw) && raw[q+1] == '"' {
					escaped = true
					j = q + 2
					continue
				}
				if q+1 < len(raw) && raw[q+1] != '|' {
					return count, v.columnError(r, count, "unexpected text after closing quote: "+clip(raw[pos:]))
				}
				f = raw[start:q]
				if escaped {
					f = strings.ReplaceAll(f, `""`, `"`)
				}
				pos = q + 1
				break
			}
		} else {
			end := len(raw)
			if i := strings.IndexByte(raw[pos:], '|'); i >= 0 {
				end = pos + i
			}
			f = raw[pos:end]
			if strings.IndexByte(f, '"') >= 0 {
				return count, v.columnError(r, count, `unexpected '"' in unquoted value: `+clip(f))
			}
			pos = end
		}
		r.store(count, lastIdx, f)
		count++
		if pos == len(raw) {
			return count, nil
		}
		pos++ // the '|' after the field
	}
}

// columnError reports a problem with the k-th column of a row in v's layout, naming
// the column, or its 1-based position when the row is longer than the layout.
func (v Version) columnError(r *Record, k int, reason string) *RowError {
	name := v.columnName(k)
	if name == "" {
		reason = "column " + strconv.Itoa(k+1) + " (beyond the " + v.String() + " layout): " + reason
	}
	return &RowError{Line: r.Line, Field: name, Reason: reason}
}

func (r *Record) fieldError(i int, reason string) *RowError {
	return &RowError{Line: r.Line, Field: FieldName(i), Reason: reason}
}

// checkValues rejects rows that Postgres would refuse (bad encoding, NUL, too wide
// for varchar(255)) and absurdly long values. line is the trimmed line, the bytes of
// r.Raw.
func (v Version) checkValues(r *Record, line []byte) *RowError {
	if bytes.IndexByte(line, 0) >= 0 {
		return r.firstField(func(s string) bool { return strings.IndexByte(s, 0) >= 0 }, "contains a NUL byte")
	}
	if !utf8.Valid(line) {
		return r.firstField(func(s string) bool { return !utf8.ValidString(s) }, "not valid UTF-8")
	}
	// No value can be longer than the line, so the usual row skips this walk.
	if len(line) > maxFieldBytes {
		for i := range r.Fields {
			if l := len(r.Fields[i]); l > maxFieldBytes {
				return r.fieldError(i, "value is "+strconv.Itoa(l)+" bytes long, more than the limit of "+strconv.Itoa(maxFieldBytes))
			}
		}
	}
	for _, i := range varcharFields {
		s := r.Fields[i]
		if len(s) > maxVarcharChars {
			if c := utf8.RuneCountInString(s); c > maxVarcharChars {
				return r.fieldError(i, "value has "+strconv.Itoa(c)+" characters, the column holds "+strconv.Itoa(maxVarcharChars))
			}
		}
	}
	for _, i := range [...]int{FieldPatientPhoneHome, FieldRequestPhoneFacility} {
		s := r.Fields[i]
		if len(s) > maxVarcharChars {
			if c := countDigits(s); c > maxVarcharChars {
				return r.fieldError(i, "normalised phone has "+strconv.Itoa(c)+" digits, the column holds "+strconv.Itoa(maxVarcharChars))
			}
		}
	}
	return nil
}

// firstField names the first field for which bad reports true, or the whole row if
// none does (a NUL or bad byte can only be inside some field, so that is a fallback).
func (r *Record) firstField(bad func(string) bool, reason string) *RowError {
	for i := range r.Fields {
		if bad(r.Fields[i]) {
			return r.fieldError(i, reason)
		}
	}
	return &RowError{Line: r.Line, Reason: reason}
}

func countDigits(s string) int {
	n := 0
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= '0' && c <= '9' {
			n++
		}
	}
	return n
}

// parseDecimal parses a non-empty string of ASCII digits into an int64. Unlike
// strconv.ParseInt it refuses signs and underscores, as the original's strict
// String.to_integer did (leading zeros are fine).
func parseDecimal(s string) (int64, bool) {
	if s == "" {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		d := int64(c - '0')
		if n > (1<<63-1-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	return n, true
}

// clip quotes a value for an error message, cutting it short so that a broken row
// does not produce a kilobyte-long log line.
func clip(s string) string {
	if len(s) <= errorValueMax {
		return strconv.Quote(s)
	}
	return strconv.Quote(s[:errorValueMax]) + "..."
}

// pipes supplies the "|" separators of the empty columns inserted when padding an
// older layout to v3 (at most 20, for v1).
const pipes = "||||||||||||||||||||"

// checksumBufSize is the stack buffer used to assemble the bytes to hash. Real rows
// are around 600 bytes; longer ones spill to the heap, which is correct, only slower.
const checksumBufSize = 2048

// checksumPlain hashes a line that contains no quotes and no newline. Its
// re-serialisation is the line itself, so padding to v3 is just inserting empty
// columns right after the last "|", before RESULTPOSITIVE.
func (v Version) checksumPlain(line []byte) [32]byte {
	if v == V3 {
		return sha256.Sum256(line)
	}
	pad := NumFields - v.NumFields()
	cut := bytes.LastIndexByte(line, '|') + 1
	var buf [checksumBufSize]byte
	b := append(buf[:0], line[:cut]...)
	b = append(b, pipes[:pad]...)
	b = append(b, line[cut:]...)
	return sha256.Sum256(b)
}

// checksumFields hashes the canonical re-serialisation of v3-positioned fields.
func checksumFields(fields *[NumFields]string) [32]byte {
	var buf [checksumBufSize]byte
	return sha256.Sum256(appendCanonical(buf[:0], fields[:]))
}

// appendCanonical appends fields re-serialised the way the original's checksum
// serialiser (NimbleCSV with separator "|") wrote them: joined by "|", each field
// quoted, with inner quotes doubled, iff it contains `"`, "|" or "\n".
func appendCanonical(dst []byte, fields []string) []byte {
	for i, f := range fields {
		if i > 0 {
			dst = append(dst, '|')
		}
		if !strings.ContainsAny(f, "\"|\n") {
			dst = append(dst, f...)
			continue
		}
		dst = append(dst, '"')
		for {
			q := strings.IndexByte(f, '"')
			if q < 0 {
				break
			}
			dst = append(dst, f[:q+1]...)
			dst = append(dst, '"')
			f = f[q+1:]
		}
		dst = append(dst, f...)
		dst = append(dst, '"')
	}
	return dst
}
