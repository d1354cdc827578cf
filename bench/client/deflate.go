package client

import (
	"bytes"
	"compress/flate"
	"fmt"
	"io"
	"slices"
	"strconv"
)

// permessage-deflate (RFC 7692), receiving side only: with Options.Compress
// every upgrade offers the extension the way a browser does, and messages
// the server sends compressed (RSV1 on their first frame) are inflated
// before OnMessage. This side never compresses what it sends, which the
// RFC allows (RSV1 is per message).
//
// Memory: a connection that did not negotiate the extension costs nothing
// (two bytes of Conn that were padding). One that did, under
// server_no_context_takeover (what gorilla/websocket, Centrifugo and
// shardgate answer), holds nothing between messages either: each message
// is a deflate stream of its own, inflated by the loop's one decompressor.
// Only a server that keeps its context across messages makes a connection
// keep the last 2^server_max_window_bits bytes it inflated (up to 32 KiB,
// the "LZ77 sliding window" of §7.2.2), which the next message may refer
// to; the loop keeps those windows in a map, not in Conn.
//
// CPU: a broadcast reaches every subscriber of a loop as the same
// compressed bytes (a server compresses it once, or per connection with
// the same deterministic compressor), and without context takeover those
// bytes alone decide what they inflate to. So the loop remembers the last
// few messages it inflated, by their compressed bytes, and hands a repeat
// the remembered result after a comparison instead of a second inflation
// (about 4 µs per KiB): the generator, which shares the machine with the
// server it measures, does not spend a core inflating 150,000 copies of
// the same ten messages a second. Every message is still parsed by the
// handler; Counters.Inflated counts the inflations really run.

// DeflateOffer is the Sec-WebSocket-Extensions value of the upgrade with
// Options.Compress: what Chrome and Firefox offer, plus
// client_no_context_takeover (this side sends nothing compressed, so its
// own context costs nothing to give up).
const DeflateOffer = "permessage-deflate; client_no_context_takeover; client_max_window_bits"

// deflateTail ends every compressed message before inflation: the four
// bytes §7.2.2 says to append, then a final empty stored block so that
// the decompressor meets a clean end of stream instead of running out of
// input (io.ErrUnexpectedEOF). Read only.
var deflateTail = []byte{0x00, 0x00, 0xff, 0xff, 0x01, 0x00, 0x00, 0xff, 0xff}

// maxWindowBits is deflate's largest window, 32 KiB (RFC 1951).
const maxWindowBits = 15

// Conn.ext bits.
const (
	extDeflate   uint8 = 1 << iota // permessage-deflate negotiated
	extTakeover                    // the server keeps its context: keep a window
	extFragFlate                   // the fragmented message in progress is compressed
)

// Deflate is what a server answered to the permessage-deflate offer.
type Deflate struct {
	// ServerNoContextTakeover: every server message is a deflate stream
	// of its own.
	ServerNoContextTakeover bool
	// ClientNoContextTakeover is the server's demand on this side's
	// compressor (which never runs here).
	ClientNoContextTakeover bool
	// ServerMaxWindowBits is the server's LZ77 window, 8 to 15 (15 when
	// the answer does not name it).
	ServerMaxWindowBits int
	// ClientMaxWindowBits is the window the server allows this side's
	// compressor, 0 when the answer does not name one.
	ClientMaxWindowBits int
}

// String writes d as a Sec-WebSocket-Extensions value.
func (d Deflate) String() string {
	s := "permessage-deflate"
	if d.ServerNoContextTakeover {
		s += "; server_no_context_takeover"
	}
	if d.ClientNoContextTakeover {
		s += "; client_no_context_takeover"
	}
	if d.ServerMaxWindowBits != 0 && d.ServerMaxWindowBits != maxWindowBits {
		s += "; server_max_window_bits=" + strconv.Itoa(d.ServerMaxWindowBits)
	}
	if d.ClientMaxWindowBits != 0 {
		s += "; client_max_window_bits=" + strconv.Itoa(d.ClientMaxWindowBits)
	}
	return s
}

// parseExtensions reads the values of the Sec-WebSocket-Extensions header
// lines of a 101 answer to DeflateOffer. ok is false when the server
// declined (no extension named); an answer this side cannot take (another
// extension, permessage-deflate twice, a parameter unknown, repeated or
// out of range) is an error, as RFC 7692 §5.1 has a client fail the
// connection.
func parseExtensions(values [][]byte) (d Deflate, ok bool, err error) {
	bad := func(format string, args ...any) (Deflate, bool, error) {
		return Deflate{}, false, &HandshakeError{Status: 101, Detail: "Sec-WebSocket-Extensions: " + fmt.Sprintf(format, args...)}
	}
	for _, v := range values {
		for _, ext := range bytes.Split(v, []byte(",")) {
			ext = bytes.TrimSpace(ext)
			if len(ext) == 0 {
				continue
			}
			params := bytes.Split(ext, []byte(";"))
			name := bytes.TrimSpace(params[0])
			if !asciiEqualFold(name, "permessage-deflate") {
				return bad("%q was not offered", name)
			}
			if ok {
				return bad("permessage-deflate accepted twice")
			}
			ok = true
			d.ServerMaxWindowBits = maxWindowBits
			seen := map[string]bool{}
			for _, p := range params[1:] {
				key, val, hasVal := bytes.Cut(bytes.TrimSpace(p), []byte("="))
				k := string(bytes.ToLower(bytes.TrimSpace(key)))
				val = bytes.Trim(bytes.TrimSpace(val), `"`)
				if seen[k] {
					return bad("parameter %s twice", k)
				}
				seen[k] = true
				switch k {
				case "server_no_context_takeover", "client_no_context_takeover":
					if hasVal {
						return bad("%s takes no value", k)
					}
					if k == "server_no_context_takeover" {
						d.ServerNoContextTakeover = true
					} else {
						d.ClientNoContextTakeover = true
					}
				case "server_max_window_bits", "client_max_window_bits":
					n, err := strconv.Atoi(string(val))
					if !hasVal || err != nil || n < 8 || n > maxWindowBits {
						return bad("%s=%q: want 8 to 15", k, val)
					}
					if k == "server_max_window_bits" {
						d.ServerMaxWindowBits = n
					} else {
						d.ClientMaxWindowBits = n
					}
				default:
					return bad("unknown parameter %q", k)
				}
			}
		}
	}
	return d, ok, nil
}

