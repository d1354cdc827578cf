package gateway

import (
	"crypto/subtle"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/shardgate/shardgate/gateway/broker/natsbroker"
	"github.com/shardgate/shardgate/gateway/history"
	"github.com/shardgate/shardgate/shard/protocol"
)

// adminHandler serves the admin listener: metrics, health, readiness, the
// publish and disconnect API and, with -pprof, the profiler. Every request
// passes these gates, in this order (SPEC "Admin API safety"):
//
//  1. Host (every path): when the listener is on a loopback address, a
//     request whose Host is not a loopback name or address gets 403. A
//     page on a rebound DNS name (evil.example resolving to 127.0.0.1)
//     reaches the socket with Host evil.example; without this gate it
//     could read /metrics or /debug/pprof/ as its own origin. Scrapers and
//     scripts that reach a loopback listener name a loopback address.
//  2. Origin (/api/ and /debug/pprof/): any Origin header gets 403, with or
//     without a valid token. Backends send none; browsers send one on every
//     POST and every cross-origin fetch or XHR, so no web page ever reaches
//     a handler that changes state, whatever credentials it holds.
//  3. Token (/api/ and /debug/pprof/): with -admin-token, 401 without
//     "Authorization: Bearer <token>".
//  4. Content type (POST to /api/): 415 unless application/json. A form or
//     a no-cors fetch can only send text/plain, form or multipart bodies
//     without a CORS preflight, which this listener never grants.
//
// /metrics, /healthz and /readyz pass only the first gate: scrapers and
// load balancers send neither tokens nor Origin.
func (g *Gateway) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(g.m.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", g.serveHealth)
	mux.HandleFunc("/readyz", g.serveReady)

	// Each guarded handler is wrapped where it is registered, not by a
	// path prefix test in front of the mux, so no spelling of a path
	// (escapes, dot segments, a missing slash) reaches it unguarded.
	api := func(h http.HandlerFunc) http.Handler { return refuseBrowsers(g.requireToken(requireJSON(h))) }
	mux.Handle("/api/", api(g.serveAPINotFound))
	mux.Handle("/api/publish", api(g.servePublish))
	mux.Handle("/api/disconnect", api(g.serveDisconnect))
	mux.Handle("/api/history", api(g.serveHistory))
	if g.cfg.Pprof {
		debug := func(h http.HandlerFunc) http.Handler { return refuseBrowsers(g.requireToken(h)) }
		mux.Handle("/debug/pprof/", debug(pprof.Index)) // and every named profile under it
		mux.Handle("/debug/pprof/cmdline", debug(pprof.Cmdline))
		mux.Handle("/debug/pprof/profile", debug(pprof.Profile))
		mux.Handle("/debug/pprof/symbol", debug(pprof.Symbol))
		mux.Handle("/debug/pprof/trace", debug(pprof.Trace))
	}
	return guardHost(mux, g.adminLn.Addr())
}

// newAdminServer returns the admin HTTP server on the bound admin
// listener; tlsCfg (from adminTLSConfig) is nil for plain HTTP.
func (g *Gateway) newAdminServer(tlsCfg *tls.Config) *http.Server {
	return &http.Server{
		Handler:           g.adminHandler(),
		TLSConfig:         tlsCfg,
		ReadHeaderTimeout: 10 * time.Second,
		// Failed TLS handshakes (scanners, plain HTTP to an HTTPS port)
		// are not worth more than a debug line.
		ErrorLog: slog.NewLogLogger(g.log.Handler(), slog.LevelDebug),
	}
}

