// Command echoserver is the Autobahn TestSuite's server under test: the
// gateway's own WebSocket layer (package shard: its event loop, frame
// decoder, limits, reassembly, UTF-8 checks, control frames, pong
// coalescing, close handshake and outbound queue) with the JSON protocol
// replaced by echo (shard.Options.Echo). The fuzzing client sends frames
// and judges what comes back.
//
// It listens on -listen (a free loopback port by default) and prints
// "listening HOST:PORT" on stdout once it accepts connections; SIGINT or
// SIGTERM drain and stop it. See test/autobahn for the runner and
// scripts/autobahn.sh for the full suite.
//
// The upgrade is done here, not by the gateway's acceptor (package
// gateway, which speaks only to the shard's JSON side); it is a plain
// gobwas/ws upgrade, and the upgraded socket is handed to a shard exactly
// as the gateway hands it: a non-blocking fd plus the bytes read behind
// the request. permessage-deflate (RFC 7692, Autobahn cases 12 and 13) is
// negotiated in upgrade() as the gateway does it, and inflated and
// deflated by the shard (echo.go).
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/shardgate/shardgate/shard"
)

type config struct {
	listen           string
	shards           int
	maxMessageBytes  int
	sendQueueBytes   int
	writeTimeout     time.Duration
	handshakeTimeout time.Duration
	closeTimeout     time.Duration
	idleTimeout      time.Duration
	pingInterval     time.Duration
	logLevel         slog.Level
}

func main() {
	var cfg config
	flag.StringVar(&cfg.listen, "listen", "127.0.0.1:0", "address to listen on (port 0: a free port)")
	flag.IntVar(&cfg.shards, "shards", 2, "shards (event loops)")
	// The limits default to the gateway's. Autobahn's case 9 sends
	// messages of up to 16 MiB: its runs raise both (see
	// autobahn.EchoArgs).
	flag.IntVar(&cfg.maxMessageBytes, "max-message-bytes", 65536, "largest message, across fragments (1009 past it)")
	flag.IntVar(&cfg.sendQueueBytes, "send-queue-bytes", 1<<20, "per-connection outbound cap (1008 past it); an echo holds its message's size")
	flag.DurationVar(&cfg.writeTimeout, "write-timeout", 10*time.Second, "close a connection whose queue makes no progress this long")
	flag.DurationVar(&cfg.handshakeTimeout, "handshake-timeout", 5*time.Second, "time a client has to send its upgrade request")
	flag.DurationVar(&cfg.closeTimeout, "close-timeout", 5*time.Second, "time a closing peer has to answer our close frame")
	flag.DurationVar(&cfg.idleTimeout, "idle-timeout", 90*time.Second, "close a connection silent this long (0: never)")
	// Off by default: an unsolicited ping is an event the fuzzing client
	// records, which no case expects.
	flag.DurationVar(&cfg.pingInterval, "ping-interval", 0, "heartbeat ping period (0: none)")
	flag.TextVar(&cfg.logLevel, "log-level", slog.LevelWarn, "debug, info, warn or error")
	flag.Parse()
	if err := run(cfg); err != nil {
		fmt.Fprintln(os.Stderr, "echoserver:", err)
		os.Exit(1)
	}
}

func run(cfg config) error {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: cfg.logLevel}))
	shards := make([]*shard.Shard, cfg.shards)
	for i := range shards {
		s, err := shard.New(shard.Options{
			ID:              i,
			Echo:            true,
			MaxMessageBytes: cfg.maxMessageBytes,
			SendQueueBytes:  cfg.sendQueueBytes,
			CloseTimeout:    cfg.closeTimeout,
			IdleTimeout:     cfg.idleTimeout,
			WriteTimeout:    cfg.writeTimeout,
			PingInterval:    cfg.pingInterval,
			Metrics:         shard.NopMetrics(),
			Log:             log,
		})
		if err != nil {
			return err
		}
		defer s.Close()
		shards[i] = s
	}

	ln, err := net.Listen("tcp", cfg.listen)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		ln.Close()
	}()

	// The clock the gateway runs: ticks drive close deadlines (and
	// heartbeats, when enabled).
	ticker := time.NewTicker(time.Second)
	defer ticker.Stop()
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-ticker.C:
				for _, s := range shards {
					s.Tick()
				}
			}
		}
	}()

	out := bufio.NewWriter(os.Stdout)
	fmt.Fprintf(out, "listening %s\n", ln.Addr())
	if err := out.Flush(); err != nil {
		return err
	}

	var next atomic.Uint32
	for {
		nc, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			return err
		}
		s := shards[next.Add(1)%uint32(len(shards))]
		go serve(nc.(*net.TCPConn), s, cfg.handshakeTimeout, log)
	}
	// Clients get a close frame and a second to answer it.
	deadline := time.Now().Add(time.Second)
	for _, s := range shards {
		s.Drain(time.Second)
	}
	for _, s := range shards {
		for s.Conns() > 0 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
	}
	return nil
}
