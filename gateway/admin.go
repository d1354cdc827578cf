package gateway

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/pprof"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/shardgate/shardgate/shard/protocol"
)

// adminHandler serves metrics, health, readiness and the publish API.
func (g *Gateway) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(g.m.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", g.serveHealth)
	mux.HandleFunc("/readyz", g.serveReady)
	mux.Handle("/api/", g.requireToken(http.HandlerFunc(g.serveAPINotFound)))
	mux.Handle("/api/publish", g.requireToken(http.HandlerFunc(g.servePublish)))
	if g.cfg.Pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	return mux
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

// requireToken guards /api/ with -admin-token when one is set.
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

func (g *Gateway) serveAPINotFound(w http.ResponseWriter, r *http.Request) {
	writeAPIError(w, http.StatusNotFound, "no such endpoint")
}

// publishRequest is the body of POST /api/publish. Channel is a pointer
// so that an absent channel (everyone) differs from an empty one (bad).
type publishRequest struct {
	Channel *string         `json:"channel"`
	Data    json.RawMessage `json:"data"`
}

func (g *Gateway) servePublish(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeAPIError(w, http.StatusMethodNotAllowed, "use POST")
		return
	}
	if g.draining.Load() {
		writeAPIError(w, http.StatusServiceUnavailable, "draining")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, int64(g.cfg.MaxMessageBytes)))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeAPIError(w, http.StatusRequestEntityTooLarge, "body over -max-message-bytes")
			return
		}
		writeAPIError(w, http.StatusBadRequest, "reading body failed")
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
	if err := g.publishWait(channel, req.Data, sourceAPI); err != nil {
		writeAPIError(w, http.StatusServiceUnavailable, strings.TrimPrefix(err.Error(), "gateway: "))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	io.WriteString(w, `{"ok":true}`+"\n")
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
