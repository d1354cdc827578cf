package hub

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// AdminHandler serves GET /metrics from gatherer and POST /api/publish with
// shardgate's body, {"channel":"news","data":<any JSON>}.
func (h *Hub) AdminHandler(gatherer prometheus.Gatherer) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{}))
	mux.HandleFunc("/api/publish", h.servePublish)
	return mux
}

func (h *Hub) servePublish(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		apiError(w, http.StatusMethodNotAllowed, "use POST")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.opts.MaxMessageBytes))
	if err != nil {
		apiError(w, http.StatusRequestEntityTooLarge, "body too large")
		return
	}
	var req struct {
		Channel *string         `json:"channel"`
		Data    json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		apiError(w, http.StatusBadRequest, "invalid JSON")
		return
	}
	if req.Data == nil {
		apiError(w, http.StatusBadRequest, `missing "data"`)
		return
	}
	channel := ""
	if req.Channel != nil {
		if channel = *req.Channel; !validChannel(channel) {
			apiError(w, http.StatusBadRequest, "bad channel name")
			return
		}
	}
	if !h.Publish(channel, req.Data) {
		apiError(w, http.StatusServiceUnavailable, "shutting down")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	io.WriteString(w, `{"ok":true}`+"\n")
}

func apiError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	b, _ := json.Marshal(struct {
		OK    bool   `json:"ok"`
		Error string `json:"error"`
	}{false, msg})
	w.Write(append(b, '\n'))
}

// Server is a hub on its two listeners.
type Server struct {
	*Hub
	public, admin     *http.Server
	publicLn, adminLn net.Listener
	served            chan error
}

// Start listens on listen (WebSocket) and admin (metrics and publish API),
// serving metrics from gatherer.
func Start(opts Options, listen, admin string, gatherer prometheus.Gatherer) (*Server, error) {
	h, err := New(opts)
	if err != nil {
		return nil, err
	}
	s := &Server{Hub: h, served: make(chan error, 2)}
	if s.publicLn, err = net.Listen("tcp", listen); err != nil {
		h.Close()
		return nil, err
	}
	if s.adminLn, err = net.Listen("tcp", admin); err != nil {
		s.publicLn.Close()
		h.Close()
		return nil, err
	}
	s.public = &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	s.admin = &http.Server{Handler: h.AdminHandler(gatherer), ReadHeaderTimeout: 10 * time.Second}
	go func() { s.served <- s.public.Serve(s.publicLn) }()
	go func() { s.served <- s.admin.Serve(s.adminLn) }()
	return s, nil
}

// Addr is the WebSocket listener's address.
func (s *Server) Addr() net.Addr { return s.publicLn.Addr() }

// AdminAddr is the admin listener's address.
func (s *Server) AdminAddr() net.Addr { return s.adminLn.Addr() }

// Shutdown stops accepting, disconnects every client and waits for every
// goroutine of the server.
func (s *Server) Shutdown(ctx context.Context) error {
	err := errors.Join(s.public.Shutdown(ctx), s.admin.Shutdown(ctx))
	s.Hub.Close()
	for range 2 {
		if e := <-s.served; !errors.Is(e, http.ErrServerClosed) {
			err = errors.Join(err, e)
		}
	}
	return err
}
