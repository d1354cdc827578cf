// Command gorillahub is the comparison peer built the common way (see
// package hub): github.com/gorilla/websocket, a hub goroutine, a reader and
// a writer goroutine per connection. It speaks shardgate's client protocol
// subset, so shardbench drives it with -target gorillahub.
//
//	gorillahub -listen :8090 -admin 127.0.0.1:9190 [-compression]
//
// Admin listener: GET /metrics (Prometheus default registry: go_goroutines,
// process_resident_memory_bytes, ...), POST /api/publish
// {"channel":"c","data":...}. SIGINT or SIGTERM closes every connection
// (1001) and exits 0. Bad flags: one line naming the flag, exit 2.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/shardgate/shardgate/bench/peers/gorillahub/hub"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

func run(args []string, stderr io.Writer) int {
	var (
		opts          hub.Options
		listen, admin string
	)
	fs := flag.NewFlagSet("gorillahub", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&listen, "listen", ":8090", "WebSocket listen address")
	fs.StringVar(&admin, "admin", "127.0.0.1:9190", "admin listen address (metrics, publish API)")
	fs.StringVar(&opts.Path, "path", "/ws", "URL path of WebSocket upgrades")
	fs.IntVar(&opts.SendQueue, "send-queue", 256, "messages queued per client before it is dropped as a slow consumer")
	fs.Int64Var(&opts.MaxMessageBytes, "max-message-bytes", 65536, "largest client message")
	fs.DurationVar(&opts.PingInterval, "ping-interval", 30*time.Second, "heartbeat ping period")
	fs.BoolVar(&opts.Compression, "compression", false, "accept permessage-deflate offers and compress messages to clients that negotiated it")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(stderr)
			fs.PrintDefaults()
			return 0
		}
		fmt.Fprintf(stderr, "gorillahub: %v\n", err)
		return 2
	}
	switch {
	case fs.NArg() > 0:
		fmt.Fprintf(stderr, "gorillahub: unexpected argument %q\n", fs.Arg(0))
		return 2
	case opts.SendQueue < 1:
		fmt.Fprintf(stderr, "gorillahub: invalid value %d for flag -send-queue: must be at least 1\n", opts.SendQueue)
		return 2
	case opts.MaxMessageBytes < 1:
		fmt.Fprintf(stderr, "gorillahub: invalid value %d for flag -max-message-bytes: must be at least 1\n", opts.MaxMessageBytes)
		return 2
	case opts.PingInterval <= 0:
		fmt.Fprintf(stderr, "gorillahub: invalid value %v for flag -ping-interval: must be positive\n", opts.PingInterval)
		return 2
	}
	opts.PongWait = 3 * opts.PingInterval
	log := slog.New(slog.NewTextHandler(stderr, nil))
	opts.Log = log

	srv, err := hub.Start(opts, listen, admin, prometheus.DefaultGatherer)
	if err != nil {
		log.Error("cannot start", "err", err)
		return 1
	}
	log.Info("gorillahub listening", "ws", srv.Addr().String()+opts.Path, "admin", srv.AdminAddr().String())
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		log.Error("shutdown", "err", err)
		return 1
	}
	log.Info("stopped")
	return 0
}