// adminTLSConfig loads -admin-tls-cert and -admin-tls-key, or returns nil
// when they are not set. The pair is read once, at start, before anything
// is bound or started, so that a pair that does not load stops New with
// nothing to undo (rather than the node serving the admin API in plain
// HTTP).
func (g *Gateway) adminTLSConfig() (*tls.Config, error) {
	if g.cfg.AdminTLSCert == "" && g.cfg.AdminTLSKey == "" {
		return nil, nil
	}
	certPEM, err := os.ReadFile(g.cfg.AdminTLSCert)
	if err != nil {
		return nil, fmt.Errorf("gateway: -admin-tls-cert: %w", err)
	}
	keyPEM, err := os.ReadFile(g.cfg.AdminTLSKey)
	if err != nil {
		return nil, fmt.Errorf("gateway: -admin-tls-key: %w", err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("gateway: -admin-tls-cert %s / -admin-tls-key %s: %w", g.cfg.AdminTLSCert, g.cfg.AdminTLSKey, err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

// serveAdmin serves the admin API on the admin listener, over HTTPS when
// the server has a TLS configuration, until the server is shut down.
func (g *Gateway) serveAdmin() error {
	if g.admin.TLSConfig != nil {
		return g.admin.ServeTLS(g.adminLn, "", "") // the certificate is in TLSConfig
	}
	return g.admin.Serve(g.adminLn)
}

// serveHealth answers 200 while every event loop is alive; a stuck loop
// is a dead process to an orchestrator (503).
func (g *Gateway) serveHealth(w http.ResponseWriter, r *http.Request) {
	if why := g.stalled(time.Now()); why != "" {
		http.Error(w, why, http.StatusServiceUnavailable)
		return
	}
	io.WriteString(w, "ok\n")
}

func (g *Gateway) serveReady(w http.ResponseWriter, r *http.Request) {
	switch {
	case g.draining.Load():
		http.Error(w, "draining", http.StatusServiceUnavailable)
	case !g.broker.Connected():
		http.Error(w, "broker unavailable", http.StatusServiceUnavailable)
	default:
		io.WriteString(w, "ready\n")
	}
}

// guardHost refuses, with 403, requests whose Host is not a loopback name
// or address when the listener is on a loopback address (DNS rebinding).
// A listener on another address is reached under names the operator
// chose, which the gateway cannot know, so it checks nothing there.
func guardHost(next http.Handler, listener net.Addr) http.Handler {
	tcp, ok := listener.(*net.TCPAddr)
	if !ok || !tcp.IP.IsLoopback() {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !loopbackHost(r.Host) {
			writeAPIError(w, http.StatusForbidden, "Host must be a loopback name or address on a loopback listener")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// loopbackHost reports whether hostport (a Host header, with or without a
// port) names the loopback interface: localhost or a name under it
// (RFC 6761: no DNS server answers for them, so no attacker can point one
// elsewhere), an address in 127.0.0.0/8, or ::1. An empty Host (HTTP/1.0)
// is not one.
func loopbackHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	} else if strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]") {
		host = host[1 : len(host)-1]
	}
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Zone() == "" && ip.Unmap().IsLoopback()
}

// refuseBrowsers answers 403 to any request with an Origin header: only
// browsers send one, and no web page may drive the admin API.
func refuseBrowsers(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := r.Header["Origin"]; ok {
			writeAPIError(w, http.StatusForbidden, "requests with an Origin header (browsers) are refused")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// requireToken guards a handler with -admin-token when one is set.
func (g *Gateway) requireToken(next http.Handler) http.Handler {
	if g.cfg.AdminToken == "" {
		return next
	}
	want := []byte("Bearer " + g.cfg.AdminToken)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := []byte(r.Header.Get("Authorization"))
		if subtle.ConstantTimeCompare(got, want) != 1 {
			w.Header().Set("WWW-Authenticate", "Bearer")
			writeAPIError(w, http.StatusUnauthorized, "missing or wrong admin token")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// requireJSON answers 415 to a POST whose Content-Type is not
// application/json (parameters such as charset are allowed).
func requireJSON(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
			if err != nil || mt != "application/json" {
				w.Header().Set("Accept", "application/json") // RFC 9110 §15.5.16
				writeAPIError(w, http.StatusUnsupportedMediaType, "Content-Type must be application/json")
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

func (g *Gateway) serveAPINotFound(w http.ResponseWriter, r *http.Request) {
	writeAPIError(w, http.StatusNotFound, "no such endpoint")
}

// readAPIBody reads a POST body of at most -max-message-bytes. On failure
// it has answered (405, 413 or 400) and returns false.
func (g *Gateway) readAPIBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeAPIError(w, http.StatusMethodNotAllowed, "use POST")
		return nil, false
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, int64(g.cfg.MaxMessageBytes)))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeAPIError(w, http.StatusRequestEntityTooLarge, "body over -max-message-bytes")
			return nil, false
		}
		writeAPIError(w, http.StatusBadRequest, "reading body failed")
		return nil, false
	}
	return body, true
}

// publishRequest is the body of POST /api/publish. Channel is a pointer
// so that an absent channel (everyone) differs from an empty one (bad).
type publishRequest struct {
	Channel *string         `json:"channel"`
	Data    json.RawMessage `json:"data"`
}

func (g *Gateway) servePublish(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost && g.draining.Load() {
		writeAPIError(w, http.StatusServiceUnavailable, "draining")
		return
	}
	body, ok := g.readAPIBody(w, r)
	if !ok {
		return
	}
	var req publishRequest
	if err := json.Unmarshal(body, &req); err != nil {
		writeAPIError(w, http.StatusBadRequest, "invalid JSON: "+err.Error())
		return
	}
	if req.Data == nil {
		writeAPIError(w, http.StatusBadRequest, `missing "data"`)
		return
	}
	channel := ""
	if req.Channel != nil {
		channel = *req.Channel
		if !protocol.ValidChannel(channel) {
			writeAPIError(w, http.StatusBadRequest, "bad channel name: 1-128 bytes of A-Z a-z 0-9 . _ : @ -")
			return
		}
	}
	receipt, err := g.publishWait(channel, req.Data, sourceAPI)
	if err != nil {
		writeAPIError(w, http.StatusServiceUnavailable, strings.TrimPrefix(err.Error(), "gateway: "))
		return
	}
	if receipt.Epoch == "" {
		writeAPIOK(w) // no history, or a message to everyone: no offset
		return
	}
	writeAPIJSON(w, struct {
		OK     bool   `json:"ok"`
		Offset uint64 `json:"offset"`
		Epoch  string `json:"epoch"`
	}{true, receipt.Offset, receipt.Epoch})
}

// History pages of GET /api/history: 100 messages unless limit says
// otherwise, never more than maxHistoryPage, so that one request costs a
// bounded answer whatever -history-size is.
const (
	defaultHistoryPage = 100
	maxHistoryPage     = 1000
)

// historyMessage is one message of a /api/history answer.
type historyMessage struct {
	Offset uint64          `json:"offset"`
	Data   json.RawMessage `json:"data"`
}

// serveHistory answers GET /api/history?channel=news&limit=100 with the
// channel's latest messages, or with &since=N the first ones after offset
// N (excluded), in ascending order, with the epoch and the channel's
// latest offset. A client pages forward by passing the last offset it got
// as since.
func (g *Gateway) serveHistory(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		writeAPIError(w, http.StatusMethodNotAllowed, "use GET")
		return
	}
	if g.histSrc == nil {
		writeAPIError(w, http.StatusNotFound, "history is off on this node (-history-size 0)")
		return
	}
	q := r.URL.Query()
	channel := q.Get("channel")
	if !protocol.ValidChannel(channel) {
		writeAPIError(w, http.StatusBadRequest, "bad channel name: 1-128 bytes of A-Z a-z 0-9 . _ : @ -")
		return
	}
	limit := defaultHistoryPage
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxHistoryPage {
			writeAPIError(w, http.StatusBadRequest, fmt.Sprintf("limit must be an integer from 1 to %d", maxHistoryPage))
			return
		}
		limit = n
	}
	type answer struct {
		p   history.Page
		err error
	}
	out := make(chan answer, 1)
	done := func(p history.Page, err error) { out <- answer{p, err} }
	if v, ok := q["since"]; ok {
		since, err := strconv.ParseUint(v[0], 10, 64)
		if err != nil || len(v) > 1 {
			writeAPIError(w, http.StatusBadRequest, "since must be one offset, an integer from 0")
			return
		}
		g.histSrc.Since(channel, history.Position{Offset: since}, limit, done)
	} else {
		g.histSrc.Last(channel, limit, done)
	}
	a := <-out
	if a.err != nil {
		writeAPIError(w, http.StatusServiceUnavailable, a.err.Error())
		return
	}
	msgs := make([]historyMessage, len(a.p.Messages))
	for i, m := range a.p.Messages {
		msgs[i] = historyMessage{m.Offset, m.Data}
	}
	writeAPIJSON(w, struct {
		OK       bool             `json:"ok"`
		Epoch    string           `json:"epoch"`
		Offset   uint64           `json:"offset"`
		Messages []historyMessage `json:"messages"`
	}{true, a.p.Epoch, a.p.Latest, msgs})
}

// disconnectRequest is the body of POST /api/disconnect.
type disconnectRequest struct {
	Sub *string `json:"sub"`
}

// serveDisconnect closes, on every node, the connections whose token has
// the given sub (close 4003 "disconnected", counted as kicked). The answer
// means the broker took the request; the closes follow asynchronously.
// It is not refused while draining: the other nodes still serve the sub.
func (g *Gateway) serveDisconnect(w http.ResponseWriter, r *http.Request) {
	body, ok := g.readAPIBody(w, r)
	if !ok {
		return
	}
	var req disconnectRequest
	if err := json.Unmarshal(body, &req); err != nil {
		writeAPIError(w, http.StatusBadRequest, "invalid JSON: "+err.Error())
		return
	}
	switch {
	case req.Sub == nil || *req.Sub == "":
		writeAPIError(w, http.StatusBadRequest, `missing "sub"`)
		return
	case len(*req.Sub) > natsbroker.MaxSubBytes:
		// The same limit with every broker, so that a request valid on
		// one node is valid on all.
		writeAPIError(w, http.StatusBadRequest, fmt.Sprintf(`"sub" over %d bytes`, natsbroker.MaxSubBytes))
		return
	}
	if err := g.broker.Disconnect(*req.Sub); err != nil {
		writeAPIError(w, http.StatusServiceUnavailable, strings.TrimPrefix(err.Error(), "gateway: "))
		return
	}
	writeAPIOK(w)
}

func writeAPIOK(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json")
	io.WriteString(w, `{"ok":true}`+"\n")
}

// writeAPIJSON answers 200 with v as JSON.
func writeAPIJSON(w http.ResponseWriter, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeAPIError(w, http.StatusInternalServerError, "encoding the answer failed")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(append(b, '\n'))
}

func writeAPIError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	b, _ := json.Marshal(struct {
		OK    bool   `json:"ok"`
		Error string `json:"error"`
	}{false, msg})
	w.Write(append(b, '\n'))
}
