package proxyhdr

import (
	"bytes"
	"strings"
)

// v1Fields are the tokens of a v1 line after "PROXY TCP4|TCP6".
const v1Fields = 4 // source, destination, source port, destination port

// v1Witness returns a valid v1 header that starts with the partial line p
// (no LF yet, shorter than MaxV1Len), or nil if there is none: a line is
// waited for only while it can still become a header.
//
// Rather than restate the grammar (and drift from the parser that decides),
// it completes p's last token a few shortest ways and fills the remaining
// tokens with the shortest valid values, then asks decode. The candidates
// are enough: an IPv4 octet, a port, "TCP4" are prefix-closed (every
// prefix of a valid one that is not empty is valid or completes by
// appending), and a partial IPv6 address with room for more groups
// completes with "", "0", ":" or "::", or, once it holds a dot, as an IPv4
// tail. FuzzParse checks the other direction: every prefix of a header
// Parse accepts is reported incomplete.
//
// It runs only while a header is short of its LF, at most MaxV1Len times
// for a header trickled a byte at a time, on at most 107 bytes each.
func v1Witness(p []byte) []byte {
	if len(p) < len(sigV1) {
		return firstValid(p, string(sigV1[len(p):])+"UNKNOWN\r\n")
	}
	rest := string(p[len(sigV1):])
	// A line complete but for its CRLF (or LF), or "UNKNOWN" followed by
	// anything the receiver ignores.
	cands := []string{"\n", "\r\n"}
	tokens := strings.Split(rest, " ")
	if len(tokens) == 1 {
		for _, proto := range []string{"TCP4", "TCP6", "UNKNOWN"} {
			if strings.HasPrefix(proto, rest) {
				cands = append(cands, proto[len(rest):]+v1Fill(proto, 0)+"\r\n")
			}
		}
		return firstValid(p, cands...)
	}
	proto, fields := tokens[0], tokens[1:]
	if (proto != "TCP4" && proto != "TCP6") || len(fields) > v1Fields {
		return firstValid(p, cands...)
	}
	last := len(fields) - 1
	for _, c := range v1TokenEndings(proto, last, fields[last]) {
		cands = append(cands, c+v1Fill(proto, last+1)+"\r\n")
	}
	return firstValid(p, cands...)
}

// v1TokenEndings returns the ways to finish the partial field i of a
// TCP4/TCP6 line worth trying.
func v1TokenEndings(proto string, i int, partial string) []string {
	if i >= 2 { // a port
		return []string{"", "0"}
	}
	if proto == "TCP4" {
		return []string{ipv4Ending(partial)}
	}
	if j := strings.LastIndexByte(partial, ':'); strings.IndexByte(partial, '.') >= 0 {
		return []string{ipv4Ending(partial[j+1:])}
	}
	return []string{"", "0", ":", "::"}
}

// ipv4Ending finishes a partial dotted quad with zero octets.
func ipv4Ending(partial string) string {
	dots := strings.Count(partial, ".")
	if dots > 3 {
		return ""
	}
	end := ""
	if partial == "" || partial[len(partial)-1] == '.' {
		end = "0"
	}
	return end + strings.Repeat(".0", 3-dots)
}

// v1Fill returns the shortest valid values of the fields from i on.
func v1Fill(proto string, from int) string {
	if proto == "UNKNOWN" {
		return ""
	}
	addr := "0.0.0.0"
	if proto == "TCP6" {
		addr = "::"
	}
	var b strings.Builder
	for i := from; i < v1Fields; i++ {
		b.WriteByte(' ')
		if i < 2 {
			b.WriteString(addr)
		} else {
			b.WriteByte('0')
		}
	}
	return b.String()
}

// firstValid returns p followed by the first ending that makes a header
// decode accepts, or nil.
func firstValid(p []byte, endings ...string) []byte {
	for _, e := range endings {
		if len(p)+len(e) > MaxV1Len {
			continue
		}
		w := append(bytes.Clone(p), e...)
		if bytes.IndexByte(w, '\n') != len(w)-1 {
			continue
		}
		if _, err := decode(w); err == nil {
			return w
		}
	}
	return nil
}
