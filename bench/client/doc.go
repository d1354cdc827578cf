// Package client is a lean WebSocket client engine for load generation: one
// goroutine drives thousands of connections, so the generator's own cost
// stays small next to the server it measures on the same machine.
//
// A Loop owns an epoll instance and raw non-blocking sockets. There is no
// goroutine, net.Conn or bufio.Reader per connection: a connection is a
// struct of about 150 bytes plus whatever partial input it holds, reads go
// into one buffer shared by the loop, and writes go straight to the socket
// (only what the socket does not take is kept per connection). Every
// connection calls connect(2) from a source address of the caller's
// choosing, with IP_BIND_ADDRESS_NO_PORT so that the ephemeral port is
// chosen per destination, which lets a few loopback addresses carry far more
// connections than one address's port range.
//
// The engine speaks RFC 6455 as a client: a hand-written upgrade request and
// a parse of the 101 answer (Sec-WebSocket-Accept checked), masked client
// frames, reassembly of fragmented server messages, pongs for pings, and
// the closing handshake. It knows nothing of what the messages mean; a
// Handler does.
//
// With Options.TLS the connections are wss://: crypto/tls runs each
// handshake on a goroutine of its own (shard/tlsfd), then hands the
// connection back to the loop, which reads and writes TLS records as
// epoll reports the socket ready; an open connection holds no goroutine
// (tls.go).
//
// With Options.Compress every upgrade offers permessage-deflate (RFC 7692)
// as a browser does, and what the server compresses is inflated before
// the Handler sees it; Loop.Counters says how many bytes the sockets gave
// and how many upgrades accepted the offer (deflate.go). A connection that
// did not negotiate the extension costs no more memory than before it
// existed.
//
// For soak tests a connection can also misbehave on purpose (hostile.go):
// stop reading (PauseReading), write bytes that are not valid frames
// (SendRaw, AppendFrame), hang up without a closing handshake (Abort), or
// send half an upgrade request and wait (DialWith and DialOptions.Request).
//
// Usage:
//
//	l, _ := client.New(client.Options{Addr: addr, Path: "/ws"}, handler)
//	go l.Run()                       // the loop goroutine
//	l.Do(func() {                    // everything else runs on it too
//		c, err := l.Dial(src)        // OnOpen or OnClose follows
//		...
//	})
//	...
//	l.Do(func() { l.Shutdown(3*time.Second, func() { l.Stop() }) })
//
// Threading: Handler methods, Dial, After, Shutdown and every Conn method run
// on the loop goroutine only; from elsewhere, hand a function to Do. A
// slow handler delays every connection of its loop, as in any event loop.
package client
