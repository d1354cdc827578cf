package wsframe

import (
	"strconv"
	"testing"
)

// FuzzDecode feeds arbitrary bytes to Decode whole and split in two reads at
// a fuzzer-chosen point, with fuzzer-chosen rules (maxMessage, and binary
// messages accepted or not). Beyond not panicking, feed checks on every
// call that n stays within the input, that delivered payloads respect their
// limits and that Decode leaves no complete frame behind; both feeds must
// then agree on the messages, the close code and the bytes consumed.
func FuzzDecode(f *testing.F) {
	for _, test := range testCases {
		data := test.data()
		if len(data) > 4096 {
			continue
		}
		limit := min(max(test.maxMessage(), 0), 1<<16-1)
		f.Add(data, uint(len(data)/2), uint16(limit), test.binary)
		f.Add(data, uint(1), uint16(limit), !test.binary)
	}
	f.Add([]byte{}, uint(0), uint16(0), false)

	f.Fuzz(func(t *testing.T, data []byte, split uint, limit uint16, binary bool) {
		rules := Rules{MaxMessage: int(limit), Binary: binary}
		at := int(split % uint(len(data)+1))

		whole := feed(t, [][]byte{clone(data)}, rules)
		if whole.consumed > len(data) {
			t.Fatalf(
				"consumed %d of %d bytes",
				whole.consumed, len(data),
			)
		}
		parts := feed(t, [][]byte{clone(data[:at]), clone(data[at:])}, rules)
		verifyResult(t, "split at "+strconv.Itoa(at), parts, whole)
	})
}
