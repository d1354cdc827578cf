package tlsfd

import (
	"bytes"
	"crypto/tls"
	"reflect"
	"sync"
	"unsafe"
)

// A tls.Conn keeps the buffers its input went through: rawInput grows to
// the largest record read (up to 16 KiB and more), hand to the largest
// handshake message (a post-quantum ClientHello is 1.5 KiB), and input
// points into rawInput. crypto/tls never gives them back, which on an
// event loop means every idle connection carries its biggest input
// forever: about 3 KiB after the handshake alone, more than everything
// else an idle TLS connection holds but its keys. There is no API to drop
// them, so trim does it through the fields' offsets, and only when they
// are empty (equivalent to the zero values crypto/tls starts with). It
// reads nothing, changes no key and no state machine: the next record is
// read into a fresh buffer as on a new connection.
//
// If a Go release renames or retypes these fields, trimOffsets finds
// nothing and trim does nothing: connections still work, and
// TestTrimFindsTLSInputBuffers fails so we notice.

type trimFields struct {
	rawInput, input, hand uintptr
	ok                    bool
}

// trimOffsets locates the fields once per process; the result never
// changes.
var trimOffsets = sync.OnceValue(func() trimFields {
	t := reflect.TypeFor[tls.Conn]()
	field := func(name string, typ reflect.Type) (uintptr, bool) {
		f, ok := t.FieldByName(name)
		if !ok || f.Type != typ || len(f.Index) != 1 {
			return 0, false
		}
		return f.Offset, true
	}
	var tf trimFields
	var ok1, ok2, ok3 bool
	tf.rawInput, ok1 = field("rawInput", reflect.TypeFor[bytes.Buffer]())
	tf.input, ok2 = field("input", reflect.TypeFor[bytes.Reader]())
	tf.hand, ok3 = field("hand", reflect.TypeFor[bytes.Buffer]())
	tf.ok = ok1 && ok2 && ok3
	return tf
})

// trim drops tc's empty input buffers. The caller must be the only user
// of tc, between reads.
func trim(tc *tls.Conn) {
	tf := trimOffsets()
	if !tf.ok {
		return
	}
	base := unsafe.Pointer(tc)
	raw := (*bytes.Buffer)(unsafe.Add(base, tf.rawInput))
	in := (*bytes.Reader)(unsafe.Add(base, tf.input))
	hand := (*bytes.Buffer)(unsafe.Add(base, tf.hand))
	if in.Len() == 0 {
		*in = bytes.Reader{}
		if raw.Len() == 0 && raw.Cap() > 0 {
			*raw = bytes.Buffer{}
		}
	}
	if hand.Len() == 0 && hand.Cap() > 0 {
		*hand = bytes.Buffer{}
	}
}

// Trim gives back the buffers the TLS layer kept from earlier input, if
// it holds no unread input. The owner calls it once the socket has been
// read dry: an idle connection then holds its keys and little else.
func (c *Conn) Trim() { trim(c.tls) }
