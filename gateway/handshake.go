package gateway

import (
	"bytes"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/gobwas/httphead"
	"github.com/gobwas/ws"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/shardgate/shardgate/gateway/auth"
	"github.com/shardgate/shardgate/shard/pmce"
)

// Rejections answered from the upgrader hooks, and the metric result each
// one counts as.
var (
	errNotFound = ws.RejectConnectionError(ws.RejectionStatus(http.StatusNotFound),
		ws.RejectionReason("not found"))
	errForbiddenOrigin = ws.RejectConnectionError(ws.RejectionStatus(http.StatusForbidden),
		ws.RejectionReason("origin not allowed"))
	errUnauthorized = ws.RejectConnectionError(ws.RejectionStatus(http.StatusUnauthorized),
		ws.RejectionReason("missing, invalid or expired token"),
		ws.RejectionHeader(ws.HandshakeHeaderString("WWW-Authenticate: Bearer\r\n")))
	errOverCapacity = ws.RejectConnectionError(ws.RejectionStatus(http.StatusServiceUnavailable),
		ws.RejectionReason("over capacity"))
)

// Canned responses for requests gobwas/ws does not answer the way the
// spec wants.
var (
	// A GET on the WebSocket path without "Upgrade: websocket".
	responseUpgradeRequired = cannedResponse(http.StatusUpgradeRequired,
		"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n",
		"this endpoint speaks WebSocket only\n")
	// An address over -max-conns-per-ip.
	responseTooManyPerIP = cannedResponse(http.StatusTooManyRequests, "",
		"too many connections from this address\n")
	responseTooLarge = cannedResponse(http.StatusBadRequest, "", "request header too large\n")
	// A request line gobwas/ws cannot parse (it answers nothing itself).
	responseBadRequest = cannedResponse(http.StatusBadRequest, "", "malformed request\n")
)

func cannedResponse(code int, headers, body string) []byte {
	return fmt.Appendf(nil, "HTTP/1.1 %d %s\r\n%sContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
		code, http.StatusText(code), headers, len(body), body)
}

// handshaker runs WebSocket upgrades over complete, buffered request
// headers. It is used by the acceptor goroutine only: the upgrader's hooks
// are bound once and write into req, the state of the request at hand, so
// an upgrade allocates no closures.
type handshaker struct {
	path     string
	verifier *auth.Verifier     // nil: no auth
	origins  *auth.OriginPolicy // nil: any origin
	maxConns int64
	open     *atomic.Int64 // upgraded connections not yet released
	results  map[string]prometheus.Counter
	deflate  bool // accept permessage-deflate offers (-compression)

	up   ws.Upgrader
	req  requestState
	rd   bytes.Reader
	resp bytes.Buffer
}

type requestState struct {
	result    string
	token     string
	origin    []byte
	hasOrigin bool
	grants    *auth.Grants
	deflate   pmce.Params // the first permessage-deflate offer accepted, if any
}

type upgradeResult struct {
	result   string
	response []byte // valid until the next upgrade
	grants   *auth.Grants
	deflate  pmce.Params // permessage-deflate as answered in response; zero: none
}

func newHandshaker(path string, verifier *auth.Verifier, origins *auth.OriginPolicy, maxConns int64, open *atomic.Int64, upgrades *prometheus.CounterVec, deflate bool) *handshaker {
	h := &handshaker{
		path:     path,
		verifier: verifier,
		origins:  origins,
		maxConns: maxConns,
		open:     open,
		results:  make(map[string]prometheus.Counter),
		deflate:  deflate,
	}
	for _, r := range upgradeResults {
		h.results[r] = upgrades.WithLabelValues(r)
	}
	h.bindUpgrader()
	return h
}

// bindUpgrader binds the upgrader's hooks to h, once.
func (h *handshaker) bindUpgrader() {
	h.up = ws.Upgrader{
		ReadBufferSize:  maxHandshakeBytes,
		OnRequest:       h.onRequest,
		OnHeader:        h.onHeader,
		OnBeforeUpgrade: h.onBeforeUpgrade,
	}
	if h.deflate {
		// gobwas/ws hands Sec-WebSocket-Extensions to this hook rather
		// than to OnHeader. Its Negotiate hook would parse the offers
		// itself and fail the whole upgrade (400) on one it cannot parse;
		// this one sees the raw value, and an offer we cannot accept is
		// declined, never refused (SPEC).
		h.up.ExtensionCustom = h.onExtensions
	}
}

func (h *handshaker) count(result string) { h.results[result].Inc() }
func (h *handshaker) opened()             { h.open.Add(1) }
func (h *handshaker) released()           { h.open.Add(-1) }

// handshakeIO feeds the buffered request to the upgrader and collects its
// response, so the response leaves in one write.
type handshakeIO struct{ h *handshaker }

func (io handshakeIO) Read(p []byte) (int, error)  { return io.h.rd.Read(p) }
func (io handshakeIO) Write(p []byte) (int, error) { return io.h.resp.Write(p) }

