package pmce

import (
	"strings"
	"testing"

	"github.com/gobwas/ws"
	"github.com/shardgate/shardgate/shard/wsframe"
)

// negotiationCases drive TestAccept and seed FuzzAccept. header is one
// Sec-WebSocket-Extensions value; want is the response line without its
// CRLF, "" for a declined header.
var negotiationCases = []struct {
	name   string
	header string
	want   string
}{
	{"bare", "permessage-deflate",
		"permessage-deflate; server_no_context_takeover; client_no_context_takeover"},
	// What Chrome and Firefox send.
	{"browser", "permessage-deflate; client_max_window_bits",
		"permessage-deflate; server_no_context_takeover; client_no_context_takeover"},
	{"both no-takeovers", "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
		"permessage-deflate; server_no_context_takeover; client_no_context_takeover"},
	{"client window with value", "permessage-deflate; client_max_window_bits=10",
		"permessage-deflate; server_no_context_takeover; client_no_context_takeover"},
	{"client window quoted", `permessage-deflate; client_max_window_bits="12"`,
		"permessage-deflate; server_no_context_takeover; client_no_context_takeover"},
	{"server window 15 repeated", "permessage-deflate; server_max_window_bits=15",
		"permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=15"},
	{"server window 8", "permessage-deflate; server_max_window_bits=8",
		"permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=8"},
	{"server window quoted", `permessage-deflate; server_max_window_bits="9"`,
		"permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=9"},
	{"server window quoted with escape", `permessage-deflate; server_max_window_bits="1\1"`,
		"permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=11"},
	// Autobahn 13.7's offer list: the first acceptable offer wins.
	{"autobahn 13.7", "permessage-deflate; client_no_context_takeover; client_max_window_bits; server_no_context_takeover; server_max_window_bits=8, permessage-deflate; client_no_context_takeover; client_max_window_bits; server_no_context_takeover, permessage-deflate; client_no_context_takeover; client_max_window_bits",
		"permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=8"},
	{"white space and case", "  Permessage-Deflate ;\tSERVER_MAX_WINDOW_BITS = 10 ; client_max_window_bits  ",
		"permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10"},
	{"empty elements", ", ,permessage-deflate,",
		"permessage-deflate; server_no_context_takeover; client_no_context_takeover"},
	{"other extension first", "x-webkit-deflate-frame, permessage-deflate; server_max_window_bits=12",
		"permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=12"},
	{"bad offer then good one", "permessage-deflate; server_max_window_bits=7, permessage-deflate",
		"permessage-deflate; server_no_context_takeover; client_no_context_takeover"},
	{"quoted comma in another extension", `foo; bar="a,permessage-deflate", permessage-deflate`,
		"permessage-deflate; server_no_context_takeover; client_no_context_takeover"},

	// Declined: the upgrade goes ahead without the extension.
	{"empty", "", ""},
	{"other extension only", "x-webkit-deflate-frame", ""},
	{"name as a prefix", "permessage-deflate-x", ""},
	{"unknown parameter", "permessage-deflate; foo", ""},
	{"unknown parameter with value", "permessage-deflate; foo=1", ""},
	{"duplicate server_no_context_takeover", "permessage-deflate; server_no_context_takeover; server_no_context_takeover", ""},
	{"duplicate client_no_context_takeover", "permessage-deflate; client_no_context_takeover; client_no_context_takeover", ""},
	{"duplicate server window", "permessage-deflate; server_max_window_bits=10; server_max_window_bits=10", ""},
	{"duplicate client window", "permessage-deflate; client_max_window_bits; client_max_window_bits=10", ""},
	{"value on server_no_context_takeover", "permessage-deflate; server_no_context_takeover=1", ""},
	{"value on client_no_context_takeover", "permessage-deflate; client_no_context_takeover=", ""},
	{"server window without value", "permessage-deflate; server_max_window_bits", ""},
	{"server window empty value", "permessage-deflate; server_max_window_bits=", ""},
	{"server window 7", "permessage-deflate; server_max_window_bits=7", ""},
	{"server window 16", "permessage-deflate; server_max_window_bits=16", ""},
	{"server window leading zero", "permessage-deflate; server_max_window_bits=08", ""},
	{"server window sign", "permessage-deflate; server_max_window_bits=+9", ""},
	{"server window not a number", "permessage-deflate; server_max_window_bits=ten", ""},
	{"client window 0", "permessage-deflate; client_max_window_bits=0", ""},
	{"client window 16", "permessage-deflate; client_max_window_bits=16", ""},
	{"client window quoted bad", `permessage-deflate; client_max_window_bits="16"`, ""},
	{"unterminated quote", `permessage-deflate; client_max_window_bits="10, permessage-deflate`, ""},
	{"quote inside token", `permessage-deflate; client_max_window_bits=1"0"`, ""},
	{"empty parameter", "permessage-deflate;; server_no_context_takeover", ""},
	{"trailing semicolon", "permessage-deflate;", ""},
	{"value with space inside", "permessage-deflate; server_max_window_bits=1 0", ""},
}

