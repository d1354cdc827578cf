package loadgen

import (
	"bytes"
	"strconv"

	"github.com/shardgate/shardgate/bench/internal/jsonscan"
)

// MinDataSize is the smallest data value AppendData makes: the timestamp
// and sequence number without padding.
const MinDataSize = len(`{"t":1700000000000000000,"s":1}`)

// AppendData appends to dst the data of one benchmark message: a JSON
// object carrying the sender's wall clock in Unix nanoseconds ("t") and a
// sequence number ("s"), padded with "p" to size bytes when size allows.
//
//	{"t":1732540000123456789,"s":42,"p":"xxxxxxxx"}
func AppendData(dst []byte, sentUnixNano int64, seq uint64, size int) []byte {
	start := len(dst)
	dst = append(dst, `{"t":`...)
	dst = strconv.AppendInt(dst, sentUnixNano, 10)
	dst = append(dst, `,"s":`...)
	dst = strconv.AppendUint(dst, seq, 10)
	const padFrame = len(`,"p":""}`)
	pad := size - (len(dst) - start) - padFrame
	if pad < 0 {
		return append(dst, '}')
	}
	dst = append(dst, `,"p":"`...)
	for range pad {
		dst = append(dst, 'x')
	}
	return append(dst, `"}`...)
}

// ParseData reads what AppendData wrote. It takes the layout AppendData
// writes without a scan, and falls back to a scan of the object for a
// server that re-encodes data.
func ParseData(data []byte) (sentUnixNano int64, seq uint64, ok bool) {
	if rest, found := bytes.CutPrefix(data, []byte(`{"t":`)); found {
		if i := bytes.IndexByte(rest, ','); i > 0 {
			if t, okT := jsonscan.Int(rest[:i]); okT {
				if rest, found = bytes.CutPrefix(rest[i:], []byte(`,"s":`)); found {
					if j := bytes.IndexAny(rest, ",}"); j > 0 {
						if s, okS := jsonscan.Int(rest[:j]); okS && s >= 0 {
							return t, uint64(s), true
						}
					}
				}
			}
		}
	}
	var haveT, haveS bool
	err := jsonscan.Fields(data, func(key, value []byte) bool {
		switch string(key) {
		case "t":
			sentUnixNano, haveT = jsonscan.Int(value)
		case "s":
			var s int64
			s, haveS = jsonscan.Int(value)
			haveS = haveS && s >= 0
			seq = uint64(s)
		}
		return !(haveT && haveS)
	})
	return sentUnixNano, seq, err == nil && haveT && haveS
}
