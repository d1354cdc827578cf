package wsframe

import (
	"strconv"
	"testing"
	"unicode/utf8"

	"github.com/gobwas/ws"
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

// FuzzFragmentedUTF8 sends data as a text message cut into fragments at
// fuzzer-chosen points (each byte of cuts is a fragment's length): the
// message is delivered whole exactly when data is valid UTF-8, and fails
// with 1007 otherwise, however the cuts split its runes. The fragments are
// checked as they arrive (fail fast), so this pins that check to
// utf8.Valid on the whole message.
func FuzzFragmentedUTF8(f *testing.F) {
	for _, s := range []string{
		"", "ascii", "héllo, 世界 🌍", "\xf0\x9f\x8c\x8d", "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5",
		"\xff", "ok\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xe0\x80\xaf", "\xf0\x9f\x8c", "\xf0\x9f\x8ca",
		"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited",
	} {
		f.Add([]byte(s), []byte{1})
		f.Add([]byte(s), []byte{2, 1, 3})
	}
	f.Fuzz(func(t *testing.T, data, cuts []byte) {
		var frames []testFrame
		rest := string(data)
		for i := 0; len(rest) > 0 && i < len(cuts); i++ {
			n := min(int(cuts[i])%8, len(rest))
			frames = append(frames, testFrame{op: ws.OpContinuation, payload: rest[:n]})
			rest = rest[n:]
		}
		frames = append(frames, testFrame{fin: true, op: ws.OpContinuation, payload: rest})
		frames[0].op = ws.OpText
		var buf []byte
		for _, fr := range frames {
			buf = append(buf, fr.client()...)
		}

		got := feed(t, [][]byte{buf}, testRules)
		if utf8.Valid(data) {
			if got.code != 0 || len(got.msgs) != 1 || got.msgs[0].payload != string(data) {
				t.Fatalf("valid %q in %d fragments: got %v, code %d", data, len(frames), got.msgs, got.code)
			}
			return
		}
		if got.code != ws.StatusInvalidFramePayloadData || len(got.msgs) != 0 {
			t.Fatalf("invalid %q in %d fragments: got %v, code %d; want 1007", data, len(frames), got.msgs, got.code)
		}
	})
}
