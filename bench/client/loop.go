package client

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Options configure a Loop. Zero fields take the defaults in brackets.
type Options struct {
	// Addr is the server's address.
	Addr netip.AddrPort
	// Host is the Host header [Addr].
	Host string
	// Path is the request target, query included ["/"].
	Path string
	// Header holds extra handshake headers (Authorization, Origin, ...).
	Header http.Header
	// HandshakeTimeout bounds connect plus upgrade [10s].
	HandshakeTimeout time.Duration
	// CloseTimeout bounds a closing handshake started by Conn.Close or by
	// the server [3s]; the socket is reset after it.
	CloseTimeout time.Duration
	// MaxMessageBytes bounds one server message, across fragments [1 MiB].
	MaxMessageBytes int
	// ReadBufferSize is the size of the one read buffer of the loop [64 KiB].
	ReadBufferSize int
	// Seed varies handshake keys and masks between loops [time based].
	Seed uint64
	// TLS, when not nil, makes every connection wss://: a TLS client
	// handshake with this configuration after connect, then the upgrade
	// over TLS (see tls.go). Set ServerName (SNI and the name checked in
	// the certificate) or InsecureSkipVerify. [nil: ws://]
	TLS *tls.Config
	// Compress offers permessage-deflate (RFC 7692) in every upgrade, as
	// browsers do; messages the server compresses are inflated before
	// OnMessage (see deflate.go). A server may decline: the connection is
	// then plain. [false: no offer]
	Compress bool
}

func (o *Options) setDefaults() {
	if o.Host == "" {
		o.Host = o.Addr.String()
	}
	if o.Path == "" {
		o.Path = "/"
	}
	if o.HandshakeTimeout <= 0 {
		o.HandshakeTimeout = 10 * time.Second
	}
	if o.CloseTimeout <= 0 {
		o.CloseTimeout = 3 * time.Second
	}
	if o.MaxMessageBytes <= 0 {
		o.MaxMessageBytes = 1 << 20
	}
	if o.ReadBufferSize <= 0 {
		o.ReadBufferSize = 64 << 10
	}
	if o.Seed == 0 {
		o.Seed = uint64(time.Now().UnixNano())
	}
}

// Handler receives the events of a loop's connections, on the loop
// goroutine.
type Handler interface {
	// OnOpen: the upgrade succeeded; the connection may Send.
	OnOpen(c *Conn)
	// OnMessage: one complete text or binary message. msg is valid only
	// until OnMessage returns.
	OnMessage(c *Conn, msg []byte)
	// OnClose: the connection is gone, once for every successful Dial.
	// err is nil after a closing handshake this side started, a
	// *CloseError after one the server started, and the failure otherwise
	// (see Reason).
	OnClose(c *Conn, err error)
}

// sweepEvery is how often deadlines of connecting and closing connections
// are checked: a sweep over the table instead of a timer per connection.
const sweepEvery = 100 * time.Millisecond

// connInterest is the one registration of a socket for its whole life.
const connInterest = unix.EPOLLIN | unix.EPOLLOUT | unix.EPOLLRDHUP | unix.EPOLLET

// Loop drives connections from one goroutine (see the package doc).
type Loop struct {
	opts Options
	h    Handler
	req  requestTemplate
	// reqs are the templates of other Hosts (DialOptions.Host), by
	// Conn.reqIdx-1.
	reqs     []requestTemplate
	reqHosts []string
	base     time.Time // loop clock zero

	epfd   int
	wakefd int
	events []unix.EpollEvent

	// Shared with other goroutines.
	mu      sync.Mutex
	queue   []func()
	tlsDone []tlsResult // finished TLS handshakes, for the loop to take back
	closed  bool        // Run has returned; Do refuses work
	pending atomic.Bool

	// Loop goroutine only.
	conns      []*Conn // by fd
	live       int     // connections not closed
	waiting    int     // connections with a deadline (connecting, handshaking, closing)
	gen        uint32
	maskState  uint64
	rbuf       []byte
	wbuf       []byte
	timers     timerHeap
	timerSeq   uint64
	sweepArmed bool
	stopping   bool
	onDrained  func()               // Shutdown's done, called when live reaches 0
	tlsState   *tls.ConnectionState // the first TLS handshake's, for reports
	inf        inflater             // permessage-deflate (Options.Compress)
	deflate    *Deflate             // the first accepted offer's answer, for reports
	counters   Counters
}