func TestAccept(t *testing.T) {
	for _, c := range negotiationCases {
		t.Run(c.name, func(t *testing.T) {
			p, ok := Accept([]byte(c.header))
			got := strings.TrimSuffix(strings.TrimPrefix(p.Header(), "Sec-WebSocket-Extensions: "), "\r\n")
			if got != c.want || ok != (c.want != "") || p.On() != ok {
				t.Errorf("Accept(%q) = %q (ok %v), want %q", c.header, got, ok, c.want)
			}
		})
	}
}

func TestParamsFits(t *testing.T) {
	cases := []struct {
		header string
		n      int
		fits   bool
	}{
		{"permessage-deflate", 1 << 30, true},
		{"permessage-deflate; server_max_window_bits=15", 1 << 30, true},
		{"permessage-deflate; server_max_window_bits=14", 1 << 14, true},
		{"permessage-deflate; server_max_window_bits=14", 1<<14 + 1, false},
		{"permessage-deflate; server_max_window_bits=8", 256, true},
		{"permessage-deflate; server_max_window_bits=8", 257, false},
	}
	for _, c := range cases {
		p, ok := Accept([]byte(c.header))
		if !ok {
			t.Fatalf("Accept(%q) declined", c.header)
		}
		if got := p.Fits(c.n); got != c.fits {
			t.Errorf("%q: Fits(%d) = %v, want %v", c.header, c.n, got, c.fits)
		}
	}
	if Params(0).Fits(1) || Params(0).On() || Params(0).Header() != "" {
		t.Error("the zero Params is in use")
	}
}

func TestAcceptAllocs(t *testing.T) {
	header := []byte("permessage-deflate; client_max_window_bits, permessage-deflate; server_max_window_bits=10")
	if n := testing.AllocsPerRun(100, func() {
		p, _ := Accept(header)
		_ = p.Header()
	}); n != 0 {
		t.Errorf("Accept allocates %v times per call", n)
	}
}

// FuzzAccept: whatever the header, Accept returns either nothing or an
// agreement whose answer is one RFC 7692 allows for some offer in the
// header: a window of 8 to 15 bits, repeated only when offered.
func FuzzAccept(f *testing.F) {
	for _, c := range negotiationCases {
		f.Add([]byte(c.header))
	}
	f.Fuzz(func(t *testing.T, header []byte) {
		p, ok := Accept(header)
		if !ok {
			if p != 0 {
				t.Fatalf("declined with params %#x", p)
			}
			return
		}
		bits := p.WindowBits()
		if bits < minWindowBits || bits > maxWindowBits || p&^(echoWindow|windowMask) != 0 {
			t.Fatalf("params %#x out of range", p)
		}
		h := p.Header()
		if !strings.HasPrefix(h, "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; client_no_context_takeover") {
			t.Fatalf("answer %q", h)
		}
		lower := strings.ToLower(string(header))
		if !strings.Contains(lower, "permessage-deflate") {
			t.Fatalf("accepted %q, which offers no permessage-deflate", header)
		}
		if p&echoWindow != 0 && !strings.Contains(lower, "server_max_window_bits") {
			t.Fatalf("answered server_max_window_bits to %q", header)
		}
		if p&echoWindow == 0 && bits != maxWindowBits {
			t.Fatalf("window %d without server_max_window_bits", bits)
		}
	})
}

func TestParamsFitsFrame(t *testing.T) {
	p, _ := Accept([]byte("permessage-deflate; server_max_window_bits=9"))
	for _, n := range []int{0, 125, 126, 512, 513, 65535, 65536, 1 << 20} {
		frame := wsframe.AppendHeader(nil, ws.OpText, n)
		if got, want := p.FitsFrame(frame), n <= 512; got != want {
			t.Errorf("window 9, %d-byte frame: FitsFrame %v, want %v", n, got, want)
		}
		if !Params(maxWindowBits).FitsFrame(frame) {
			t.Errorf("whole window, %d-byte frame: does not fit", n)
		}
	}
}
