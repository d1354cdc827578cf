package gateway

import (
	"testing"

	"github.com/shardgate/shardgate/internal/wstest"
)

// TestGoroutinesFlatInConnections holds 500 and then 5,000 idle
// connections and checks that the gateway's goroutine count does not grow
// with them: goroutines scale with shards, never with sockets. The clients
// live in this process too; they hold plain sockets and run no goroutines.
func TestGoroutinesFlatInConnections(t *testing.T) {
	if testing.Short() {
		t.Skip("opens 5,000 connections")
	}
	g := startGateway(t, nil)
	goroutinesAt := func(n int) float64 {
		g.waitMetric(float64(n), "shardgate_connections")
		return g.metricSum("go_goroutines")
	}
	var clients []*wstest.Client
	dialUpTo := func(n int) {
		for len(clients) < n {
			clients = append(clients, wstest.Dial(t, g.wsURL(), nil))
		}
	}
	dialUpTo(500)
	at500 := goroutinesAt(500)
	dialUpTo(5000)
	at5000 := goroutinesAt(5000)
	t.Logf("go_goroutines: %v at 500 connections, %v at 5000", at500, at5000)
	if d := at5000 - at500; d >= 20 || d <= -20 {
		t.Fatalf("go_goroutines changed by %v between 500 and 5000 connections", d)
	}
	// The connections are live, not merely counted: one of the last ones
	// still gets a broadcast.
	last := clients[len(clients)-1]
	last.Subscribe("alive")
	g.mustPublish("alive", `"yes"`)
	if m := last.Expect("message"); string(m.Data) != `"yes"` {
		t.Fatalf("got %+v", m)
	}
}