// Counters are a loop's running totals since New, for a caller measuring
// what crossed the wire: take them at two moments and subtract.
type Counters struct {
	// BytesRead is what the loop read from its sockets: handshake
	// responses and whole frames, headers included. Over wss:// it counts
	// the WebSocket bytes the TLS records carried, not the records.
	BytesRead int64 `json:"bytes_read"`
	// Messages counts the data messages handed to OnMessage; Compressed
	// those of them that arrived compressed; MessageBytes their sizes as
	// handed over (after inflation).
	Messages     int64 `json:"messages"`
	Compressed   int64 `json:"compressed"`
	MessageBytes int64 `json:"message_bytes"`
	// Inflated counts the inflations the loop ran: Compressed less the
	// repeats it remembered (see deflate.go).
	Inflated int64 `json:"inflated"`
	// Deflate and Plain count upgrades that negotiated permessage-deflate
	// and upgrades that did not (with Options.Compress: the server
	// declined the offer).
	Deflate int64 `json:"deflate"`
	Plain   int64 `json:"plain"`
}

// Sub returns c less o, field by field.
func (c Counters) Sub(o Counters) Counters {
	return Counters{
		BytesRead: c.BytesRead - o.BytesRead, Messages: c.Messages - o.Messages,
		Compressed: c.Compressed - o.Compressed, MessageBytes: c.MessageBytes - o.MessageBytes,
		Inflated: c.Inflated - o.Inflated, Deflate: c.Deflate - o.Deflate, Plain: c.Plain - o.Plain,
	}
}

// Add returns c plus o, field by field.
func (c Counters) Add(o Counters) Counters {
	return Counters{
		BytesRead: c.BytesRead + o.BytesRead, Messages: c.Messages + o.Messages,
		Compressed: c.Compressed + o.Compressed, MessageBytes: c.MessageBytes + o.MessageBytes,
		Inflated: c.Inflated + o.Inflated, Deflate: c.Deflate + o.Deflate, Plain: c.Plain + o.Plain,
	}
}

// New creates a loop. Run must then be called on a goroutine of its own.
func New(opts Options, h Handler) (*Loop, error) {
	opts.setDefaults()
	if !opts.Addr.IsValid() {
		return nil, errors.New("client: Options.Addr is not set")
	}
	if opts.Compress {
		opts.Header = opts.Header.Clone()
		if opts.Header == nil {
			opts.Header = http.Header{}
		}
		opts.Header.Set("Sec-WebSocket-Extensions", DeflateOffer)
	}
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("epoll_create1", err)
	}
	wakefd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		unix.Close(epfd)
		return nil, os.NewSyscallError("eventfd", err)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(wakefd)}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wakefd, &ev); err != nil {
		unix.Close(wakefd)
		unix.Close(epfd)
		return nil, os.NewSyscallError("epoll_ctl", err)
	}
	return &Loop{
		opts:      opts,
		h:         h,
		req:       newRequestTemplate(opts.Host, opts.Path, opts.Header),
		base:      time.Now(),
		epfd:      epfd,
		wakefd:    wakefd,
		events:    make([]unix.EpollEvent, 512),
		maskState: splitmix64(opts.Seed),
		rbuf:      make([]byte, opts.ReadBufferSize),
	}, nil
}

// Counters returns the loop's running totals. Loop goroutine only.
func (l *Loop) Counters() Counters {
	c := l.counters
	c.Inflated = l.inf.runs
	return c
}

// DeflateAnswer is the server's answer to the first permessage-deflate
// offer it accepted, or nil while none has been (or without
// Options.Compress). Loop goroutine only.
func (l *Loop) DeflateAnswer() *Deflate { return l.deflate }

