// Package natstest runs a real NATS server inside a test process, on
// loopback, for the tests of the NATS broker and of gateway clusters.
package natstest

import (
	"net"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Start runs a NATS server on 127.0.0.1:port (-1: a port the kernel picks)
// until the test ends or Stop.
func Start(t testing.TB, port int) *server.Server {
	t.Helper()
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: port, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatalf("nats server: %v", err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		t.Fatalf("nats server on port %d did not start", port)
	}
	t.Cleanup(func() { Stop(s) })
	return s
}

// Stop shuts s down and waits until it has. Stopping twice is harmless.
func Stop(s *server.Server) {
	s.Shutdown()
	s.WaitForShutdown()
}

// URL is the nats:// address of s.
func URL(s *server.Server) string { return "nats://" + s.Addr().String() }

// Port is the TCP port s listens on (to restart a server on the same port).
func Port(s *server.Server) int { return s.Addr().(*net.TCPAddr).Port }
