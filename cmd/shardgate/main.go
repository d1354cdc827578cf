// Command shardgate runs one WebSocket edge gateway node.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/shardgate/shardgate/gateway"
)

func main() {
	os.Exit(run(os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

// run is main with its effects passed in; it returns the exit code:
// 0 after a clean drain, 1 when the gateway cannot start, 2 for bad flags.
func run(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	cfg, err := gateway.ParseFlags(args, getenv, stdout)
	if errors.Is(err, gateway.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "shardgate: %v\n", err)
		return 2
	}
	log := newLogger(cfg, stderr)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	g, err := gateway.New(cfg, log)
	if err != nil {
		log.Error("cannot start", "err", err)
		return 1
	}
	if err := g.Run(ctx); err != nil {
		log.Error("shutdown failed", "err", err)
		return 1
	}
	return 0
}

func newLogger(cfg gateway.Config, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.LogLevel}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