// Now is the loop clock: time since New, monotonic.
func (l *Loop) Now() time.Duration { return time.Since(l.base) }

func (l *Loop) now() int64 { return int64(time.Since(l.base)) }

// Live is the number of connections not closed yet. Loop goroutine only.
func (l *Loop) Live() int { return l.live }

// Do runs fn on the loop goroutine. It is safe from any goroutine and
// returns false, dropping fn, once Run has returned.
func (l *Loop) Do(fn func()) bool {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return false
	}
	l.queue = append(l.queue, fn)
	wake := l.pending.CompareAndSwap(false, true)
	l.mu.Unlock()
	if wake {
		l.wake()
	}
	return true
}

// wake makes epoll_wait return to run the queue. Any goroutine.
func (l *Loop) wake() {
	var one = [8]byte{1}
	for {
		if _, err := unix.Write(l.wakefd, one[:]); err != unix.EINTR {
			break // EAGAIN: the counter is full, a wake-up is pending anyway
		}
	}
}

// Stop makes Run close every socket (without calling the Handler) and
// return. Safe from any goroutine; for a graceful end, Shutdown first.
func (l *Loop) Stop() { l.Do(func() { l.stopping = true }) }

// After runs fn on the loop goroutine once d has passed. Loop goroutine
// only; there is no cancel: fn checks whether it still has work.
func (l *Loop) After(d time.Duration, fn func()) {
	l.timerSeq++
	l.timers.add(timer{at: l.now() + int64(d), seq: l.timerSeq, fn: fn})
}

// Run waits for and handles events until Stop. It returns nil after Stop,
// or the error of epoll_wait.
func (l *Loop) Run() error {
	defer l.close()
	for !l.stopping {
		n, err := unix.EpollWait(l.epfd, l.events, l.waitMillis())
		if err != nil {
			if err == unix.EINTR {
				continue
			}
			return os.NewSyscallError("epoll_wait", err)
		}
		for _, ev := range l.events[:n] {
			fd := int(ev.Fd)
			if fd == l.wakefd {
				l.runQueue()
				continue
			}
			if fd >= len(l.conns) {
				continue
			}
			// A connection closed earlier in this batch may have had its fd
			// reused by a new one: the generation tells them apart.
			if c := l.conns[fd]; c != nil && c.gen == uint32(ev.Pad) {
				l.onEvent(c, ev.Events)
			}
		}
		l.runTimers()
	}
	return nil
}

// waitMillis is the epoll_wait timeout: until the next timer, or forever.
func (l *Loop) waitMillis() int {
	if len(l.timers) == 0 {
		return -1
	}
	d := l.timers[0].at - l.now()
	if d <= 0 {
		return 0
	}
	return int((d + int64(time.Millisecond) - 1) / int64(time.Millisecond))
}

func (l *Loop) runQueue() {
	var buf [8]byte
	for {
		if _, err := unix.Read(l.wakefd, buf[:]); err != unix.EINTR {
			break
		}
	}
	l.mu.Lock()
	q, done := l.queue, l.tlsDone
	l.queue, l.tlsDone = nil, nil
	l.pending.Store(false)
	l.mu.Unlock()
	for i := range done {
		l.onTLS(done[i])
		done[i] = tlsResult{}
	}
	for i, fn := range q {
		fn()
		q[i] = nil
	}
}

func (l *Loop) runTimers() {
	now := l.now()
	for !l.stopping {
		t, ok := l.timers.popDue(now)
		if !ok {
			return
		}
		t.fn()
	}
}

// close releases every socket and the loop's own descriptors.
func (l *Loop) close() {
	// Once closed is set, a TLS handshake goroutine closes its fd itself
	// (handOver): shut those sockets down before, while their numbers
	// cannot have been reused.
	for fd, c := range l.conns {
		if c != nil && c.tlsPending {
			unix.Shutdown(fd, unix.SHUT_RDWR)
		}
	}
	l.mu.Lock()
	l.closed = true
	l.queue = nil
	done := l.tlsDone
	l.tlsDone = nil
	l.mu.Unlock()
	for _, r := range done {
		if l.conns[r.c.fd] == r.c {
			l.conns[r.c.fd] = nil
		}
		r.c.tlsPending = false
		r.c.state = stateClosed
		r.release()
	}
	for fd, c := range l.conns {
		if c == nil {
			continue
		}
		if !c.tlsPending {
			unix.Close(fd)
			if c.tls != nil {
				c.tls.Release()
			}
		}
		c.state = stateClosed
	}
	l.conns = nil
	l.live = 0
	unix.Close(l.wakefd)
	unix.Close(l.epfd)
}

