package main

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/gobwas/httphead"
	"github.com/gobwas/ws"
	"github.com/shardgate/shardgate/shard"
	"github.com/shardgate/shardgate/shard/pmce"
	"golang.org/x/sys/unix"
)

// maxRequestBytes bounds an upgrade request's header, as the gateway does.
const maxRequestBytes = 8 << 10

// serverHeader names the server: the fuzzing client reports it as the
// agent under test.
var serverHeader = ws.HandshakeHeaderString("Server: shardgate-echo\r\n")

// serve upgrades one connection and hands its socket to s.
func serve(nc *net.TCPConn, s *shard.Shard, timeout time.Duration, log *slog.Logger) {
	defer nc.Close() // the shard owns a duplicate of the socket by then
	_ = nc.SetDeadline(time.Now().Add(timeout))
	req, rest, err := readRequest(nc)
	if err != nil {
		log.Debug("handshake", "remote", nc.RemoteAddr(), "err", err)
		return
	}
	resp, deflate, err := upgrade(req)
	if _, werr := nc.Write(resp); werr != nil || err != nil {
		log.Debug("handshake", "remote", nc.RemoteAddr(), "err", errors.Join(err, werr))
		return
	}
	fd, err := detach(nc)
	if err != nil {
		log.Warn("detach", "err", err)
		return
	}
	if err := s.Attach(fd, rest, nil, 0, deflate); err != nil {
		unix.Close(fd)
		log.Warn("attach", "err", err)
	}
}

// readRequest reads up to the blank line that ends the request header.
// rest is what the client sent behind it: WebSocket frames, which the
// shard decodes first.
func readRequest(nc net.Conn) (req, rest []byte, err error) {
	buf := make([]byte, 0, maxRequestBytes)
	for {
		n, err := nc.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if i := bytes.Index(buf, []byte("\r\n\r\n")); i >= 0 {
			return buf[:i+4], buf[i+4:], nil
		}
		if err != nil {
			return nil, nil, err
		}
		if len(buf) == cap(buf) {
			return nil, nil, fmt.Errorf("request header over %d bytes", maxRequestBytes)
		}
	}
}

// upgrade answers a complete request header: the 101 response, or a
// rejection (and an error). Any path is served. permessage-deflate is
// negotiated as the gateway does it (pmce.Accept: the first acceptable
// offer, answered with both no_context_takeover parameters; an offer it
// cannot accept is declined): deflate is the agreement, zero for none.
func upgrade(req []byte) (resp []byte, deflate pmce.Params, err error) {
	var out bytes.Buffer
	u := ws.Upgrader{
		Header: serverHeader,
		ExtensionCustom: func(value []byte, opts []httphead.Option) ([]httphead.Option, bool) {
			if !deflate.On() {
				deflate, _ = pmce.Accept(value)
			}
			return opts, true
		},
		OnBeforeUpgrade: func() (ws.HandshakeHeader, error) {
			if deflate.On() {
				return ws.HandshakeHeaderString(deflate.Header()), nil
			}
			return nil, nil
		},
	}
	_, err = u.Upgrade(handshakeIO{bytes.NewReader(req), &out})
	if err != nil {
		deflate = 0
		if out.Len() == 0 {
			out.WriteString("HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
		}
	}
	return out.Bytes(), deflate, err
}

// handshakeIO feeds the buffered request to the upgrader and collects its
// response, so the response leaves in one write.
type handshakeIO struct {
	req  *bytes.Reader
	resp *bytes.Buffer
}

func (h handshakeIO) Read(p []byte) (int, error)  { return h.req.Read(p) }
func (h handshakeIO) Write(p []byte) (int, error) { return h.resp.Write(p) }

// detach returns a non-blocking duplicate of nc's socket for the shard,
// which owns it from then on; nc is closed by the caller (Go's poller
// deregisters its own descriptor before closing it).
func detach(nc *net.TCPConn) (int, error) {
	raw, err := nc.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd := -1
	var dupErr error
	if err := raw.Control(func(s uintptr) {
		fd, dupErr = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0)
	}); err != nil {
		return -1, err
	}
	if dupErr != nil {
		return -1, dupErr
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}
