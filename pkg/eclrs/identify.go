package eclrs

import "bytes"

// Identify returns a line's identity checksum and county code without splitting it into fields. In a rolling
// export almost every row was imported before, and for those the checksum and county are all the importer needs;
// only rows that turn out to be new are worth a full ParseLine.
//
// ok is false when the line needs the full parser: it is empty, contains quotes, has the wrong number of fields for
// v, or its county code is not a decimal number. ParseLine then says what is wrong, if anything. When ok is true,
// the checksum and county are exactly what ParseLine would compute; the values are not otherwise validated, so a row
// whose checksum is not already known must still go through ParseLine.
func (v Version) Identify(line []byte) (sum [32]byte, county int64, ok bool) {
	line = bytes.TrimSpace(line)
	n := v.NumFields()
	if len(line) == 0 || n == 0 || bytes.IndexByte(line, '"') >= 0 || bytes.Count(line, pipe) != n-1 {
		return sum, 0, false
	}
	// The county code is the field after the ninth separator.
	start := 0
	for range FieldCountyCode {
		start += bytes.IndexByte(line[start:], '|') + 1
	}
	end := start + bytes.IndexByte(line[start:], '|')
	county, ok = parseDecimal(string(line[start:end])) // does not allocate: the conversion does not escape
	if !ok {
		return sum, 0, false
	}
	return v.checksumPlain(line), county, true
}

var pipe = []byte{'|'}