// Dial starts a connection from source address src (the zero Addr lets the
// kernel choose). OnOpen or OnClose follows, unless Dial returns an error:
// then there is no connection and no callback. Loop goroutine only.
func (l *Loop) Dial(src netip.Addr) (*Conn, error) { return l.DialWith(src, DialOptions{}) }

// DialWith is Dial with settings of this connection's own (see
// DialOptions). Loop goroutine only.
func (l *Loop) DialWith(src netip.Addr, o DialOptions) (*Conn, error) {
	if l.stopping {
		return nil, ErrStopped
	}
	dst := l.opts.Addr
	var reqIdx uint16
	if o.Addr.IsValid() {
		dst = o.Addr
		host := o.Host
		if host == "" {
			host = o.Addr.String()
		}
		if host != l.opts.Host {
			reqIdx = l.templateFor(host)
		}
	}
	fd, err := dialSocket(dst, src, o.RecvBuffer)
	if err != nil {
		return nil, err
	}
	l.gen++
	c := &Conn{loop: l, fd: fd, gen: l.gen, state: stateConnecting, reqIdx: reqIdx}
	c.dialed = l.now()
	timeout := l.opts.HandshakeTimeout
	if o.Timeout > 0 {
		timeout = o.Timeout
	}
	c.deadline = c.dialed + int64(timeout)
	if o.Request != nil {
		c.ownRequest = true
		c.out = append([]byte(nil), o.Request...)
	}
	ev := unix.EpollEvent{Events: connInterest, Fd: int32(fd), Pad: int32(c.gen)}
	if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		unix.Close(fd)
		return nil, &DialError{Op: "epoll_ctl", Err: os.NewSyscallError("epoll_ctl", err)}
	}
	for fd >= len(l.conns) {
		l.conns = append(l.conns, make([]*Conn, len(l.conns)+64)...)
	}
	l.conns[fd] = c
	l.live++
	l.waiting++
	l.armSweep()
	return c, nil
}

// templateFor returns the index (from 1) of host's request template,
// making it the first time.
func (l *Loop) templateFor(host string) uint16 {
	for i, h := range l.reqHosts {
		if h == host {
			return uint16(i + 1)
		}
	}
	l.reqHosts = append(l.reqHosts, host)
	l.reqs = append(l.reqs, newRequestTemplate(host, l.opts.Path, l.opts.Header))
	return uint16(len(l.reqs))
}

// request is the upgrade request template of c.
func (l *Loop) request(c *Conn) *requestTemplate {
	if c.reqIdx == 0 {
		return &l.req
	}
	return &l.reqs[c.reqIdx-1]
}

// Shutdown starts the closing handshake on every open connection, drops
// those still connecting, and calls done once every connection is gone;
// connections that have not finished closing after timeout are reset.
// Loop goroutine only.
func (l *Loop) Shutdown(timeout time.Duration, done func()) {
	l.onDrained = done
	deadline := l.now() + int64(timeout)
	for _, c := range l.conns {
		if c == nil {
			continue
		}
		c.Close()
		if c.state == stateClosing && c.deadline > deadline {
			c.deadline = deadline
		}
	}
	l.checkDrained()
}

func (l *Loop) checkDrained() {
	if l.live == 0 && l.onDrained != nil {
		done := l.onDrained
		l.onDrained = nil
		done()
	}
}

func (l *Loop) armSweep() {
	if l.sweepArmed || l.waiting == 0 {
		return
	}
	l.sweepArmed = true
	l.After(sweepEvery, l.sweep)
}