// byteSource feeds one compressed message and deflateTail to the
// decompressor. It is an io.ByteReader, so flate reads from it directly
// instead of wrapping it in a bufio.Reader of its own at every Reset.
type byteSource struct {
	parts [2][]byte
}

func (s *byteSource) reset(payload []byte) { s.parts = [2][]byte{payload, deflateTail} }

func (s *byteSource) Read(p []byte) (int, error) {
	n := 0
	for i := range s.parts {
		m := copy(p[n:], s.parts[i])
		s.parts[i] = s.parts[i][m:]
		n += m
	}
	if n == 0 {
		return 0, io.EOF
	}
	return n, nil
}

func (s *byteSource) ReadByte() (byte, error) {
	for i := range s.parts {
		if len(s.parts[i]) > 0 {
			b := s.parts[i][0]
			s.parts[i] = s.parts[i][1:]
			return b, nil
		}
	}
	return 0, io.EOF
}

// memoEntries and memoMaxBytes size the inflater's memory of recent
// messages: a few channels' latest broadcasts, none of them huge.
const (
	memoEntries  = 8
	memoMaxBytes = 64 << 10
)

// memoEntry is one message inflated: its compressed bytes and the result.
type memoEntry struct {
	in, out []byte
}

// inflater is a loop's decompressor, shared by its connections one
// message at a time.
type inflater struct {
	src byteSource
	fr  io.ReadCloser // flate's decompressor; also a flate.Resetter
	out []byte        // the last message inflated
	// windows holds, for connections whose server keeps its context, the
	// last bytes inflated (at most the server's window).
	windows map[*Conn][]byte
	// memo: recent messages of connections without context takeover
	// (see the file comment); next is the entry to replace.
	memo [memoEntries]memoEntry
	next int
	runs int64 // inflations run (memo misses and context takeover)
}

// inflate decompresses one message of c (its payload without the tail)
// into a buffer valid until the next call. limit bounds the result.
func (f *inflater) inflate(c *Conn, payload []byte, limit int) ([]byte, error) {
	takeover := c.ext&extTakeover != 0
	if !takeover {
		for i := range f.memo {
			if e := &f.memo[i]; e.in != nil && len(e.out) <= limit && bytes.Equal(e.in, payload) {
				return e.out, nil
			}
		}
	}
	out, err := f.run(c, payload, limit)
	if err != nil || takeover || len(payload) > memoMaxBytes || len(out) > memoMaxBytes {
		return out, err
	}
	e := &f.memo[f.next]
	f.next = (f.next + 1) % memoEntries
	e.in = append(e.in[:0], payload...)
	e.out = append(e.out[:0], out...)
	return out, nil
}

// run inflates payload for c: the decompressor itself.
func (f *inflater) run(c *Conn, payload []byte, limit int) ([]byte, error) {
	f.runs++
	f.src.reset(payload)
	var dict []byte
	if c.ext&extTakeover != 0 {
		dict = f.windows[c]
	}
	if f.fr == nil {
		f.fr = flate.NewReader(&f.src)
	}
	if err := f.fr.(flate.Resetter).Reset(&f.src, dict); err != nil {
		return nil, fmt.Errorf("%w: inflate: %v", ErrProtocol, err)
	}
	out := f.out[:0]
	for {
		if len(out) == cap(out) {
			if len(out) > limit {
				return nil, fmt.Errorf("%w: message inflates past the %d-byte limit", ErrProtocol, limit)
			}
			out = slices.Grow(out, max(cap(out), 4<<10))
		}
		n, err := f.fr.Read(out[len(out):cap(out)])
		out = out[:len(out)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%w: inflate: %v", ErrProtocol, err)
		}
	}
	if len(out) > limit {
		return nil, fmt.Errorf("%w: message inflates past the %d-byte limit", ErrProtocol, limit)
	}
	f.out = out
	if cap(f.out) > 4<<20 {
		f.out = nil // a huge message passed; do not keep its buffer
	}
	if c.ext&extTakeover != 0 {
		f.keepWindow(c, out)
	}
	return out, nil
}

// keepWindow appends msg to c's window and trims it to the server's.
func (f *inflater) keepWindow(c *Conn, msg []byte) {
	size := 1 << c.windowBits
	w := f.windows[c]
	if len(msg) >= size {
		w = append(w[:0], msg[len(msg)-size:]...)
	} else {
		if drop := len(w) + len(msg) - size; drop > 0 {
			w = w[:copy(w, w[drop:])]
		}
		w = append(w, msg...)
	}
	if f.windows == nil {
		f.windows = map[*Conn][]byte{}
	}
	f.windows[c] = w
}

// forget drops what the inflater keeps for c.
func (f *inflater) forget(c *Conn) {
	if f.windows != nil {
		delete(f.windows, c)
	}
}
