// Package jsonscan walks the top level of a JSON object without decoding
// it: the load generator looks at a few fields of many small messages, and
// a scan that skips what it does not need costs a fraction of
// encoding/json. Values come back raw (a string keeps its quotes), as
// slices of the input valid as long as the input is.
package jsonscan

import (
	"bytes"
	"errors"
	"fmt"
)

// ErrSyntax is wrapped by every error for input that is not a JSON object.
var ErrSyntax = errors.New("jsonscan: malformed JSON object")

// Fields calls fn with each key (without quotes, escapes left as they are)
// and raw value at the top level of the object in b, in order, until fn
// returns false. Nested values are skipped over, not checked in detail.
func Fields(b []byte, fn func(key, value []byte) bool) error {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return fmt.Errorf("%w: does not start with {", ErrSyntax)
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return nil
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return fmt.Errorf("%w: key expected at %d", ErrSyntax, i)
		}
		end, err := skipString(b, i)
		if err != nil {
			return err
		}
		key := b[i+1 : end-1]
		i = skipSpace(b, end)
		if i >= len(b) || b[i] != ':' {
			return fmt.Errorf("%w: colon expected at %d", ErrSyntax, i)
		}
		i = skipSpace(b, i+1)
		vend, err := skipValue(b, i)
		if err != nil {
			return err
		}
		if !fn(key, b[i:vend]) {
			return nil
		}
		i = skipSpace(b, vend)
		if i >= len(b) {
			return fmt.Errorf("%w: unterminated object", ErrSyntax)
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case '}':
			return nil
		default:
			return fmt.Errorf("%w: comma or } expected at %d", ErrSyntax, i)
		}
	}
}

// Unquote returns the content of a raw JSON string value without its
// quotes, when it holds no escapes (channel names, types and codes never
// do); ok is false otherwise.
func Unquote(raw []byte) (s []byte, ok bool) {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return nil, false
	}
	s = raw[1 : len(raw)-1]
	return s, bytes.IndexByte(s, '\\') < 0
}

// Int parses a raw JSON integer value.
func Int(raw []byte) (int64, bool) {
	if len(raw) == 0 || len(raw) > 19 {
		return 0, false
	}
	neg := raw[0] == '-'
	if neg {
		raw = raw[1:]
		if len(raw) == 0 {
			return 0, false
		}
	}
	var n int64
	for _, c := range raw {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	if neg {
		n = -n
	}
	return n, true
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index just past the string starting at b[i] == '"'.
// It looks for quotes with IndexByte (vectorised) and counts the
// backslashes in front of each: an odd number escapes it.
func skipString(b []byte, i int) (int, error) {
	i++
	for {
		j := bytes.IndexByte(b[i:], '"')
		if j < 0 {
			return 0, fmt.Errorf("%w: unterminated string", ErrSyntax)
		}
		i += j
		k := i
		for k > 0 && b[k-1] == '\\' {
			k--
		}
		if (i-k)%2 == 0 {
			return i + 1, nil
		}
		i++
	}
}

// skipValue returns the index just past the value starting at b[i].
func skipValue(b []byte, i int) (int, error) {
	if i >= len(b) {
		return 0, fmt.Errorf("%w: value expected", ErrSyntax)
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				end, err := skipString(b, i)
				if err != nil {
					return 0, err
				}
				i = end
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1, nil
				}
			}
			i++
		}
		return 0, fmt.Errorf("%w: unterminated object or array", ErrSyntax)
	default:
		start := i
		for i < len(b) && b[i] != ',' && b[i] != '}' && b[i] != ']' && b[i] != ' ' && b[i] != '\n' && b[i] != '\t' && b[i] != '\r' {
			i++
		}
		if i == start {
			return 0, fmt.Errorf("%w: value expected at %d", ErrSyntax, i)
		}
		return i, nil
	}
}