// sweep ends connections whose connect, upgrade or close took too long.
func (l *Loop) sweep() {
	l.sweepArmed = false
	now := l.now()
	for _, c := range l.conns {
		if c == nil || c.deadline == 0 || now < c.deadline {
			continue
		}
		if c.state == stateClosing {
			l.finish(c, ErrCloseTimeout, true)
		} else {
			l.finish(c, ErrHandshakeTimeout, true)
		}
	}
	l.armSweep()
}

func (l *Loop) onEvent(c *Conn, ev uint32) {
	if c.state == stateConnecting {
		if ev&(unix.EPOLLOUT|unix.EPOLLERR|unix.EPOLLHUP) == 0 {
			return
		}
		// Writable without an error condition means connected; only a
		// failure costs the getsockopt that says why.
		if ev&(unix.EPOLLERR|unix.EPOLLHUP) != 0 {
			errno, err := unix.GetsockoptInt(c.fd, unix.SOL_SOCKET, unix.SO_ERROR)
			if err == nil {
				err = unix.Errno(errno)
				if errno == 0 {
					err = unix.ECONNRESET
				}
			}
			l.finish(c, &DialError{Op: "connect", Err: os.NewSyscallError("connect", err)}, true)
			return
		}
		if l.opts.TLS != nil {
			l.startTLS(c)
			return
		}
		c.state = stateHandshaking
		if c.ownRequest {
			l.flush(c) // DialOptions.Request, queued at Dial
			return
		}
		key := handshakeKey(l.opts.Seed ^ uint64(c.gen))
		l.wbuf = l.request(c).appendRequest(l.wbuf[:0], &key)
		l.write(c, l.wbuf)
		return // the answer cannot be here before the request
	}
	if c.state == stateTLS {
		return // the handshake goroutine has the socket
	}
	if ev&unix.EPOLLOUT != 0 && (len(c.out) > 0 || c.tls != nil && c.tls.Buffered() > 0) {
		l.flush(c)
	}
	if c.paused {
		return // ResumeReading reads what came meanwhile
	}
	if ev&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		l.readAll(c, ev&(unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0)
	}
}

// readAll reads until the socket is drained. Registrations are
// edge-triggered: a read shorter than the buffer proves it empty, unless
// the peer has hung up, when reading on finds the end of the stream.
func (l *Loop) readAll(c *Conn, hup bool) {
	if c.tls != nil {
		l.readTLS(c)
		return
	}
	for c.state != stateClosed {
		n, err := unix.Read(c.fd, l.rbuf)
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			return
		case err != nil:
			l.finish(c, &DialError{Op: "read", Err: os.NewSyscallError("read", err)}, true)
			return
		case n == 0:
			l.onEOF(c)
			return
		}
		l.counters.BytesRead += int64(n)
		l.input(c, l.rbuf[:n])
		if n < len(l.rbuf) && !hup {
			return
		}
	}
}

func (l *Loop) onEOF(c *Conn) {
	switch {
	case c.state == stateClosing && c.gotClose:
		l.finish(c, c.closeErr, false)
	case c.state == stateHandshaking || c.state == stateTLS || c.state == stateConnecting:
		l.finish(c, &HandshakeError{Detail: "connection closed before the response"}, false)
	default:
		l.finish(c, ErrEOF, false)
	}
}

// input handles bytes read from c: the handshake response, then frames.
func (l *Loop) input(c *Conn, data []byte) {
	if c.state == stateHandshaking {
		buf := data
		if len(c.in) > 0 {
			c.in = append(c.in, data...)
			buf = c.in
		}
		key := handshakeKey(l.opts.Seed ^ uint64(c.gen))
		n, exts, err := parseResponse(buf, &key)
		if err == errIncomplete {
			if len(c.in) == 0 {
				c.in = append([]byte(nil), data...)
			}
			return
		}
		if err == nil {
			err = l.negotiated(c, exts)
		}
		if err != nil {
			l.finish(c, err, true)
			return
		}
		data = buf[n:]
		c.in = nil
		c.state = stateOpen
		c.deadline = 0
		c.opened = l.now()
		l.waiting--
		l.h.OnOpen(c)
		if len(data) == 0 {
			return
		}
	}
	l.frames(c, data)
}