// upgrade answers one request header (which ends with its blank line).
func (h *handshaker) upgrade(req []byte) upgradeResult {
	h.req = requestState{result: upgradeBadRequest, origin: h.req.origin[:0]}
	h.rd.Reset(req)
	h.resp.Reset()
	_, err := h.up.Upgrade(handshakeIO{h})
	switch {
	case err == nil:
		return upgradeResult{result: upgradeOK, response: h.resp.Bytes(), grants: h.req.grants, deflate: h.req.deflate}
	case err == ws.ErrHandshakeBadUpgrade,
		err == ws.ErrHandshakeBadConnection && !offersWebSocket(req):
		// gobwas answers a missing or foreign Upgrade header with 400; the
		// spec (and RFC 7231) want 426 telling the client to upgrade. A
		// plain GET with "Connection: keep-alive" (any browser) fails on
		// Connection before Upgrade is looked at; it is no less plain.
		return upgradeResult{result: upgradeBadRequest, response: responseUpgradeRequired}
	case h.resp.Len() == 0:
		// gobwas returns without answering a request line it cannot
		// parse; the spec wants 400 for every malformed request.
		return upgradeResult{result: upgradeBadRequest, response: responseBadRequest}
	default:
		return upgradeResult{result: h.req.result, response: h.resp.Bytes()}
	}
}

// offersWebSocket reports whether the request header has an Upgrade field
// naming websocket. Only used on the rejection path.
func offersWebSocket(req []byte) bool {
	for line := range bytes.SplitSeq(req, []byte("\r\n")) {
		k, v, ok := bytes.Cut(line, []byte(":"))
		if ok && bytes.EqualFold(bytes.TrimSpace(k), []byte("Upgrade")) &&
			bytes.Contains(bytes.ToLower(v), []byte("websocket")) {
			return true
		}
	}
	return false
}

func (h *handshaker) onRequest(uri []byte) error {
	path := uri
	if i := bytes.IndexByte(uri, '?'); i >= 0 {
		path = uri[:i]
	}
	if string(path) != h.path {
		return errNotFound
	}
	if h.verifier != nil {
		if tok, ok := auth.QueryToken(uri); ok {
			h.req.token = tok
		}
	}
	return nil
}

func (h *handshaker) onHeader(key, value []byte) error {
	switch {
	case h.origins != nil && bytes.EqualFold(key, []byte("Origin")):
		// value is valid only during this call: keep a copy.
		h.req.origin = append(h.req.origin[:0], value...)
		h.req.hasOrigin = true
	case h.verifier != nil && bytes.EqualFold(key, []byte("Authorization")):
		if tok, ok := auth.BearerToken(value); ok {
			h.req.token = tok
		}
	}
	return nil
}

// onExtensions reads one Sec-WebSocket-Extensions header value (a request
// may carry several, read in order): the first permessage-deflate offer
// that pmce.Accept takes, in the first value that has one, is the
// agreement. It never fails the upgrade, and adds nothing to what gobwas
// answers: the response line comes from onBeforeUpgrade.
func (h *handshaker) onExtensions(value []byte, opts []httphead.Option) ([]httphead.Option, bool) {
	if !h.req.deflate.On() {
		h.req.deflate, _ = pmce.Accept(value)
	}
	return opts, true
}

// deflateHeaders holds the Sec-WebSocket-Extensions response line for
// every agreement pmce.Accept can return, as handshake headers made once:
// an upgrade allocates nothing for it.
var deflateHeaders = func() (h [256]ws.HandshakeHeader) {
	for p := range h {
		if line := pmce.Params(p).Header(); line != "" {
			h[p] = ws.HandshakeHeaderString(line)
		}
	}
	return h
}()

// onBeforeUpgrade runs once the request is a well-formed WebSocket upgrade.
// Checks go from cheapest to dearest: origin, token, capacity.
func (h *handshaker) onBeforeUpgrade() (ws.HandshakeHeader, error) {
	if h.origins != nil && h.req.hasOrigin && !h.origins.Allowed(h.req.origin) {
		h.req.result = upgradeForbiddenOrigin
		return nil, errForbiddenOrigin
	}
	if h.verifier != nil {
		if h.req.token == "" {
			h.req.result = upgradeUnauthorized
			return nil, errUnauthorized
		}
		g, err := h.verifier.Verify(h.req.token, time.Now())
		if err != nil {
			h.req.result = upgradeUnauthorized
			return nil, errUnauthorized
		}
		h.req.grants = g
	}
	if h.open.Load() >= h.maxConns {
		h.req.result = upgradeOverCapacity
		return nil, errOverCapacity
	}
	if h.req.deflate.On() {
		return deflateHeaders[h.req.deflate], nil
	}
	return nil, nil
}

// clone returns a handshaker with the same policy and counters and state
// of its own, for a TLS handshake goroutine (the acceptor's handshaker
// belongs to the acceptor goroutine).
func (h *handshaker) clone() *handshaker {
	c := &handshaker{
		path:     h.path,
		verifier: h.verifier,
		origins:  h.origins,
		maxConns: h.maxConns,
		open:     h.open,
		results:  h.results, // read-only after newHandshaker
		deflate:  h.deflate,
	}
	c.bindUpgrader()
	return c
}
