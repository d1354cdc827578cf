// Package shardgate is the Go client of the shardgate WebSocket gateway.
//
// A Client holds one connection to a cluster of gateway nodes and keeps
// it: it reconnects with backoff (full jitter, floored), moves over the
// nodes' URLs, acts on the gateway's close codes, refreshes its token in
// place before it expires, resubscribes after every reconnect and
// recovers the messages its subscriptions missed, handing each to the
// application once and in order. It implements the behaviour described
// in clients/README.md, shared with the JavaScript client.
//
//	c, err := shardgate.New(shardgate.Options{
//		URLs:     []string{"wss://ws1.example.com/ws", "wss://ws2.example.com/ws"},
//		GetToken: func(ctx context.Context) (string, error) { return issuer.Token(ctx) },
//		OnState:  func(s shardgate.StateChange) { log.Println(s.State, s.Code, s.Err) },
//	})
//	if err != nil { ... }
//	defer c.Close()
//	sub, err := c.Subscribe("news", shardgate.Handlers{
//		OnMessage: func(m shardgate.Message) { fmt.Printf("%s\n", m.Data) },
//		OnSubscribed: func(s shardgate.Subscribed) {
//			if s.Recovering && !s.Recovered {
//				reload() // messages were missed for good
//			}
//		},
//	})
//	c.Connect()
//	err = c.Publish(ctx, "news", map[string]string{"text": "hello"})
//
// Handlers run on one goroutine per client, in order; see Client.
// Close stops every goroutine the client started.
package shardgate