// frames handles the complete frames in c's kept input plus data, and keeps
// the incomplete rest.
func (l *Loop) frames(c *Conn, data []byte) {
	buf := data
	kept := len(c.in) > 0
	if kept {
		c.in = append(c.in, data...)
		buf = c.in
	}
	for c.state == stateOpen || c.state == stateClosing {
		h, hn, err := parseFrameHeader(buf, l.opts.MaxMessageBytes, c.ext&extDeflate != 0)
		if err != nil {
			l.protocolError(c, err)
			return
		}
		if hn == 0 || len(buf) < hn+h.length {
			break
		}
		payload := buf[hn : hn+h.length]
		buf = buf[hn+h.length:]
		l.frame(c, h, payload)
	}
	if c.state == stateClosed {
		return
	}
	switch {
	case len(buf) == 0 && cap(c.in) > 4<<10:
		c.in = nil // a large message passed; do not keep its buffer
	case len(buf) == 0:
		c.in = c.in[:0]
	case kept: // buf is the tail of c.in
		c.in = c.in[:copy(c.in, buf)]
	default:
		c.in = append(c.in[:0], buf...)
	}
}

func (l *Loop) frame(c *Conn, h frameHeader, payload []byte) {
	switch h.op {
	case OpText, OpBinary:
		if c.fragOp != OpContinuation {
			l.protocolError(c, fmt.Errorf("%w: data frame inside a fragmented message", ErrProtocol))
			return
		}
		if c.gotClose {
			return // nothing counts after the server's close frame
		}
		if h.fin {
			l.message(c, payload, h.rsv1)
			return
		}
		c.fragOp = h.op
		if h.rsv1 {
			c.ext |= extFragFlate
		}
		c.frag = append(c.frag[:0], payload...)
	case OpContinuation:
		if c.fragOp == OpContinuation {
			l.protocolError(c, fmt.Errorf("%w: continuation frame without a message", ErrProtocol))
			return
		}
		if len(c.frag)+len(payload) > l.opts.MaxMessageBytes {
			l.protocolError(c, fmt.Errorf("%w: fragmented message over %d bytes", ErrProtocol, l.opts.MaxMessageBytes))
			return
		}
		c.frag = append(c.frag, payload...)
		if h.fin {
			msg, compressed := c.frag, c.ext&extFragFlate != 0
			c.frag, c.fragOp = nil, OpContinuation
			c.ext &^= extFragFlate
			if !c.gotClose {
				l.message(c, msg, compressed)
			}
		}
	case OpPing:
		if c.state == stateOpen {
			l.sendFrame(c, OpPong, payload)
		}
	case OpPong:
	case OpClose:
		if c.gotClose {
			return
		}
		c.gotClose = true
		if c.state == stateOpen {
			// The server started closing: answer with its code, then wait
			// for it to close TCP, so the TIME_WAIT is on its side and
			// not on this side's ports.
			code, reason := parseClosePayload(payload)
			c.closeErr = &CloseError{Code: code, Reason: reason}
			var answer []byte
			if code != StatusNoStatus {
				answer = appendClosePayload(nil, code, "")
			}
			l.sendFrame(c, OpClose, answer)
			l.startClosing(c, l.opts.CloseTimeout)
		}
	}
}

// message hands one complete data message of c to the handler, inflated
// first when it arrived compressed.
func (l *Loop) message(c *Conn, msg []byte, compressed bool) {
	if compressed {
		var err error
		if msg, err = l.inf.inflate(c, msg, l.opts.MaxMessageBytes); err != nil {
			l.protocolError(c, err)
			return
		}
		l.counters.Compressed++
	}
	l.counters.Messages++
	l.counters.MessageBytes += int64(len(msg))
	l.h.OnMessage(c, msg)
}

