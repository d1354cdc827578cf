package shardgate_test

import (
	"context"
	"errors"
	"log"
	"log/slog"
	"time"

	shardgate "github.com/shardgate/shardgate/clients/go"
)

// A service that follows a channel and publishes to another, with
// tokens from its own issuer. (Compiled, not run: it needs a gateway.)
func Example() {
	c, err := shardgate.New(shardgate.Options{
		URLs: []string{"wss://ws1.example.com/ws", "wss://ws2.example.com/ws"},
		GetToken: func(ctx context.Context) (string, error) {
			return fetchToken(ctx) // from your issuer; ErrNoToken to stop
		},
		OnState: func(s shardgate.StateChange) {
			slog.Info("shardgate", "state", s.State, "url", s.URL, "code", s.Code, "delay", s.Delay, "err", s.Err)
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	_, err = c.Subscribe("orders", shardgate.Handlers{
		OnMessage: func(m shardgate.Message) {
			slog.Info("order", "offset", m.Offset, "data", string(m.Data))
		},
		OnSubscribed: func(s shardgate.Subscribed) {
			if s.Recovering && !s.Recovered {
				slog.Warn("orders may have been missed: reloading")
			}
		},
		OnError: func(e *shardgate.Error) { slog.Error("orders refused", "code", e.Code) },
	})
	if err != nil {
		log.Fatal(err)
	}
	c.Connect()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err = c.Publish(ctx, "audit", map[string]any{"event": "started"})
	var e *shardgate.Error
	switch {
	case err == nil:
	case errors.Is(err, shardgate.ErrDisconnected):
		slog.Warn("not connected, or the outcome is unknown; not resent")
	case errors.As(err, &e):
		slog.Error("publish refused", "code", e.Code)
	}
}

func fetchToken(ctx context.Context) (string, error) { return "", shardgate.ErrNoToken }
