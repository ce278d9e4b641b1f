package e2

import (
	"encoding/json"
	"unicode/utf8"
)

// marshalData renders a data map as JSON. Maps built from test results hold only strings and nulls; they are
// written directly, which costs a third of encoding/json's reflection (measured: it was 30% of Engine 2's CPU).
// Maps holding anything else (CommCare data can hold numbers, lists, objects) go through encoding/json. Keys come
// in map order, unsorted: every column the JSON goes to is jsonb, which orders keys itself, and sorting was a
// fifth of this function's time.
func marshalData(m map[string]any) ([]byte, error) {
	size := 2
	for k, v := range m {
		switch v := v.(type) {
		case string:
			size += len(v)
		case nil:
		default:
			return json.Marshal(m)
		}
		size += len(k) + 8
	}
	b := make([]byte, 0, size)
	b = append(b, '{')
	for k, v := range m {
		if len(b) > 1 {
			b = append(b, ',')
		}
		b = appendJSONString(b, k)
		b = append(b, ':')
		if s, ok := v.(string); ok {
			b = appendJSONString(b, s)
		} else {
			b = append(b, "null"...)
		}
	}
	return append(b, '}'), nil
}

// appendJSONString appends s as a JSON string. Invalid UTF-8 becomes U+FFFD, as encoding/json does.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