// negotiated settles c's extensions from the Sec-WebSocket-Extensions
// values of its 101 answer: an answer to an offer never made, or one this
// side cannot take, fails the connection.
func (l *Loop) negotiated(c *Conn, exts [][]byte) error {
	if !l.opts.Compress {
		if len(exts) > 0 {
			return &HandshakeError{Status: 101, Detail: fmt.Sprintf("Sec-WebSocket-Extensions %q answers no offer", exts[0])}
		}
		return nil
	}
	d, ok, err := parseExtensions(exts)
	if err != nil {
		return err
	}
	if !ok {
		l.counters.Plain++
		return nil
	}
	l.counters.Deflate++
	c.ext |= extDeflate
	if !d.ServerNoContextTakeover {
		c.ext |= extTakeover
		c.windowBits = uint8(d.ServerMaxWindowBits)
	}
	if l.deflate == nil {
		l.deflate = &d
	}
	return nil
}

func (l *Loop) protocolError(c *Conn, err error) {
	if c.state == stateOpen {
		l.sendFrame(c, OpClose, appendClosePayload(nil, StatusProtocolError, ""))
	}
	l.finish(c, err, true)
}

func (l *Loop) startClosing(c *Conn, timeout time.Duration) {
	if c.state != stateOpen {
		return
	}
	c.state = stateClosing
	c.deadline = l.now() + int64(timeout)
	l.waiting++
	l.armSweep()
}

// nextMask returns a masking key (xorshift: masks need no secrecy here).
func (l *Loop) nextMask() uint32 {
	x := l.maskState
	x ^= x << 13
	x ^= x >> 7
	x ^= x << 17
	l.maskState = x
	return uint32(x)
}

func (l *Loop) sendFrame(c *Conn, op OpCode, payload []byte) {
	l.wbuf = appendMaskedFrame(l.wbuf[:0], op, payload, l.nextMask())
	l.write(c, l.wbuf)
}

// write sends b now if nothing is queued before it, and queues the rest.
func (l *Loop) write(c *Conn, b []byte) {
	if len(c.out) > 0 {
		c.out = append(c.out, b...)
		return
	}
	n, ok := l.writeSome(c, b)
	if ok && n < len(b) {
		c.out = append(c.out, b[n:]...)
	}
}

func (l *Loop) flush(c *Conn) {
	n, ok := l.writeSome(c, c.out)
	if !ok {
		return
	}
	rest := copy(c.out, c.out[n:])
	c.out = c.out[:rest]
	if rest == 0 && cap(c.out) > 4<<10 {
		c.out = nil
	}
}

// writeSome writes as much of b as the socket takes. ok is false when the
// write failed and c was closed.
func (l *Loop) writeSome(c *Conn, b []byte) (n int, ok bool) {
	if c.tls != nil {
		return l.writeTLS(c, b)
	}
	for n < len(b) {
		m, err := unix.Write(c.fd, b[n:])
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			return n, true
		case err != nil:
			l.finish(c, &DialError{Op: "write", Err: os.NewSyscallError("write", err)}, true)
			return n, false
		}
		n += m
	}
	return n, true
}

// finish closes c's socket and reports err to the handler. reset sends an
// RST instead of a FIN, which leaves no TIME_WAIT behind on this side: it
// is for connections that failed, not for orderly closes.
func (l *Loop) finish(c *Conn, err error, reset bool) {
	if c.state == stateClosed {
		return
	}
	if c.state != stateOpen {
		l.waiting--
	}
	if reset {
		_ = unix.SetsockoptLinger(c.fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0})
	}
	if c.tlsPending {
		// The handshake goroutine holds fd and closes it when it returns
		// (onTLS); the shutdown makes that soon. Until then the open fd
		// keeps its number from being reused.
		unix.Shutdown(c.fd, unix.SHUT_RDWR)
	} else {
		unix.Close(c.fd) // also removes it from the epoll set
	}
	if c.tls != nil {
		c.tls.Release()
		c.tls = nil
	}
	l.conns[c.fd] = nil
	c.state = stateClosed
	c.in, c.frag, c.out = nil, nil, nil
	if c.ext&extTakeover != 0 {
		l.inf.forget(c)
	}
	l.live--
	l.h.OnClose(c, err)
	l.checkDrained()
}
