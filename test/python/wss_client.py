"""A wss:// client built on Python's standard library only (ssl, socket).

It trusts the CA in CA_FILE (no other root), opens WSS_URL offering ALPN
http/1.1, performs the WebSocket upgrade by hand, subscribes to
"python-tls", publishes to it, reads the ack and its own message, pings,
and closes with 1000. Frames are written and read by hand: this is a test
client, and a second implementation of the framing that owes nothing to
the gateway's or gobwas/ws's.

It prints one JSON line, {"ok": true, ...} (exit 0) or {"ok": false,
"error": ...} (exit 1). test/clients (tls_python_test.go) runs it.
"""

import base64
import hashlib
import json
import os
import socket
import ssl
import struct
import sys
import urllib.parse

CHANNEL = "python-tls"
TIMEOUT = 10.0
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


class Failure(Exception):
    pass


class Conn:
    """A TLS socket with a read buffer: WebSocket frames over it."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def read_exactly(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise Failure("connection closed with %d of %d bytes read" % (len(self.buf), n))
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_until(self, marker, limit=16384):
        while marker not in self.buf:
            if len(self.buf) > limit:
                raise Failure("no %r within %d bytes: %r" % (marker, limit, self.buf[:200]))
            chunk = self.sock.recv(65536)
            if not chunk:
                raise Failure("connection closed before %r: %r" % (marker, self.buf))
            self.buf += chunk
        i = self.buf.index(marker) + len(marker)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def send_frame(self, opcode, payload):
        # Client frames are masked (RFC 6455 section 5.3).
        head = bytes([0x80 | opcode])
        n = len(payload)
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 1 << 16:
            head += bytes([0x80 | 126]) + struct.pack("!H", n)
        else:
            head += bytes([0x80 | 127]) + struct.pack("!Q", n)
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(head + mask + masked)

    def read_frame(self):
        b0, b1 = self.read_exactly(2)
        fin, rsv, opcode = b0 & 0x80, b0 & 0x70, b0 & 0x0F
        if rsv:
            raise Failure("server frame with reserved bits 0x%x" % rsv)
        if b1 & 0x80:
            raise Failure("server frame is masked")
        n = b1 & 0x7F
        if n == 126:
            (n,) = struct.unpack("!H", self.read_exactly(2))
        elif n == 127:
            (n,) = struct.unpack("!Q", self.read_exactly(8))
        return bool(fin), opcode, self.read_exactly(n)

    def read_message(self):
        """The next text message as JSON; answers pings, reassembles fragments."""
        parts = []
        while True:
            fin, opcode, payload = self.read_frame()
            if opcode == OP_PING:
                self.send_frame(OP_PONG, payload)
                continue
            if opcode == OP_PONG:
                return {"type": "<pong>", "data": payload.decode("utf-8", "replace")}
            if opcode == OP_CLOSE:
                raise Failure("close frame %r while waiting for a message" % payload)
            if opcode not in (OP_TEXT, OP_CONT):
                raise Failure("unexpected opcode 0x%x" % opcode)
            parts.append(payload)
            if fin:
                return json.loads(b"".join(parts).decode("utf-8"))


def send_json(conn, obj):
    conn.send_frame(OP_TEXT, json.dumps(obj, separators=(",", ":")).encode("utf-8"))


def run(result):
    url = urllib.parse.urlsplit(os.environ["WSS_URL"])
    if url.scheme != "wss":
        raise Failure("WSS_URL %r is not wss://" % os.environ["WSS_URL"])
    host, port = url.hostname, url.port or 443
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=os.environ["CA_FILE"])
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_alpn_protocols(["http/1.1"])
    raw = socket.create_connection((host, port), timeout=TIMEOUT)
    sock = ctx.wrap_socket(raw, server_hostname=host)
    sock.settimeout(TIMEOUT)
    peer = sock.getpeercert()
    result["tls"] = {
        "version": sock.version(),
        "alpn": sock.selected_alpn_protocol() or "",
        "serial": peer.get("serialNumber", "") if peer else "",
    }
    result["steps"].append("tls")
    conn = Conn(sock)

    key = base64.b64encode(os.urandom(16))
    path = url.path or "/"
    request = (
        "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % (path, host, port, key.decode())
    )
    sock.sendall(request.encode("ascii"))
    head = conn.read_until(b"\r\n\r\n").decode("iso-8859-1")
    lines = head.split("\r\n")
    if not lines[0].startswith("HTTP/1.1 101"):
        raise Failure("upgrade answered %r" % lines[0])
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    want = base64.b64encode(hashlib.sha1(key + GUID).digest()).decode()
    if headers.get("sec-websocket-accept") != want:
        raise Failure("Sec-WebSocket-Accept %r, want %r" % (headers.get("sec-websocket-accept"), want))
    result["steps"].append("upgraded")

    send_json(conn, {"type": "subscribe", "channel": CHANNEL, "id": "py1"})
    m = conn.read_message()
    if m != {"type": "subscribed", "channel": CHANNEL, "id": "py1"}:
        raise Failure("subscribe answered %r" % m)
    result["steps"].append("subscribed")

    data = {"from": "python", "text": "h\u00e9llo"}
    send_json(conn, {"type": "publish", "channel": CHANNEL, "data": data, "id": "py2"})
    ack = own = None
    while ack is None or own is None:
        m = conn.read_message()
        if m.get("type") == "published" and ack is None:
            ack = m
        elif m.get("type") == "message" and own is None:
            own = m
        else:
            raise Failure("unexpected %r while waiting for the ack and own message" % m)
    result["published"] = ack
    result["own_message"] = own
    result["steps"].append("published")

    conn.send_frame(OP_PING, b"py-ping")
    m = conn.read_message()
    if m != {"type": "<pong>", "data": "py-ping"}:
        raise Failure("ping answered %r" % m)
    result["steps"].append("pong")

    conn.send_frame(OP_CLOSE, struct.pack("!H", 1000) + b"done")
    while True:
        _, opcode, payload = conn.read_frame()
        if opcode == OP_CLOSE:
            break
    code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
    result["close"] = {"code": code}
    if code != 1000:
        raise Failure("close answered with %d %r" % (code, payload[2:]))
    # The server closes the TCP connection after its close frame.
    try:
        while sock.recv(4096):
            pass
    except (ssl.SSLError, OSError):
        pass  # no close_notify before the TCP close is fine here
    sock.close()
    result["steps"].append("closed")


def main():
    result = {"ok": False, "steps": [], "python": sys.version.split()[0], "openssl": ssl.OPENSSL_VERSION}
    try:
        run(result)
        result["ok"] = True
    except Exception as e:  # reported to the Go test, which fails with it
        result["error"] = "%s: %s" % (type(e).__name__, e)
    print(json.dumps(result), flush=True)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
